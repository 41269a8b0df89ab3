import Foundation
import Testing
@testable import FabricMonitor

@Suite struct FleetViewTests {
    static func response(_ flags: [(node: String, device: String, direction: String, value: String)]) -> Data {
        let results = flags.map { flag in
            #"{"metric": {"__name__": "rdma_monitor_pause_active", "instance": "127.0.0.1:1", "node": "\#(flag.node)", "device": "\#(flag.device)", "port": "0", "direction": "\#(flag.direction)", "priority": "3"}, "value": [1700000000.1, "\#(flag.value)"]}"#
        }
        return Data(#"{"status": "success", "data": {"resultType": "vector", "result": [\#(results.joined(separator: ", "))]}}"#.utf8)
    }

    @Test func deadlockAcrossMonitorsFromPrometheusAnswers() throws {
        let topology = try #require(try SnapshotFile.decode(Data(Fixtures.ringSnapshot(paused: [false, false, false]).utf8)).topology)
        let all = [("S2", "S1", "tx", "1"), ("S3", "S2", "tx", "1"), ("S1", "S3", "tx", "1"), ("S9", "x", "tx", "1")]
        let flags = try FleetView.pauseFlags(prometheusResponse: Self.response(all.map { (node: $0.0, device: $0.1, direction: $0.2, value: $0.3) }))
        #expect(flags.count == 4)
        let result = FleetView(topology: topology).analyze(flags)
        #expect(result.deadlocks.count == 1)
        #expect(result.pausedBuffers == 3)
        #expect(result.unmatchedPorts == [PortKey(node: "S9", device: "x")])
        #expect(!result.routing.isFree)
        let draining = try FleetView.pauseFlags(prometheusResponse: Self.response([("S2", "S1", "tx", "1"), ("S3", "S2", "tx", "0"), ("S1", "S3", "tx", "1")]
            .map { (node: $0.0, device: $0.1, direction: $0.2, value: $0.3) }))
        #expect(FleetView(topology: topology).analyze(draining).deadlocks.isEmpty)
    }

    @Test(arguments: [
        (#"{"status": "error", "error": "parse error"}"#, "Prometheus response: query failed: parse error"),
        (#"{"status": "success", "data": {"resultType": "matrix", "result": []}}"#, "Prometheus response data.resultType: expected \"vector\""),
        (#"{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"node": "a"}, "value": [1, "1"]}]}}"#,
         "Prometheus response data.result[0].metric.direction: missing label"),
        (#"{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"node": "a", "device": "b", "port": "0", "direction": "up", "priority": "3"}, "value": [1, "1"]}]}}"#,
         "Prometheus response data.result[0].metric.direction: expected rx or tx"),
        (#"{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"node": "a", "device": "b", "port": "0", "direction": "rx", "priority": "3"}, "value": [1, 1]}]}}"#,
         "Prometheus response data.result[0].value: expected [time, \"number\"]"),
        ("<html>", "Prometheus response: not valid JSON"),
    ])
    func malformedAnswersAreRefused(text: String, message: String) {
        do {
            _ = try FleetView.pauseFlags(prometheusResponse: Data(text.utf8))
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.hasPrefix(message), "\(error.description)")
        }
    }

    @Test func snapshotFilesFromSeveralSwitchesMakeOneFabric() throws {
        let file = try SnapshotFile.decode(Data(Fixtures.ringSnapshot(paused: [true, true, true]).utf8))
        // Split the one sample into three files, one per switch, as three monitors would record them.
        let perSwitch = file.samples[0].ports.map { SnapshotFile(samples: [CounterSnapshot(time: .zero, ports: [$0])]) }
        let result = FleetView(topology: try #require(file.topology)).analyze(FleetView.pauseFlags(snapshots: perSwitch))
        #expect(result.deadlocks.map { $0.buffers.map(\.node) } == [["S2", "S3", "S1"]])
    }
}

@Suite struct ReportRenderingTests {
    @Test func tableAndJSONShowStormsDeadlocksAndRates() throws {
        let file = try SnapshotFile.decode(Data(Fixtures.ringSnapshot(paused: [true, true, true]).utf8))
        let before = snapshot(0, [port("mlx5_0", ["sent_pkts": 0, "np_cnp_sent": 0, "rx_prio3_pause_duration": 0])])
        let after = snapshot(1000, [port("mlx5_0", ["sent_pkts": 20_000, "np_cnp_sent": 50, "rx_prio3_pause_duration": 250_000])])
        let detector = DeadlockDetector(graph: BufferDependencyGraph(topology: try #require(file.topology)))
        let queue = PFCStormWatchdog.Queue(port: PortKey(node: "h", device: "mlx5_0"), priority: 3, role: .nicTransmitter)
        let report = MonitorReport(snapshot: after, intervals: PortInterval.between(before, after), stormEvents: [], stormingQueues: [queue],
                                   deadlocks: detector.detect(PausedBuffers(snapshot: file.samples[0], graph: detector.graph)))
        let table = ReportTable.render(report, width: 200)
        #expect(table.contains("h/mlx5_0"))
        #expect(table.contains("20.0k"))
        #expect(table.contains("25% p3"))
        #expect(table.contains("STORM h/mlx5_0 prio 3"))
        #expect(table.contains("DEADLOCK PFC deadlock, priority 3: S2/S1←S1 prio 3 → S3/S2←S2 prio 3 → S1/S3←S3 prio 3"))
        #expect(ReportTable.render(report, width: 40).split(separator: "\n").allSatisfy { $0.count <= 40 })
        let line = ReportJSON.line(report)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect((object["deadlocks"] as? [Any])?.count == 1)
        #expect((object["storming"] as? [String]) == ["h/mlx5_0 prio 3 (NIC sending pauses)"])
        let ports = try #require(object["ports"] as? [[String: Any]])
        #expect((ports[0]["rates"] as? [String: Double])?["sent_pkts"] == 20_000)
        #expect((ports[0]["dcqcn"] as? [String: Double])?["cnp_sent_per_second"] == 50)
        #expect(!line.contains("\n"))
    }
}
