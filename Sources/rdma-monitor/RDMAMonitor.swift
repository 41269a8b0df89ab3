import ArgumentParser
import FabricMonitor
import FabricMonitorExporter
import Foundation
import Logging

@main
struct RDMAMonitor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rdma-monitor",
        abstract: "RDMA/RoCE counters, PFC-storm watchdog, PFC-deadlock detector, Prometheus exporter.",
        discussion: """
        Examples:
          rdma-monitor                          every RDMA device (sysfs), live table
          rdma-monitor -d rxe0 -i eth0 --once   rxe0 and eth0 (ethtool), one reading
          rdma-monitor --json --interval 0.5    JSON lines, twice a second
          rdma-monitor --snapshot sw.json       replay recorded counters (README)
          rdma-monitor --prometheus 127.0.0.1:9879         serve /metrics
          rdma-monitor check topology.json      can the routing deadlock (CBD)?
          rdma-monitor fabric --topology t.json --prometheus-url http://127.0.0.1:9090
        """,
        subcommands: [Watch.self, Fabric.self, Check.self, Benchmark.self],
        defaultSubcommand: Watch.self
    )
}

/// "HOST:PORT" or "[IPv6]:PORT".
struct ListenAddress: ExpressibleByArgument {
    var host: String
    var port: Int

    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":"), let port = Int(argument[argument.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(argument[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

extension PFCStormWatchdog.Action: ExpressibleByArgument {}

/// Turns a MonitorError into the tool's error line and exit status 1.
func failing<T>(_ body: () throws(MonitorError) -> T) throws -> T {
    do { return try body() } catch { throw ValidationErrorLine(message: error.description) }
}

struct ValidationErrorLine: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
