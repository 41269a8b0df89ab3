import ArgumentParser
import Foundation
import RDMA

/// `rdma-throughput`: bandwidth and message rate of WRITE, SEND and READ with several QPs,
/// bidirectional, perftest-compatible flags and table, JSON and an SVG plot.
public struct ThroughputCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rdma-throughput",
        abstract: "RDMA bandwidth and message rate (perftest ib_*_bw compatible flags and table).",
        discussion: """
        BW average = bytes ÷ (last completion − first post); BW peak = the best rate
        over any run of consecutive messages (post of the first → completion of the
        last), as perftest. MiB = 2^20 B; with --report_gbits, Gb = 10^9 bit. With -b
        both sides send and the figures are summed.

        Ctrl-C (SIGINT) or SIGTERM stops posting, waits for what was posted, prints the
        figures of the size under way (with --loopback both sides end cleanly; with -b
        both directions are summed) and exits with status 130. A second Ctrl-C a
        second later exits at once.

        Examples:
          rdma-throughput --loopback                         # WRITE 64 KiB
          rdma-throughput -d rxe0                            # server
          rdma-throughput -d rxe0 --op send -q 4 -b 10.0.0.1 # client
          rdma-throughput --loopback -a --report_gbits --plot bw.svg --json bw.jsonl
          rdma-throughput --loopback --op send -q 2 --verify  # check every byte
          rdma-throughput -d rxe0 -n 5000 --perftest 10.0.0.1
              # client of `ib_write_bw -d rxe0` (--op read: of ib_read_bw,
              # --op atomic: of ib_atomic_bw, --op send: of ib_send_bw); our
              # server (--op write|read|atomic|send) also answers their clients
        """)

    @OptionGroup public var common: CommonOptions

    @Option(name: .customLong("op"), help: "write, send, read or atomic (8-byte FETCH_AND_ADD, as ib_atomic_bw).")
    public var operation: BandwidthOperation = .write

    @Option(name: [.customShort("s"), .customLong("size")], help: "Message size in bytes (default 65536; atomics: 8, the only size).")
    public var size: ByteCount?

    @Option(name: [.customShort("q"), .customLong("qp")], help: "Number of queue pairs. A server answering a perftest client needs its -q (perftest does not send it).")
    public var queuePairs: Int = 1

    @Flag(name: [.customShort("b"), .customLong("bidirectional")], help: "Both sides send; figures are summed.")
    public var bidirectional = false

    @Option(name: [.customShort("t"), .customLong("tx-depth")], help: "Send-queue depth: outstanding requests per QP.")
    public var sendDepth: Int = 128

    @Option(name: [.customShort("Q"), .customLong("cq-mod")], help: "Signal one request in this many per QP (perftest's -Q).")
    public var completionModeration: Int = 100

    @Flag(name: .customLong("report_gbits"), help: "Report Gb/s (10^9 bit) instead of MiB/s.")
    public var reportGbits = false

    @Flag(name: .customLong("verify"), help: "Fill every message with its own pattern and check every byte that landed, outside the timed region: the run goes in rounds of up to -t messages per QP, each checked (by the server for WRITE and SEND) before the next; only the rounds are timed. Reports the bytes verified; a mismatch is an error naming the QP, iteration and byte. Not with -b, --perftest or -R.")
    public var verify = false

    @Flag(name: .customLong("perftest"), help: "The server is perftest's ib_write_bw, ib_read_bw, ib_atomic_bw or ib_send_bw (--op write, read, atomic or send): speak its exchange (-s or -a, -n or -D, -q, -b — the same on both sides; not -D with -a, which perftest refuses, nor -D -b with SEND). Our server answers their clients without it; perftest's exchange does not carry the client's -q, -b or (SEND) -a, so give our server the client's -q, -b and, with --op send, -a. -D and -n need not be given to it.")
    public var perftestPeer = false

    public init() {}

    /// -s when not given: 64 KiB, or the 8 B every atomic moves.
    var defaultSize: Int { operation == .atomic ? BandwidthOperation.atomicSize : 65536 }

    public func run() throws {
        try runReportingErrors("rdma-throughput") { () throws(PerfError) in try execute() }
    }

    func parameters() throws(PerfError) -> ThroughputParameters {
        let limits = RunLimits.standard
        try common.validate(explicitSize: size, maximumIterations: limits.maximumBandwidthIterations)
        guard (1...limits.maximumQueuePairs).contains(queuePairs) else { throw .usage("-q \(queuePairs): give 1…\(limits.maximumQueuePairs) QPs") }
        guard (1...limits.maximumSendDepth).contains(sendDepth) else { throw .usage("-t \(sendDepth): give a depth of 1…\(limits.maximumSendDepth)") }
        guard queuePairs * sendDepth <= limits.maximumOutstanding else {
            throw .usage("-q \(queuePairs) -t \(sendDepth): \(queuePairs * sendDepth) outstanding requests (at most \(limits.maximumOutstanding))",
                         hint: "lower -t or -q")
        }
        guard (1...limits.maximumCompletionModeration).contains(completionModeration) else {
            throw .usage("-Q \(completionModeration): give 1…\(limits.maximumCompletionModeration)")
        }
        if let iterations = common.iterations, iterations > limits.maximumBandwidthIterations / queuePairs {
            throw .usage("-n \(iterations) -q \(queuePairs): \(iterations) messages on each of \(queuePairs) QP(s) (at most \(limits.maximumBandwidthIterations) in all)",
                         hint: "lower -n, or use -D to run for a time")
        }
        let iterations = common.duration == nil ? (common.iterations ?? 5000) : nil
        if operation == .atomic {
            // As ib_atomic_bw: "Message size cannot be changed for Atomic tests" (its -a too).
            if common.all { throw .usage("-a with --op atomic: an atomic moves \(BandwidthOperation.atomicSize) B (ib_atomic_bw refuses -a too)") }
            if let size, size.value != BandwidthOperation.atomicSize {
                throw .usage("-s \(size.value) with --op atomic: an atomic moves \(BandwidthOperation.atomicSize) B", hint: "drop -s")
            }
            if verify { throw .usage("--verify checks WRITE, SEND and READ payloads, not atomics", hint: "drop --verify") }
        }
        if verify {
            if bidirectional || perftestPeer || common.rdmaCM {
                throw .usage("--verify needs our server on the other side and one sending side", hint: "drop -b, --perftest and -R")
            }
            if let why = VerifyRing.check(sizes: common.sizes(defaultSize: defaultSize, explicit: size), queuePairs: queuePairs) {
                throw .usage("--verify -q \(queuePairs): \(why)", hint: "lower -q or -s")
            }
        }
        if common.connection == .UD {
            if operation != .send { throw .usage("-c UD with --op \(operation): datagrams carry SENDs only (perftest: \"UD connection only possible in SEND verb\")") }
            if common.server != nil, !perftestPeer { throw .usage("-c UD is spoken over perftest's exchange only", hint: "add --perftest") }
            if bidirectional || verify { throw .usage("-c UD with \(bidirectional ? "-b" : "--verify"): not spoken over UD") }
        }
        if perftestPeer, common.server == nil || common.loopback {
            throw .usage("--perftest speaks ib_write_bw's, ib_read_bw's and ib_send_bw's exchange as a client: name the server")
        }
        if perftestPeer, common.duration != nil, common.all {
            throw .usage("--perftest -D with -a: perftest refuses it too (\"Duration mode currently doesn't support running on all sizes\")")
        }
        if perftestPeer, common.duration != nil, bidirectional, operation == .send {
            throw .usage("--perftest -D with -b and --op send: not spoken yet (ib_send_bw -D -b swaps no reports; -D and -b each are)")
        }
        return ThroughputParameters(operation: operation, sizes: common.sizes(defaultSize: defaultSize, explicit: size),
                                    iterations: iterations, duration: common.duration, queuePairs: queuePairs,
                                    bidirectional: bidirectional, sendDepth: sendDepth,
                                    completionModeration: completionModeration, inlineSize: common.inlineSize,
                                    mtu: common.mtu, qpTimeout: common.qpTimeout, progressTimeout: common.progressTimeout, spin: common.spin,
                                    verify: verify)
    }

    func execute() throws(PerfError) {
        let parameters = try parameters()
        installInterruptHandler()
        let opened = try common.openDevice(tool: "rdma-throughput")
        defer { opened.close() }
        let printer = BandwidthPrinter(json: try OutputSink.open(common.json), output: common.output, gigabits: reportGbits,
                                       operation: operation, queuePairs: queuePairs, bidirectional: bidirectional, path: opened.path)
        var results: [BandwidthStatistics] = []
        if common.loopback {
            let common = self.common
            let server = try LoopbackServer(opened: opened, connectTimeout: common.connectTimeout) { peer, control, admission throws(PerfError) in
                try ThroughputSession.serve(opened: peer, control: control, admission: admission, progressTimeout: common.progressTimeout,
                                            inlineSize: common.inlineSize, mtu: common.mtu, qpTimeout: common.qpTimeout, spin: common.spin,
                                            log: { _ in }, report: { _ in })
            }
            var clientError: PerfError?
            do throws(PerfError) {
                let control = try server.connect(timeout: common.connectTimeout)
                defer { control.close() }
                results = try ThroughputSession.runClient(opened: opened, control: control, parameters: parameters) { printer.print($0) }
            } catch { clientError = error }
            try server.finish(tool: "rdma-throughput", clientError: clientError, wait: common.progressTimeout + 5)
        } else if common.rdmaCM {
            results = try runThroughConnectionManager(opened: opened, parameters: parameters, printer: printer)
        } else if let host = common.server, perftestPeer {
            let control = try connectControl(host: host, port: common.port, timeout: common.connectTimeout)
            results = try PerftestBandwidth.runClient(opened: opened, control: control, parameters: parameters,
                                                      connection: common.connection.queuePairKind,
                                                      log: { printError("rdma-throughput: \($0)") }) { printer.print($0) }
        } else if let host = common.server {
            let control = try connectControl(host: host, port: common.port, timeout: common.connectTimeout)
            results = try ThroughputSession.runClient(opened: opened, control: control, parameters: parameters) { printer.print($0) }
        } else {
            let listener = try ControlListener(port: common.port, address: common.listenAddress(opened))
            defer { listener.close() }
            printError("rdma-throughput: waiting for a client on \(listener.address) TCP port \(listener.port) (at most \(common.connectTimeout) s)")
            try serve(opened: opened, listener: listener, printer: printer)
        }
        if let plot = common.plot, !results.isEmpty {
            try writeFile(plot, SVGPlot.bandwidth(results, gigabits: reportGbits, title: "rdma-throughput: \(operation) bandwidth by message size"))
        }
        if stopRequested() { throw PerfError("interrupted (the figures above are what was measured)", exitCode: 130) }
    }
}

