import ArgumentParser
import Foundation
import RDMA

/// `rdma-pingpong`: latency of SEND, WRITE, READ and atomics, perftest-compatible flags
/// and table, plus HDR percentiles, JSON, histogram file and SVG plot.
public struct PingPongCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rdma-pingpong",
        abstract: "RDMA latency (perftest ib_*_lat compatible flags and table, with HDR tail percentiles).",
        discussion: """
        Ping-pong (SEND, WRITE) reports RTT/2 like perftest; READ and atomics report
        the full request/response. The server waits; the client names it. Without
        -d/--soft the device is chosen automatically (an active verbs device → a
        kernel rxe created for the run → the userspace engine) and the choice is
        printed.

        Examples:
          rdma-pingpong --loopback                       # both sides here
          rdma-pingpong -d rxe0                          # server
          rdma-pingpong -d rxe0 -s 64 -n 10000 10.0.0.1  # client
          rdma-pingpong --loopback --op read -a --json - # READ sweep, JSON
          rdma-pingpong --loopback -n 100000 --histogram lat.hgrm --plot lat.svg
          rdma-pingpong -d rxe0 -n 1000 --perftest 10.0.0.1
              # client of `ib_send_lat -d rxe0 -n 1000` (--op write|read|atomic:
              # of ib_write_lat, ib_read_lat, ib_atomic_lat); our server also
              # answers their clients (it recognises perftest's exchange)
          rdma-pingpong --loopback --op write -s 4K --verify  # check every byte
          rdma-pingpong -R -d rxe0 -n 1000 10.0.0.1      # through rdma_cm, against
              # `ib_send_lat -R` (or `rdma-pingpong -R` as the server)
        """)

    @OptionGroup public var common: CommonOptions

    @Option(name: .customLong("op"), help: "send, write, read or atomic.")
    public var operation: LatencyOperation = .send

    @Option(name: [.customShort("s"), .customLong("size")], help: "Message size in bytes (default 2; 8 for atomic).")
    public var size: ByteCount?

    @Option(name: .customLong("warmup"), help: "Warm-up iterations before measuring (default: 10% of -n, at most 1000).")
    public var warmup: Int?

    @Flag(name: .customLong("perftest"), help: "The server is perftest's ib_send_lat, ib_write_lat, ib_read_lat or ib_atomic_lat (--op send/write/read/atomic): speak its exchange (-s or -a, -n or -D — the same on both sides; no warm-up; not -D with -a, which perftest refuses). Our server answers their clients without it, but perftest's exchange carries none of the client's -s/-a/-n/-D: for SEND and WRITE give our server the client's -s or -a and -n or -D, as perftest's own server needs them; as the target of READs and atomics it needs none (it exposes 8 MiB and waits for the client's close).")
    public var perftestPeer = false

    @Flag(name: .customLong("verify"), help: "Fill every message with a per-iteration pattern and check every received byte, outside the timed region (a sample then runs from the post to the reply being seen); the server echoes what it received. Reports the bytes verified; a mismatch is an error naming the message and byte.")
    public var verify = false

    @Option(name: .customLong("histogram"), help: ArgumentHelp("Write the HdrHistogram percentile distribution (µs).", valueName: "FILE"))
    public var histogramFile: String?

    public init() {}

    public func run() throws {
        try runReportingErrors("rdma-pingpong") { () throws(PerfError) in try execute() }
    }

    func parameters() throws(PerfError) -> LatencyParameters {
        let limits = RunLimits.standard
        try common.validate(explicitSize: size, maximumIterations: limits.maximumLatencyIterations)
        if let warmup, !(0...limits.maximumWarmup).contains(warmup) { throw .usage("--warmup \(warmup): give 0…\(limits.maximumWarmup)") }
        if perftestPeer {
            guard common.server != nil else {
                throw .usage("--perftest speaks ib_send_lat's, ib_write_lat's, ib_read_lat's and ib_atomic_lat's exchange as a client: name the server")
            }
            if common.duration != nil { try Self.checkPerftestDuration(operation: operation, all: common.all) }
        }
        if verify, perftestPeer { throw .usage("--verify needs our server (it echoes what it received); perftest's does not") }
        if common.connection == .UD {
            if operation != .send { throw .usage("-c UD with --op \(operation): datagrams carry SENDs only (perftest: \"UD connection only possible in SEND verb\")") }
            if common.server != nil, !perftestPeer { throw .usage("-c UD is spoken over perftest's exchange only", hint: "add --perftest") }
            if verify { throw .usage("-c UD with --verify: --verify runs over our exchange, which is RC only") }
        }
        if common.completionEvents, operation == .write {
            throw .usage("-e with --op write: WRITE ping-pong waits on a byte in memory, no completion comes to wake it", hint: "drop -e")
        }
        let sizes = operation == .atomic ? [size?.value ?? 8] : common.sizes(defaultSize: 2, explicit: size)
        if operation == .atomic, common.all { throw .usage("-a with --op atomic: atomics are always 8 bytes") }
        let iterations = common.duration == nil ? (common.iterations ?? 1000) : nil
        let warm = warmup ?? (iterations.map { min(1000, $0 / 10) } ?? 100)
        return LatencyParameters(operation: operation, sizes: sizes, iterations: iterations, duration: common.duration,
                                 warmup: warm, inlineSize: common.inlineSize, mtu: common.mtu,
                                 qpTimeout: common.qpTimeout, progressTimeout: common.progressTimeout, spin: common.spin,
                                 verify: verify)
    }

    func execute() throws(PerfError) {
        let parameters = try parameters()
        installInterruptHandler()
        let opened = try common.openDevice(tool: "rdma-pingpong")
        defer { opened.close() }
        let sweep = parameters.sizes.count > 1
        let printer = LatencyPrinter(json: try OutputSink.open(common.json), output: common.output, operation: operation)
        if common.loopback {
            let common = self.common
            let server = try LoopbackServer(opened: opened, connectTimeout: common.connectTimeout) { peer, control, admission throws(PerfError) in
                try LatencySession.serve(opened: peer, control: control, admission: admission, progressTimeout: common.progressTimeout,
                                         inlineSize: common.inlineSize, mtu: common.mtu, qpTimeout: common.qpTimeout, spin: common.spin,
                                         log: { _ in }, report: { _, _, _ in })
            }
            var results: [LatencyResult] = []
            var clientError: PerfError?
            do throws(PerfError) {
                let control = try server.connect(timeout: common.connectTimeout)
                defer { control.close() }
                results = try LatencySession.runClient(opened: opened, control: control, parameters: parameters) { printer.print($0, path: opened.path) }
            } catch { clientError = error }
            try server.finish(tool: "rdma-pingpong", clientError: clientError, wait: common.progressTimeout + 5)
            try finish(results, sweep: sweep)
        } else if common.rdmaCM {
            try runThroughConnectionManager(opened: opened, parameters: parameters, printer: printer)
        } else if let host = common.server, perftestPeer {
            let control = try connectControl(host: host, port: common.port, timeout: common.connectTimeout)
            let results = try PerftestLatency.run(opened: opened, control: control, isClient: true, operation: operation,
                                                  connection: common.connection.queuePairKind, sizes: parameters.sizes,
                                                  iterations: parameters.iterations ?? 1000, duration: parameters.duration, inlineSize: common.inlineSize,
                                                  qpTimeout: common.qpTimeout, timeout: common.progressTimeout, spin: common.spin,
                                                  log: { printError("rdma-pingpong: \($0)") })
            for result in results { printer.print(result, path: opened.path) }
            try finish(results, sweep: sweep)
        } else if let host = common.server {
            let control = try connectControl(host: host, port: common.port, timeout: common.connectTimeout)
            let results = try LatencySession.runClient(opened: opened, control: control, parameters: parameters) { printer.print($0, path: opened.path) }
            try finish(results, sweep: sweep)
        } else {
            let listener = try ControlListener(port: common.port, address: common.listenAddress(opened))
            defer { listener.close() }
            printError("rdma-pingpong: waiting for a client on \(listener.address) TCP port \(listener.port) (at most \(common.connectTimeout) s)")
            try serve(opened: opened, listener: listener, parameters: parameters, printer: printer)
        }
        if stopRequested() { throw PerfError("interrupted (the figures above are what was measured)", exitCode: 130) }
    }

    /// `-R`: perftest's rdma_cm exchange, either role (against `ib_*_lat -R` or ourselves).
    func runThroughConnectionManager(opened: OpenedDevice, parameters: LatencyParameters, printer: LatencyPrinter) throws(PerfError) {
        let log: (String) -> Void = { printError("rdma-pingpong: \($0)") }
        let link: PerftestConnectionManagerLink
        if let host = common.server {
            link = try PerftestConnectionManagerLink.connect(opened: opened, host: host, port: common.port, timeout: common.connectTimeout)
        } else {
            log("waiting for a client on rdma_cm port \(common.port) (at most \(common.connectTimeout) s)")
            link = try PerftestConnectionManagerLink.accept(opened: opened, port: common.port, bind: common.bindAddress,
                                                            timeout: common.progressTimeout, waitForClient: common.connectTimeout)
        }
        defer { link.close() }
        let results = try PerftestLatency.run(opened: opened, control: link, isClient: common.server != nil, operation: operation,
                                              sizes: parameters.sizes, iterations: parameters.iterations ?? 1000,
                                              inlineSize: common.inlineSize, qpTimeout: common.qpTimeout,
                                              timeout: common.progressTimeout, spin: common.spin, log: log)
        if !results.isEmpty {
            for result in results { printer.print(result, path: opened.path + ", rdma_cm") }
            try finish(results, sweep: false)
        } else {
            log("answered \(PerftestLatency.tool(for: operation)) -R's client, \(parameters.sizes[0]) B (its figures are on its side)")
        }
    }

    /// The server role: clients one after another until one run (ours or perftest's) ends.
    /// Returns how many clients were refused before it.
    @discardableResult
    func serve(opened: OpenedDevice, listener: ControlListener, parameters: LatencyParameters, printer: LatencyPrinter,
               log: @escaping (String) -> Void = { printError("rdma-pingpong: \($0)") }) throws(PerfError) -> Int {
        return try ServerLoop.serve(listener: listener, connectTimeout: common.connectTimeout, log: log) { control, admission throws(PerfError) in
            guard try control.peekFirstByte(timeout: common.progressTimeout) != UInt8(ascii: "{") else {
                try LatencySession.serve(opened: opened, control: control, admission: admission, progressTimeout: common.progressTimeout,
                                         inlineSize: common.inlineSize, mtu: common.mtu, qpTimeout: common.qpTimeout, spin: common.spin,
                                         log: log) { size, operation, statistics in
                    printer.printServer(size: size, statistics: statistics)
                }
                return
            }
            // perftest's client opens with its version string, ours with JSON.
            admission.perftest = true
            if common.duration != nil { try Self.checkPerftestDuration(operation: operation, all: common.all) }
            let results = try PerftestLatency.run(opened: opened, control: control, admission: admission, isClient: false, operation: operation,
                                                  connection: common.connection.queuePairKind, sizes: parameters.sizes, iterations: parameters.iterations ?? 1000, duration: parameters.duration,
                                                  inlineSize: common.inlineSize, qpTimeout: common.qpTimeout,
                                                  timeout: common.progressTimeout, spin: common.spin, log: log)
            if !results.isEmpty {
                // WRITE: we time our own posts too (perftest's server role opens the ping-pong).
                for result in results { printer.print(result, path: opened.path) }
                try finish(results, sweep: parameters.sizes.count > 1)
            } else {
                let what = parameters.sizes.count == 1 ? "\(parameters.sizes[0]) B" : "-a"
                log("answered \(PerftestLatency.tool(for: operation))'s client, \(what) (its figures are on its side)")
            }
        }
    }

    /// `-D` over perftest's exchange: each side runs on its own clock (perftest's from its
    /// first received message; ib_write_lat's from the start of its ping-pong).
    static func checkPerftestDuration(operation: LatencyOperation, all: Bool) throws(PerfError) {
        if all { throw .usage("-D with -a: perftest has no duration mode over all sizes") }
    }

    func finish(_ results: [LatencyResult], sweep: Bool) throws(PerfError) {
        if let histogramFile {
            for result in results {
                try writeFile(HistogramFile.name(histogramFile, size: result.size, sweep: sweep), HistogramFile.text(result.histogram))
            }
        }
        if let plot = common.plot, !results.isEmpty {
            try writeFile(plot, SVGPlot.latency(results, title: "rdma-pingpong: \(operation) latency by percentile"))
        }
    }
}

