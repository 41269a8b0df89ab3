import ArgumentParser
import FabricMonitor
import FabricMonitorExporter
import Foundation
import Logging

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Poll counters and analyse them (the default command).",
        discussion: """
        Sources (any mix; sysfs when none is given): RDMA devices from sysfs, netdevs through the
        SIOCETHTOOL ioctl, recorded snapshot files. Output: a table refreshed in place on a
        terminal, --json lines, or Prometheus' text format over HTTP; alerts go to stderr.
        """
    )

    @Option(name: [.customShort("d"), .long], help: "RDMA device to read from sysfs (repeatable; default: all).")
    var device: [String] = []

    @Option(name: .long, help: "Folder of RDMA devices.")
    var sysfsRoot: String = SysfsRDMASource.defaultRoot

    @Option(name: [.customShort("i"), .long], help: "Network interface to read through SIOCETHTOOL (repeatable).")
    var interface: [String] = []

    @Option(name: .long, help: ArgumentHelp("Recorded snapshot file to replay (repeatable).", valueName: "file"))
    var snapshot: [String] = []

    @Flag(name: .long, help: "Replay snapshot files endlessly (time keeps increasing).")
    var loop = false

    @Option(name: .long, help: ArgumentHelp("Topology for the deadlock detector (a snapshot's own is used otherwise).", valueName: "file"))
    var topology: String?

    @Option(name: .long, help: "Seconds between polls (live sources).")
    var interval: Double = 1

    @Flag(name: .long, help: "Print one reading and exit (live sources: two readings one interval apart, for rates).")
    var once = false

    @Option(name: .long, help: "Stop after this many polls.")
    var count: Int?

    @Flag(name: .long, help: "One JSON object per poll instead of the table.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Serve Prometheus metrics on HOST:PORT (/metrics).", valueName: "host:port"))
    var prometheus: ListenAddress?

    @Option(name: .long, help: "PFC watchdog detection window, milliseconds.")
    var detectionMilliseconds: Int64 = 200

    @Option(name: .long, help: "PFC watchdog restoration window, milliseconds.")
    var restorationMilliseconds: Int64 = 200

    @Option(name: .long, help: "PFC watchdog action: alert (default), drop or forward (drop/forward only run the action hook; this tool logs them).")
    var action: PFCStormWatchdog.Action = .alert

    func validate() throws {
        guard interval > 0, interval <= 3600 else { throw ValidationError("--interval must be in (0, 3600] seconds") }
        guard (1...3_600_000).contains(detectionMilliseconds) else { throw ValidationError("--detection-milliseconds must be 1…3600000") }
        guard (1...3_600_000).contains(restorationMilliseconds) else { throw ValidationError("--restoration-milliseconds must be 1…3600000") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    /// The sources the options name (sysfs when none), the topology to check, and whether
    /// every source is a recorded file (replayed as fast as it reads, and finished at its end).
    func makeSources() throws -> (sources: [any CounterSource], topology: FabricTopology?, recordedOnly: Bool) {
        var sources: [any CounterSource] = []
        var fileTopology: FabricTopology?
        for path in snapshot {
            let source = try failing { () throws(MonitorError) in try SnapshotFileSource(path: path, loops: loop) }
            fileTopology = fileTopology ?? source.file.topology
            sources.append(source)
        }
        if !interface.isEmpty {
            sources.append(try failing { () throws(MonitorError) in try EthtoolSource(interfaces: interface) })
        }
        if !device.isEmpty || sources.isEmpty {
            let sysfs = try failing { () throws(MonitorError) in try SysfsRDMASource(root: sysfsRoot, devices: device.isEmpty ? nil : device) }
            if device.isEmpty, sources.isEmpty, try failing({ () throws(MonitorError) in try sysfs.read() }).ports.isEmpty {
                throw ValidationErrorLine(message: "no RDMA device under \(sysfsRoot): load rdma_rxe (tools/rxe-setup), name a netdev with -i, or replay a recorded --snapshot file")
            }
            sources.append(sysfs)
        }
        let topology = try topology.map { path in try failing { () throws(MonitorError) in try FabricTopology.load(path: path) } } ?? fileTopology
        return (sources, topology, sources.count == snapshot.count)
    }

    func run() throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let logger = Logger(label: "rdma-monitor")
        let (sources, topology, recordedOnly) = try makeSources()
        let configuration = PFCStormWatchdog.Configuration(detectionTime: .milliseconds(detectionMilliseconds),
                                                           restorationTime: .milliseconds(restorationMilliseconds), action: action)
        let watchdog = PFCStormWatchdog(configuration: configuration, actionHook: { event in
            logger.warning("action \(configuration.action.rawValue) requested for \(event.queue) (\(event.kind.rawValue)); this tool has no switch to act on")
        })
        var monitor = Monitor(sources: sources, clock: SystemMonotonicClock(), watchdog: watchdog, topology: topology)
        let routing = topology.map { CyclicDependencyCheck(topology: $0).run() }
        var alerts = AlertLog(logger: logger)

        let exporter = prometheus.map { _ in PrometheusExporter() }
        let server = try prometheus.map { address in
            try failing { () throws(MonitorError) in try MetricsHTTPServer.start(host: address.host, port: address.port, registry: exporter!.registry) }
        }
        defer { server?.close() }
        if let server {
            let host = server.host.contains(":") ? "[\(server.host)]" : server.host
            logger.info("serving Prometheus metrics on http://\(host):\(server.port)/metrics")
        }

        let terminal = isatty(STDOUT_FILENO) == 1 && !json && !once && server == nil
        // --once on live counters takes two readings, so the one shown has rates.
        let polls = count ?? (once && !recordedOnly ? 2 : Int.max)
        var done = 0
        while done < polls {
            let report = try failing { () throws(MonitorError) in try monitor.poll() }
            done += 1
            alerts.log(report)
            exporter?.update(with: report, deadlockCheck: routing)
            let finished = recordedOnly && !monitor.hasMore
            if server == nil, !once || done == polls || finished {
                show(report, routing: routing, terminal: terminal)
            }
            if finished {
                guard server != nil else { break }
                logger.info("snapshot replayed to its end; serving the last state until stopped")
                while true { sleep(3600) }
            }
            // A recorded file printed to a pipe is replayed at once; anything watched or scraped is paced.
            if done < polls, !recordedOnly || terminal || server != nil { Thread.sleep(forTimeInterval: interval) }
        }
    }

    func show(_ report: MonitorReport, routing: CyclicDependencyCheck.Report?, terminal: Bool) {
        if json {
            print(ReportJSON.line(report))
        } else if terminal {
            // Repaint in place: home, each line cleared to its end, then the rest of the screen.
            let table = ReportTable.render(report, width: terminalWidth(), deadlockCheck: routing)
            print("\u{1B}[H" + table.split(separator: "\n", omittingEmptySubsequences: false).map { $0 + "\u{1B}[K" }.joined(separator: "\n") + "\u{1B}[J")
        } else {
            print(ReportTable.render(report, width: 1000, deadlockCheck: routing) + "\n")
        }
        fflush(nil)
    }

    func terminalWidth() -> Int {
        var size = winsize()
        return ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 20 ? Int(size.ws_col) : 120
    }
}
