import Congestion
import Foundation
import Testing
@testable import FabricMonitor

@Suite struct SnapshotFileTests {
    static let valid = """
    { "format": "rdma-monitor-snapshot/1",
      "samples": [
        { "timeNanoseconds": 0, "ports": [
          { "node": "S1", "device": "Ethernet8", "kind": "switch",
            "counters": { "rx_prio3_pause": 10, "big": 18446744073709551615 },
            "gauges": { "tx_prio3_queue_bytes": 4096.5 } } ] },
        { "timeNanoseconds": 100000000, "ports": [
          { "node": "S1", "device": "Ethernet8", "port": 0, "kind": "switch", "counters": { "rx_prio3_pause": 20 } } ] } ] }
    """

    @Test func readsSamplesExactly() throws {
        let file = try SnapshotFile.decode(Data(Self.valid.utf8))
        #expect(file.samples.count == 2)
        #expect(file.samples[1].time == .milliseconds(100))
        let port = file.samples[0].ports[0]
        #expect(port.key == PortKey(node: "S1", device: "Ethernet8"))
        #expect(port.kind == .switch)
        #expect(port.counters["big"] == UInt64.max)          // not rounded through Double
        #expect(port.gauges["tx_prio3_queue_bytes"] == 4096.5)
        #expect(file.topology == nil)
    }

    @Test func encodedFileReadsBackTheSame() throws {
        let ring = try #require(try SnapshotFile.decode(Data(Fixtures.ringSnapshot(paused: [true, true, true]).utf8)).topology)
        let file = try SnapshotFile.decode(Data(Self.valid.utf8))
        let again = try SnapshotFile.decode(Data(SnapshotFile(samples: file.samples, topology: ring).encoded().utf8))
        #expect(again.samples == file.samples)
        #expect(again.topology?.links == ring.links)
        #expect(again.topology?.routes == ring.routes)
    }

