import ArgumentParser
import FabricMonitor
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

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
            let body = try query(prometheusURL)
            flags = try failing { () throws(MonitorError) in try FleetView.pauseFlags(prometheusResponse: body) }
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

    /// GET <url>/api/v1/query?query=rdma_monitor_pause_active, bounded to 10 s.
    func query(_ base: String) throws -> Data {
        let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
        guard let url = URL(string: "\(trimmed)/api/v1/query?query=rdma_monitor_pause_active"), url.scheme == "http" || url.scheme == "https" else {
            throw ValidationErrorLine(message: "--prometheus-url \(base): expected http://HOST:PORT")
        }
        var request = URLRequest(url: url)
        request.timeoutInterval = 10
        final class Outcome: @unchecked Sendable { var data: Data?; var error: String? }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, response, error in
            if let error { outcome.error = error.localizedDescription }
            else if let http = response as? HTTPURLResponse, http.statusCode != 200 { outcome.error = "HTTP \(http.statusCode)"; outcome.data = data }
            else { outcome.data = data }
            done.signal()
        }.resume()
        guard done.wait(timeout: .now() + 15) == .success else { throw ValidationErrorLine(message: "Prometheus at \(base): no answer within 15 s") }
        if let error = outcome.error { throw ValidationErrorLine(message: "Prometheus at \(base): \(error)") }
        return outcome.data ?? Data()
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Static check: does the routing admit a cyclic buffer dependency?",
        discussion: "Exit status: 0 free, 3 a cyclic buffer dependency exists, 1 error.\nExample: rdma-monitor check scenarios-topology.json"
    )

    @Argument(help: ArgumentHelp("A topology file, or a snapshot file carrying one.", valueName: "file"))
    var file: String

    func run() throws {
        let topology = try failing { () throws(MonitorError) -> FabricTopology in
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            guard text.contains(SnapshotFile.formatName) else { return try FabricTopology.load(path: file) }
            guard let topology = try SnapshotFile.load(path: file).topology else {
                throw MonitorError("snapshot \(file)", "carries no topology; give a topology file")
            }
            return topology
        }
        let report = CyclicDependencyCheck(topology: topology).run()
        print("\(report.buffers) buffers per lossless priority (\(topology.losslessPriorities.map(String.init).joined(separator: ","))): " +
              (report.isFree ? "no cyclic buffer dependency" : "\(report.cycles.count) cyclic buffer dependenc\(report.cycles.count == 1 ? "y" : "ies")"))
        for (cycle, size) in zip(report.cycles, report.componentSizes) {
            print("  \(size) buffers wait on each other, e.g. " + cycle.map(\.description).joined(separator: " → "))
        }
        if !report.isFree { throw ExitCode(3) }
    }
}