extension ThroughputCommand {
    /// `-R`: perftest's rdma_cm exchange (`ib_write_bw -R`, `ib_read_bw -R`), either role.
    func runThroughConnectionManager(opened: OpenedDevice, parameters: ThroughputParameters,
                                     printer: BandwidthPrinter) throws(PerfError) -> [BandwidthStatistics] {
        guard operation == .write || operation == .read, queuePairs == 1, !bidirectional else {
            throw .usage("-R speaks ib_write_bw's and ib_read_bw's rdma_cm exchange: --op write or read, -q 1, no -b")
        }
        let log: (String) -> Void = { printError("rdma-throughput: \($0)") }
        if let host = common.server {
            let link = try PerftestConnectionManagerLink.connect(opened: opened, host: host, port: common.port, timeout: common.connectTimeout)
            defer { link.close() }
            return try PerftestBandwidth.runClient(opened: opened, control: link, parameters: parameters, log: log) { printer.print($0) }
        }
        log("waiting for a client on rdma_cm port \(common.port) (at most \(common.connectTimeout) s)")
        let link = try PerftestConnectionManagerLink.accept(opened: opened, port: common.port, bind: common.bindAddress,
                                                            timeout: common.progressTimeout, waitForClient: common.connectTimeout)
        defer { link.close() }
        let report = try PerftestBandwidth.serve(opened: opened, control: link, inlineSize: common.inlineSize, qpTimeout: common.qpTimeout,
                                                 timeout: common.progressTimeout, runTimeout: max(common.progressTimeout, 600), log: log)
        if let report, report.size > 0 { log("client's report: \(report.size) B × \(report.iterations), average \(report.averageMiBps) MiB/s") }
        return []
    }

