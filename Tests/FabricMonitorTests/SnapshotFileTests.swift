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