/// Prints latency results as they arrive: perftest's table (header once), our HDR row,
/// JSON lines when asked.
final class LatencyPrinter: @unchecked Sendable {
    let json: OutputSink?
    let output: OutputChoice?
    let operation: LatencyOperation
    var headerPrinted = false

    init(json: OutputSink?, output: OutputChoice?, operation: LatencyOperation) {
        self.json = json
        self.output = output
        self.operation = operation
    }

    func print(_ result: LatencyResult, path: String) {
        json?.write(JSONReport.latency(result, path: path))
        if json?.isStandardOutput == true { return }
        if output == .latency {
            Swift.print(String(format: "%f", result.statistics.averageMicroseconds))
            return
        }
        header()
        Swift.print(PerftestFormat.latencyRow(size: result.size, iterations: result.statistics.sampleCount, result.statistics))
        Swift.print(PerftestFormat.tailHeader)
        Swift.print(PerftestFormat.tailRow(size: result.size, result.statistics))
        if result.truncated { Swift.print("# size \(result.size): run cut short (Ctrl-C or sample cap): \(result.statistics.sampleCount) samples") }
        if let verified = result.verifiedBytes {
            Swift.print("# size \(result.size): --verify: \(verified) bytes received and checked (warm-up included), no mismatch")
        }
        Swift.print(PerftestFormat.resultLine)
        fflush(nil)
    }