    /// The server role: clients one after another until one run (ours or perftest's) ends.
    /// Returns how many clients were refused before it.
    @discardableResult
    func serve(opened: OpenedDevice, listener: ControlListener, printer: BandwidthPrinter,
               log: @escaping (String) -> Void = { printError("rdma-throughput: \($0)") }) throws(PerfError) -> Int {
        return try ServerLoop.serve(listener: listener, connectTimeout: common.connectTimeout, log: log) { control, admission throws(PerfError) in
            guard try control.peekFirstByte(timeout: common.progressTimeout) != UInt8(ascii: "{") else {
                try ThroughputSession.serve(opened: opened, control: control, admission: admission, progressTimeout: common.progressTimeout,
                                            inlineSize: common.inlineSize, mtu: common.mtu, qpTimeout: common.qpTimeout, spin: common.spin,
                                            log: log) { statistics in
                    printer.print(statistics, note: "   (client's figures)")
                }
                return
            }
            // perftest's client opens with its version string, ours with JSON.
            admission.perftest = true
            if bidirectional {
                // ib_*_bw -b: both sides run; our -s or -a, -n and -q must be theirs.
                let parameters = try parameters()
                _ = try PerftestBandwidth.runClient(opened: opened, control: control, parameters: parameters, isClient: false,
                                                    admission: admission, log: log) { printer.print($0, note: "   (both directions)") }
                return
            }
            if operation == .send {
                let sizes = common.sizes(defaultSize: defaultSize, explicit: size)
                let received = try PerftestBandwidth.serveSend(opened: opened, control: control, admission: admission,
                                                               size: sizes.max() ?? 65536, sizeCount: sizes.count,
                                                               queuePairs: queuePairs, connection: common.connection.queuePairKind,
                                                               inlineSize: common.inlineSize, qpTimeout: common.qpTimeout,
                                                               timeout: common.progressTimeout, spin: common.spin, log: log)
                for statistics in received { printer.print(statistics, note: "   (received here, first message to last)") }
                return
            }
            // perftest's client is silent during its run: the wait for its end is bounded
            // by the time its largest run may take, not only by --timeout.
            let report = try PerftestBandwidth.serve(opened: opened, control: control, admission: admission, queuePairs: queuePairs,
                                                     inlineSize: common.inlineSize,
                                                     qpTimeout: common.qpTimeout, timeout: common.progressTimeout,
                                                     runTimeout: max(common.progressTimeout, 600), log: log)
            guard let report, report.size > 0, report.size <= UInt64(RunLimits.standard.maximumSize),
                  report.iterations <= UInt64(RunLimits.standard.maximumBandwidthIterations),
                  report.averageMiBps > 0, report.averageMiBps.isFinite, report.peakMiBps.isFinite else {
                if let report { log("perftest's client sent a report out of bounds (size \(report.size), iterations \(report.iterations), average \(report.averageMiBps) MiB/s): not printed") }
                return
            }
            // perftest's "iterations" are the messages of all its QPs (-n × -q).
            let messages = Int(report.iterations)
            let seconds = Double(report.size) * Double(messages) / (report.averageMiBps * 1_048_576)
            let statistics = BandwidthStatistics(messageSize: Int(report.size), messages: messages,
                                                 elapsedNanoseconds: MonotonicClock.span(seconds: seconds),
                                                 peakBytesPerSecond: report.peakMiBps * 1_048_576)
            printer.print(statistics, note: "   (client's figures)")
        }
    }
}