    @Test(arguments: [
        ("not json", "snapshot: not valid JSON"),
        ("[1]", "snapshot (top level): expected an object, found a list"),
        (#"{"format": "other/2", "samples": []}"#, #"snapshot format: expected "rdma-monitor-snapshot/1", found "other/2""#),
        (#"{"format": "rdma-monitor-snapshot/1", "samples": []}"#, "snapshot samples: must hold at least one sample"),
        (#"{"format": "rdma-monitor-snapshot/1", "sample": []}"#, "snapshot sample: unknown field (known here: format, samples, topology)"),
        (#"{"format": "rdma-monitor-snapshot/1", "samples": [{"timeNanoseconds": -1, "ports": []}]}"#,
         "snapshot samples[0].timeNanoseconds: -1 is outside 0…9223372036854775807"),
        (#"{"format": "rdma-monitor-snapshot/1", "samples": [{"timeNanoseconds": 5, "ports": []}, {"timeNanoseconds": 5, "ports": []}]}"#,
         "snapshot samples[1].timeNanoseconds: must be greater than the previous sample's (5)"),
        (#"{"format": "rdma-monitor-snapshot/1", "samples": [{"timeNanoseconds": 0, "ports": [{"node": "a", "device": "b", "kind": "router"}]}]}"#,
         #"snapshot samples[0].ports[0].kind: expected one of rdma, ethernet, soft, switch, found "router""#),
        (#"{"format": "rdma-monitor-snapshot/1", "samples": [{"timeNanoseconds": 0, "ports": [{"node": "a", "device": "b", "kind": "rdma", "counters": {"x": -3}}]}]}"#,
         "snapshot samples[0].ports[0].counters.x: expected a whole number 0…18446744073709551615, found a number"),
        (#"{"format": "rdma-monitor-snapshot/1", "samples": [{"timeNanoseconds": 0, "ports": [{"node": "a", "device": "b", "kind": "rdma", "counters": {"x": 1.5}}]}]}"#,
         "snapshot samples[0].ports[0].counters.x: expected a whole number 0…18446744073709551615, found a number"),
        (#"{"format": "rdma-monitor-snapshot/1", "samples": [{"timeNanoseconds": 0, "ports": [{"node": "", "device": "b", "kind": "rdma"}]}]}"#,
         "snapshot samples[0].ports[0].node: must be 1 to 256 bytes long"),
        (#"{"format": "rdma-monitor-snapshot/1", "samples": [{"timeNanoseconds": 0, "ports": [{"node": "a", "device": "b", "kind": "rdma"}, {"node": "a", "device": "b", "kind": "rdma"}]}]}"#,
         "snapshot samples[0].ports[1].device: port a/b appears twice in this sample"),
        (#"{"format": "rdma-monitor-snapshot/1", "samples": [{"timeNanoseconds": 0, "ports": [{"node": "a", "device": "b", "kind": "rdma", "gauges": {"q": true}}]}]}"#,
         "snapshot samples[0].ports[0].gauges.q: expected a finite number, found true/false"),
    ])
    func malformedFilesAreRefusedNamingTheField(text: String, message: String) {
        do {
            _ = try SnapshotFile.decode(Data(text.utf8))
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.hasPrefix(message), "\(error.description)")
        }
    }

    @Test func missingFileIsAClearError() {
        #expect(throws: MonitorError("snapshot /nonexistent.json", "cannot read the file (missing or not readable)")) {
            _ = try SnapshotFile.load(path: "/nonexistent.json")
        }
    }

    @Test func sourceReplaysSamplesWithTheirTimes() throws {
        let source = SnapshotFileSource(file: try SnapshotFile.decode(Data(Self.valid.utf8)))
        let first = try source.read(), second = try source.read(), third = try source.read()
        #expect(first.recordedTime == .zero && first.hasMore)
        #expect(second.recordedTime == .milliseconds(100) && !second.hasMore)
        #expect(third.recordedTime == .milliseconds(100) && !third.hasMore)
    }

    @Test func loopingSourceKeepsTimeIncreasing() throws {
        let source = SnapshotFileSource(file: try SnapshotFile.decode(Data(Self.valid.utf8)), loops: true)
        let times = try (0..<5).map { _ in try source.read().recordedTime!.nanoseconds }
        #expect(times == [0, 100_000_000, 200_000_000, 300_000_000, 400_000_000])
    }
}

/// Hostile input: seeded mutations of valid documents (bytes flipped, cut, duplicated) are
/// either read or refused with a MonitorError — never a crash. Deterministic: a fixed seed.
@Suite struct HostileInputTests {
    static func mutations(of text: String, count: Int) -> [Data] {
        var random = SplitMix64(seed: 42)
        let original = Array(text.utf8)
        let alphabet = Array(#"{}[]":,0123456789-.eE truefalsnul\"#.utf8)
        return (0..<count).map { _ in
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let position = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: bytes[position] = alphabet.randomElement(using: &random)!
                case 1: bytes.removeSubrange(position..<min(bytes.count, position + Int.random(in: 1...8, using: &random)))
                case 2: bytes.insert(alphabet.randomElement(using: &random)!, at: position)
                default: bytes = Array(bytes[..<position])
                }
                if bytes.isEmpty { bytes = [UInt8(ascii: "{")] }
            }
            return Data(bytes)
        }
    }

    @Test func mutatedSnapshotsAreReadOrRefusedNeverACrash() {
        var refused = 0
        for data in Self.mutations(of: Fixtures.ringSnapshot(paused: [true, false, true]), count: 3000) {
            do {
                let file = try SnapshotFile.decode(data)
                if let topology = file.topology {
                    let detector = DeadlockDetector(graph: BufferDependencyGraph(topology: topology))
                    _ = detector.detect(PausedBuffers(snapshot: file.samples[0], graph: detector.graph))
                    _ = CyclicDependencyCheck(graph: detector.graph).run()
                }
            } catch {
                refused += 1
                #expect(!error.description.isEmpty)
            }
        }
        #expect(refused > 1000)      // most mutations break something, and each says what
    }

    @Test func mutatedPrometheusAnswersAreReadOrRefusedNeverACrash() {
        let answer = String(decoding: FleetViewTests.response([("S2", "S1", "tx", "1"), ("S3", "S2", "rx", "0")]
            .map { (node: $0.0, device: $0.1, direction: $0.2, value: $0.3) }), as: UTF8.self)
        for data in Self.mutations(of: answer, count: 2000) {
            _ = try? FleetView.pauseFlags(prometheusResponse: data)
        }
    }
}

extension HostileInputTests {
    @Test func deeplyNestedDocumentsAreRefused() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: MonitorError.self) { _ = try SnapshotFile.decode(Data(#"{"format": "rdma-monitor-snapshot/1", "samples": \#(deep)}"#.utf8)) }
    }
}