    func printServer(size: Int, statistics: LatencyStatistics) {
        header()
        Swift.print(PerftestFormat.latencyRow(size: size, iterations: statistics.sampleCount, statistics) + "   (client's figures)")
        fflush(nil)
    }

    private func header() {
        guard !headerPrinted else { return }
        headerPrinted = true
        Swift.print(PerftestFormat.latencyNote(operation))
        Swift.print(PerftestFormat.resultLine)
        Swift.print(PerftestFormat.latencyHeader)
    }
}

/// Where JSON lines go: a file or stdout (`-`).
final class OutputSink: @unchecked Sendable {
    let handle: FileHandle
    let isStandardOutput: Bool

    init(handle: FileHandle, isStandardOutput: Bool) {
        self.handle = handle
        self.isStandardOutput = isStandardOutput
    }

    static func open(_ path: String?) throws(PerfError) -> OutputSink? {
        guard let path else { return nil }
        if path == "-" { return OutputSink(handle: .standardOutput, isStandardOutput: true) }
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw .usage("cannot write \(path)")
        }
        return OutputSink(handle: handle, isStandardOutput: false)
    }

    func write(_ line: String) {
        handle.write(Data((line + "\n").utf8))
    }
}

func writeFile(_ path: String, _ text: String) throws(PerfError) {
    do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch {
        throw .usage("cannot write \(path): \(error.localizedDescription)")
    }
}