/// Prints bandwidth rows as they arrive: perftest's table, or JSON lines, or one figure.
final class BandwidthPrinter: @unchecked Sendable {
    let json: OutputSink?
    let output: OutputChoice?
    let gigabits: Bool
    let operation: BandwidthOperation
    let queuePairs: Int
    let bidirectional: Bool
    let path: String
    var headerPrinted = false

    init(json: OutputSink?, output: OutputChoice?, gigabits: Bool, operation: BandwidthOperation, queuePairs: Int,
         bidirectional: Bool, path: String) {
        self.json = json
        self.output = output
        self.gigabits = gigabits
        self.operation = operation
        self.queuePairs = queuePairs
        self.bidirectional = bidirectional
        self.path = path
    }

    func print(_ statistics: BandwidthStatistics, note: String = "") {
        json?.write(JSONReport.bandwidth(statistics, operation: operation, qps: queuePairs, bidirectional: bidirectional, path: path))
        if json?.isStandardOutput == true { return }
        switch output {
        case .bandwidth:
            Swift.print(String(format: "%.2f", BandwidthStatistics.format(statistics.averageBytesPerSecond, gigabits: gigabits)))
        case .message_rate:
            Swift.print(String(format: "%.6f", statistics.messageRateMpps))
        case .latency:
            Swift.print(String(format: "%.2f", statistics.messageRateMpps > 0 ? 1 / statistics.messageRateMpps : 0))
        case nil:
            if !headerPrinted {
                headerPrinted = true
                Swift.print("# \(operation) bandwidth, \(queuePairs) QP(s)\(bidirectional ? ", bidirectional (sum of both directions)" : ""); clock CLOCK_MONOTONIC_RAW")
                Swift.print(PerftestFormat.resultLine)
                Swift.print(gigabits ? PerftestFormat.bandwidthHeaderGbits : PerftestFormat.bandwidthHeaderMiB)
            }
            Swift.print(PerftestFormat.bandwidthRow(statistics, gigabits: gigabits) + note)
            if let verified = statistics.verifiedBytes {
                Swift.print("# size \(statistics.messageSize): --verify: \(verified) bytes received and checked, no mismatch")
            }
            if let spread = statistics.queuePairSpread {
                let unit = gigabits ? "Gb/s" : "MiB/s"
                func figure(_ rate: Double) -> String { String(format: "%.2f", BandwidthStatistics.format(rate, gigabits: gigabits)) }
                Swift.print("# size \(statistics.messageSize): per-QP bandwidth over \(spread.queuePairs) QPs: min \(figure(spread.minimumBytesPerSecond)), "
                            + "median \(figure(spread.medianBytesPerSecond)), max \(figure(spread.maximumBytesPerSecond)) \(unit); "
                            + "Jain's index \(String(format: "%.3f", spread.jainIndex))")
            }
        }
        fflush(nil)
    }
}
