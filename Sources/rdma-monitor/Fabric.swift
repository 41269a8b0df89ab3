import ArgumentParser
import FabricMonitor
import FabricMonitorExporter
import Foundation

struct Fabric: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fleet view: the deadlock detector over a whole fabric.",
        discussion: """
        Reads the pause state of many hosts and switches — from a Prometheus server that scrapes
        every rdma-monitor (series rdma_monitor_pause_active), or from snapshot files — and runs
        the static cyclic-buffer-dependency check and the deadlock detector over the topology.
        Exit status: 0 no deadlock, 3 deadlock in progress, 1 error.
        Example:
          rdma-monitor fabric --topology fabric.json --prometheus-url http://127.0.0.1:9090
          rdma-monitor fabric --topology fabric.json --snapshot s1.json --snapshot s2.json
        """
    )

    @Option(name: .long, help: ArgumentHelp("The fabric's topology (switches, links, routing).", valueName: "file"))
    var topology: String?

    @Option(name: .long, help: ArgumentHelp("Prometheus server to query.", valueName: "url"))
    var prometheusURL: String?

    @Option(name: .long, help: ArgumentHelp("Snapshot file of some hosts/switches (repeatable).", valueName: "file"))
    var snapshot: [String] = []

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    func validate() throws {
        guard (prometheusURL == nil) != snapshot.isEmpty else { throw ValidationError("give --prometheus-url or --snapshot files (one of the two)") }
    }

    func run() throws {
        let files = try snapshot.map { path in try failing { () throws(MonitorError) in try SnapshotFile.load(path: path) } }
        guard let topology = try topology.map({ path in try failing { () throws(MonitorError) in try FabricTopology.load(path: path) } })
                ?? files.lazy.compactMap(\.topology).first else {
            throw ValidationErrorLine(message: "no topology: give --topology FILE (or snapshot files that carry one)")
        }
        let flags: [PauseFlag]
        if let prometheusURL {
            flags = try failing { () throws(MonitorError) in
                try FleetView.pauseFlags(prometheusResponse: try PrometheusQuery(baseURL: prometheusURL).instant("rdma_monitor_pause_active"))
            }
        } else {
            flags = FleetView.pauseFlags(snapshots: files)
        }
        let result = FleetView(topology: topology).analyze(flags)
        if json {
            let object: [String: Any] = [
                "ports_reporting": Set(flags.map(\.port)).count,
                "paused_buffers": result.pausedBuffers,
                "cyclic_buffer_dependencies": result.routing.cycles.map { $0.map(\.description) },
                "deadlocks": result.deadlocks.map { ["priority": $0.priority, "buffers": $0.buffers.map(\.description), "break_point": $0.breakPoint.description] },
                "unmatched_ports": result.unmatchedPorts.map(\.description),
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("fabric: \(topology.nodes.count) nodes, \(topology.links.count) links; \(Set(flags.map(\.port)).count) ports reporting, \(result.pausedBuffers) buffers paused")
            if result.routing.isFree {
                print("routing: no cyclic buffer dependency")
            } else {
                print("routing: \(result.routing.cycles.count) cyclic buffer dependenc\(result.routing.cycles.count == 1 ? "y" : "ies"), e.g. " + result.routing.cycles[0].map(\.description).joined(separator: " → "))
            }
            if !result.unmatchedPorts.isEmpty {
                print("ports not in the topology (ignored): " + result.unmatchedPorts.prefix(10).map(\.description).joined(separator: ", "))
            }
            print(result.deadlocks.isEmpty ? "PFC deadlocks: none" : result.deadlocks.map { "DEADLOCK \($0)" }.joined(separator: "\n"))
        }
        if !result.deadlocks.isEmpty { throw ExitCode(3) }
    }
}
