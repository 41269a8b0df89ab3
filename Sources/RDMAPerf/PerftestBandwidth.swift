import RDMA

// perftest's bandwidth exchange (ib_write_bw, ib_read_bw, ib_send_bw); the exchange itself and the
// latency tools' part are in PerftestWire.swift.

/// What `ib_*_bw` exchanges after the run (its `xchg_bw_reports`, peer version ≥ 5.33,
/// no per-port report): five 8-byte big-endian values, each its own exchange step —
/// message size, iterations, then the peak and average bandwidth (MiB/s, IEEE double)
/// and the message rate (Mpps). A half-duplex server prints the client's report as its
/// own table.
public struct PerftestBandwidthReport: Equatable, Sendable {
    public var size: UInt64
    public var iterations: UInt64
    public var peakMiBps: Double
    public var averageMiBps: Double
    public var messageRateMpps: Double

    public init(size: UInt64, iterations: UInt64, peakMiBps: Double, averageMiBps: Double, messageRateMpps: Double) {
        self.size = size
        self.iterations = iterations
        self.peakMiBps = peakMiBps
        self.averageMiBps = averageMiBps
        self.messageRateMpps = messageRateMpps
    }

    /// Our figures as perftest reports them (MiB/s, Mpps).
    init(_ statistics: BandwidthStatistics) {
        self.init(size: UInt64(statistics.messageSize), iterations: UInt64(statistics.messages),
                  peakMiBps: statistics.peakBytesPerSecond / 1_048_576, averageMiBps: statistics.averageBytesPerSecond / 1_048_576,
                  messageRateMpps: statistics.messageRateMpps)
    }

    /// The five 8-byte fields in exchange order.
    public var fields: [[UInt8]] {
        [size, iterations, peakMiBps.bitPattern, averageMiBps.bitPattern, messageRateMpps.bitPattern].map { value in
            (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
        }
    }

    public init?(fields: [[UInt8]]) {
        guard fields.count == 5, fields.allSatisfy({ $0.count == 8 }) else { return nil }
        let values = fields.map { $0.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        self.init(size: values[0], iterations: values[1], peakMiBps: Double(bitPattern: values[2]),
                  averageMiBps: Double(bitPattern: values[3]), messageRateMpps: Double(bitPattern: values[4]))
    }
}

/// WRITE, READ, atomic and SEND bandwidth against perftest's `ib_write_bw` / `ib_read_bw` /
/// `ib_atomic_bw` / `ib_send_bw` (`-q N`, `-a`, `-b`, `-D`), either role. The WRITE, READ
/// and atomic binaries exchange the same way and their server is passive; `ib_send_bw`'s
/// server receives and counts.
public enum PerftestBandwidth {
    /// `ib_*_bw`'s key-line exchanges once the keys (a line per QP) are swapped and the
    /// QPs connected: for SEND first a barrier; the remote-QP prints (a line per QP); a
    /// barrier — for SEND once the server's receives are posted (`postReceives` runs just
    /// before it). After the run `ib_write_bw`/`ib_read_bw` exchange one more, the reports
    /// and the close (a key line and the text "done"); `ib_send_bw` only the close, each
    /// side printing its own figures.
    static func connectedSteps(_ exchange: PerftestExchange, operation: BandwidthOperation, mine: [PerftestKey], theirs: [PerftestKey],
                               postReceives: () throws(PerfError) -> Void = {}) throws(PerfError) {
        if operation == .send { _ = try exchange.keys(mine[0]) }
        try exchange.printSteps(mine: mine, theirs: theirs)
        if operation == .send { try postReceives() }
        _ = try exchange.keys(mine[0])
    }

    /// perftest's binary for each operation.
    public static func tool(for operation: BandwidthOperation) -> String {
        switch operation {
        case .write: "ib_write_bw"
        case .read: "ib_read_bw"
        case .send: "ib_send_bw"
        case .atomic: "ib_atomic_bw"
        }
    }

    /// Our client of `ib_write_bw`/`ib_read_bw`/`ib_atomic_bw`/`ib_send_bw`'s server: each
    /// size in turn (`-a`: perftest's client sweeps 2 … 2^23 — WRITE and READ with no
    /// exchange between sizes, then the last size's report; SEND with a key line before
    /// and after each size), `report` called as each size ends.
    /// `-b` (any operation, with or without `-a`), either role (`isClient` false: we
    /// answer their client, with our own -s/-n/-q like theirs): both sides run each size —
    /// WRITE/READ/atomic after one more key line (with `-a` another after the run), SEND
    /// once both sides' receives are posted, expecting the peer's -n × -q — then swap
    /// their reports (`xchg_bw_reports`) and close; the figures returned are the sum of
    /// both directions, like perftest's.
    /// `-D` (one size; any operation, and with `-b` WRITE, READ and atomic): our loop runs
    /// for that long; their server waits for the same epilogue as after -n (with `-b` the
    /// reports are swapped as after -n: `ib_send_bw -D -b` swaps none and is not spoken).
    /// `connection` `.unreliableDatagram` (`ib_send_bw -c UD`; SEND, half duplex): UD QPs,
    /// each SEND aimed at the peer's QP of the same index; `-a` sweeps 2 B … the path MTU.
    public static func runClient(opened: OpenedDevice, control: any PerftestChannel, parameters: ThroughputParameters,
                                 connection: QueuePairKind = .reliableConnected, isClient: Bool = true, admission: ServerLoop.Admission = .init(),
                                 log: (String) -> Void, report: (BandwidthStatistics) -> Void = { _ in }) throws(PerfError) -> [BandwidthStatistics] {
        let duplex = parameters.bidirectional
        let operation = parameters.operation
        let timed = parameters.duration != nil && parameters.iterations == nil
        let datagrams = connection == .unreliableDatagram
        guard isClient || duplex, parameters.iterations != nil || timed,
              !timed || parameters.sizes.count == 1 && !(duplex && operation == .send),
              operation != .atomic || parameters.sizes == [BandwidthOperation.atomicSize] else {
            throw .usage("--perftest speaks ib_*_bw's exchange with -n, or -D (one size; with -b not for SEND); atomics move \(BandwidthOperation.atomicSize) B")
        }
        guard !datagrams || operation == .send && !duplex && !(control is PerftestConnectionManagerLink) else {
            throw .usage("-c UD over ib_send_bw's exchange: --op send, without -b or -R")
        }
        let length = parameters.duration.map { "for \($0) s" } ?? "\(parameters.iterations ?? 0) ×"
        let tool = tool(for: operation)
        try ThroughputSession.checkSizes(parameters.sizes, opened: opened)
        let exchange = PerftestExchange(control: control, isClient: isClient, timeout: parameters.progressTimeout)
        let (version, mtu) = try exchange.preamble(localMTU: opened.activeMTU, admission: admission)
        admission.admitted = true
        let sizes = PerftestExchange.datagramSizes(parameters.sizes, datagrams: datagrams, mtu: mtu, log: log)
        let shown = sizes.count == 1 ? "\(sizes[0]) B" : "each size \(sizes[0]) … \(sizes[sizes.count - 1]) B (give -a on both sides)"
        log("peer is perftest \(version) (\(tool)'s exchange; \(operation) bandwidth\(duplex ? " both ways" : ""), \(length) \(shown) on each of \(parameters.queuePairs) QP(s) — give the same -q on both sides)")
        // -b: the peer's WRITEs/READs may step through its cycle buffer: room for them as
        // for a half-duplex client (`serve`).
        let room = duplex ? [min(opened.maxMessageSize, targetRoom)] : []
        let queues = try ThroughputSession.prepare(opened: opened, queuePairs: parameters.queuePairs, sizes: sizes + room,
                                                   depth: parameters.sendDepth, inlineSize: parameters.inlineSize, kind: connection)
        defer { queues.close() }
        let (mine, theirs) = try exchange.connect(queues, opened: opened, mtu: mtu, qpTimeout: parameters.qpTimeout)
        // ib_send_bw -b: our receives for its SENDs are posted before the last barrier, as its own.
        let sendBothWays = duplex && operation == .send
        try connectedSteps(exchange, operation: operation, mine: mine, theirs: theirs) { () throws(PerfError) in
            if sendBothWays { try ThroughputSession.postReceives(queues) }
        }
        let pump = CompletionPump(queue: queues.completionQueue, progressTimeout: parameters.sendingProgressTimeout, control: control as? ControlConnection)
        pump.watchControl = false
        pump.yieldWhenIdle = !parameters.spin
        // The loop WRITEs at `slot` into the region it is given (start it `slot` below the
        // address perftest advertised) and READs from its start. Every QP uses QP 0's area
        // (one region, as with our server): perftest registers one buffer for all its QPs.
        let slot = operation == .write ? UInt64(queues.slot) : 0
        let stamps = StampBuffers(capacity: ThroughputParameters.stampCapacity(parameters), queuePairs: parameters.queuePairs)
        var results: [BandwidthStatistics] = []
        // ib_send_bw -a: around each size a key line before (its server's receives for the
        // size are posted; the first is `connectedSteps`' last) and one after.
        let sendSweep = operation == .send && sizes.count > 1
        for (index, size) in sizes.enumerated() {
            if stopRequested() { break }
            if sendSweep, index > 0 { _ = try exchange.keys(mine[0]) }
            if duplex, operation != .send { _ = try exchange.keys(mine[0]) }   // both sides' send requests are ready
            defer { if duplex { opened.backgroundProgress(false) } }   // also when the exchange fails after our run
            let region = RemoteMemory(address: theirs[0].virtualAddress &- slot, rkey: theirs[0].rkey, length: UInt32(clamping: Int(slot) + size))
            var progress = ProgressLine()
            var oneWay = parameters
            oneWay.bidirectional = false   // the peer's WRITEs/READs need nothing from our loop
            let outcome = try ThroughputLoop.run(queues: queues, remote: region, parameters: oneWay, size: size, sending: true,
                                                 receiving: sendBothWays, expectPeerDone: false,
                                                 peerMessages: sendBothWays ? (parameters.iterations ?? 0) * parameters.queuePairs : nil,
                                                 stamps: stamps, pump: pump, progress: &progress) {
                // -b: the peer's run may outlast ours; its requests need our engine driven
                // until the reports are swapped (the `defer` above stops it with the size).
                if duplex { opened.backgroundProgress(true) }
            }
            progress.finish()
            var statistics = BandwidthStatistics(messageSize: size, messages: outcome.sent, elapsedNanoseconds: outcome.elapsed,
                                                 peakBytesPerSecond: outcome.peak)
            if duplex {
                // ib_write_bw/ib_read_bw -a -b: a barrier after each size's run, then the reports.
                if operation != .send, sizes.count > 1 { _ = try exchange.keys(mine[0]) }
                let theirs = try swapReports(exchange, ours: statistics)
                log("this direction: \(statistics.messages) × \(size) B at \(String(format: "%.2f", statistics.averageBytesPerSecond / 1_048_576)) MiB/s; perftest's: \(theirs.iterations) at \(String(format: "%.2f", theirs.averageMiBps)) MiB/s")
                statistics = sum(statistics, theirs)
            }
            results.append(statistics)
            report(statistics)
            if sendSweep { _ = try exchange.keys(mine[0]) }
        }
        if duplex || operation == .send {
            try close(exchange, mine: mine[0], timeout: parameters.progressTimeout)
            return results
        }
        _ = try exchange.keys(mine[0])          // the client is done
        // perftest reports the messages of all QPs (its -n × -q) as "iterations"; after -a,
        // of the last size.
        let last = results.last ?? BandwidthStatistics(messageSize: sizes[0], messages: 0, elapsedNanoseconds: 0, peakBytesPerSecond: 0)
        let ours = PerftestBandwidthReport(last)
        for field in ours.fields { _ = try exchange.swap(field, count: 8, what: "perftest's bandwidth report") }
        _ = try? PerftestExchange(control: control, isClient: true, timeout: min(parameters.progressTimeout, 5)).keys(mine[0])
        try? control.sendRaw(Array("done".utf8) + [0])
        return results
    }

    /// `xchg_bw_reports` after a `-b` run: ours out, theirs in. The peer may still be
    /// moving data into our memory meanwhile: `runClient` keeps the engine driven from the
    /// end of our run until the size is over.
    static func swapReports(_ exchange: PerftestExchange, ours: BandwidthStatistics) throws(PerfError) -> PerftestBandwidthReport {
        let report = PerftestBandwidthReport(ours)
        var fields: [[UInt8]] = []
        for field in report.fields { fields.append(try exchange.swap(field, count: 8, what: "perftest's bandwidth report")) }
        guard let theirs = PerftestBandwidthReport(fields: fields), theirs.size == report.size,
              theirs.iterations <= UInt64(RunLimits.standard.maximumBandwidthIterations) * 1024,
              theirs.averageMiBps.isFinite, theirs.averageMiBps >= 0, theirs.peakMiBps.isFinite, theirs.peakMiBps >= 0 else {
            throw .peer("perftest's -b report is out of bounds or for another size (\(fields.map { $0.map { String($0, radix: 16) }.joined() }))",
                        hint: "give the same -s on both sides")
        }
        return theirs
    }

    /// Both directions of a `-b` run as one figure, as for our own `-b` (`ThroughputSession.combine`):
    /// perftest's `print_full_bw_report` adds the two average rates (and peaks). Its report has
    /// no elapsed time: theirs is the one its messages and average rate give.
    static func sum(_ ours: BandwidthStatistics, _ theirs: PerftestBandwidthReport) -> BandwidthStatistics {
        let rate = theirs.averageMiBps * 1_048_576
        let seconds = rate > 0 ? Double(theirs.iterations) * Double(ours.messageSize) / rate : 0
        let other = BandwidthStatistics(messageSize: ours.messageSize, messages: Int(theirs.iterations),
                                        elapsedNanoseconds: MonotonicClock.span(seconds: seconds), peakBytesPerSecond: theirs.peakMiBps * 1_048_576)
        return ThroughputSession.combine(ours, other)
    }

    /// Answers `ib_write_bw`'s, `ib_read_bw`'s or `ib_atomic_bw`'s client (half duplex, `queuePairs` QPs —
    /// its -q, which perftest does not exchange; any size or `-a`): the passive target of
    /// its WRITEs or READs. Returns the client's report (perftest measured it; after `-a`,
    /// its last size), which the server prints. perftest's client says nothing during the
    /// run: the wait for its end is bounded by `runTimeout`, not by the progress timeout.
    public static func serve(opened: OpenedDevice, control: any PerftestChannel, admission: ServerLoop.Admission = .init(),
                             queuePairs: Int = 1, inlineSize: Int?, qpTimeout: UInt8,
                             timeout: Double, runTimeout: Double, log: (String) -> Void) throws(PerfError) -> PerftestBandwidthReport? {
        let exchange = PerftestExchange(control: control, isClient: false, timeout: timeout)
        let (version, mtu) = try exchange.preamble(localMTU: opened.activeMTU, admission: admission)
        admission.admitted = true
        log("peer is perftest \(version) (ib_write_bw's, ib_read_bw's or ib_atomic_bw's client; we are the target of its WRITEs, READs or atomics — at most \(min(opened.maxMessageSize, targetRoom)) B each; its figures come at the end)")
        // Its size is not exchanged (below 6.28) and its client may step its remote address
        // through its cycle buffer: a target region for the largest size `-a` reaches.
        let room = min(opened.maxMessageSize, targetRoom)
        let queues = try ThroughputSession.prepare(opened: opened, queuePairs: queuePairs, sizes: [room], depth: 128, inlineSize: inlineSize)
        defer { queues.close() }
        let (mine, theirs) = try exchange.connect(queues, opened: opened, mtu: mtu, qpTimeout: qpTimeout)
        try connectedSteps(exchange, operation: .write, mine: mine, theirs: theirs)
        opened.backgroundProgress(true)
        defer { opened.backgroundProgress(false) }
        _ = try PerftestExchange(control: control, isClient: false, timeout: runTimeout).keys(mine[0])   // its run is over
        let nothing = PerftestBandwidthReport(size: 0, iterations: 0, peakMiBps: 0, averageMiBps: 0, messageRateMpps: 0)
        var fields: [[UInt8]] = []
        for field in nothing.fields { fields.append(try exchange.swap(field, count: 8, what: "perftest's bandwidth report")) }
        _ = try? PerftestExchange(control: control, isClient: false, timeout: min(timeout, 5)).keys(mine[0])
        try? control.sendRaw(Array("done".utf8) + [0])
        return PerftestBandwidthReport(fields: fields)
    }

    /// perftest's `ctx_close_connection`: a key line each way, then the text "done".
    static func close(_ exchange: PerftestExchange, mine: PerftestKey, timeout: Double) throws(PerfError) {
        _ = try PerftestExchange(control: exchange.control, isClient: exchange.isClient, timeout: timeout).keys(mine)
        try? exchange.control.sendRaw(Array("done".utf8) + [0])
    }

    /// Answers `ib_send_bw`'s client (half duplex, RC, `queuePairs` QPs — its -q — over
    /// TCP): posts receives of `size` bytes on each QP (its -s must not be larger), counts
    /// and reposts until its close, and returns what we received, timed from the first
    /// receive to the last (its size and count are not exchanged: the largest completion's
    /// length is its size).
    /// `sizeCount` > 1: its `-a` (the key lines around each size, as `runClient` sends
    /// them); one figure per size.
    /// `connection` UD: its `-c UD` (`sizeCount` then counts its -a sweep up to the MTU).
    public static func serveSend(opened: OpenedDevice, control: ControlConnection, admission: ServerLoop.Admission = .init(),
                                 size: Int, sizeCount: Int = 1, queuePairs: Int = 1, connection: QueuePairKind = .reliableConnected,
                                 inlineSize: Int?, qpTimeout: UInt8, timeout: Double, spin: Bool = false,
                                 log: (String) -> Void) throws(PerfError) -> [BandwidthStatistics] {
        let exchange = PerftestExchange(control: control, isClient: false, timeout: timeout)
        let (version, mtu) = try exchange.preamble(localMTU: opened.activeMTU, admission: admission)
        admission.admitted = true
        let datagrams = connection == .unreliableDatagram
        // With -a over UD the sweep is 2 B … the MTU: one size per power of two.
        let sizeCount = datagrams && sizeCount > 1 ? mtu.bytes.trailingZeroBitCount : sizeCount
        let size = datagrams ? min(size, mtu.bytes) : size
        log("peer is perftest \(version) (ib_send_bw's client\(datagrams ? " over UD" : ""); we receive up to \(size) B per message — give it the same -s)")
        let queues = try ThroughputSession.prepare(opened: opened, queuePairs: queuePairs, sizes: [size], depth: 128, inlineSize: inlineSize,
                                                   kind: connection)
        defer { queues.close() }
        let (mine, theirs) = try exchange.connect(queues, opened: opened, mtu: mtu, qpTimeout: qpTimeout)
        try connectedSteps(exchange, operation: .send, mine: mine, theirs: theirs) { () throws(PerfError) in try ThroughputSession.postReceives(queues) }
        let pump = CompletionPump(queue: queues.completionQueue, progressTimeout: timeout, control: control)
        pump.watchControl = false
        pump.yieldWhenIdle = !spin
        pump.activity = "receiving ib_send_bw's SENDs"
        pump.progressed(at: MonotonicClock.nanoseconds())
        let pairs = queues.queuePairs
        let element = queues.memory.scatterGather(offset: queues.slot, length: queues.slot)
        var results: [BandwidthStatistics] = []
        for round in 0..<sizeCount {
            if round > 0 { _ = try exchange.keys(mine[0]) }   // the next size's start
            let statistics = try receiveUntilKeyLine(pump: pump, control: control, pairs: pairs, element: element, events: queues.completionChannel != nil,
                                                     headerRoom: datagrams ? QueueSet.routeHeaderRoom : 0)
            if sizeCount > 1 { _ = try exchange.keys(mine[0]) }   // the size's end
            if let statistics { results.append(statistics) }
        }
        try close(exchange, mine: mine[0], timeout: min(timeout, 5))
        return results
    }

    /// Counts and reposts `ib_send_bw`'s SENDs until its next key line is waiting; the
    /// figures of what arrived, timed from the first receive to the last (its size and
    /// count are not exchanged: the largest completion's length is its size).
    /// `headerRoom`: what a receive holds before the message (UD's route header).
    static func receiveUntilKeyLine(pump: CompletionPump, control: ControlConnection, pairs: [QueuePair], element: ScatterGatherElement,
                                    events: Bool, headerRoom: Int = 0) throws(PerfError) -> BandwidthStatistics? {
        var received = 0, largest = 0
        var first: UInt64 = 0, last: UInt64 = 0
        var idle = 0
        // Its client says nothing until its close (a key line): look at the socket now and
        // then while no completion arrives.
        while true {
            let count = try pump.poll()
            if count == 0 {
                idle &+= 1
                if idle & 1023 == 0 || events, try control.rawAvailable(PerftestKey.messageSize) { break }
                continue
            }
            let now = MonotonicClock.nanoseconds()
            for index in 0..<count where pump.completions[index].id & receiveTag != 0 {
                if received == 0 { first = now }
                received += 1
                largest = max(largest, Int(pump.completions[index].byteLength) - headerRoom)
                let id = pump.completions[index].id   // receiveTag | the QP's index (postReceives)
                try rdma("re-posting a receive") { () throws(RDMAError) in try pairs[Int(id & 0xFFFF)].postReceive(id: id, scatterGather: element) }
            }
            last = now
            pump.tick()
        }
        guard received > 1 else { return nil }
        // The first message starts the clock: count the others.
        return BandwidthStatistics(messageSize: largest, messages: received - 1, elapsedNanoseconds: last &- first, peakBytesPerSecond: 0)
    }

    /// The target region's size for a perftest client: 8 MiB, the largest size of its
    /// `-a` sweep (larger `-s` is refused by the target with a remote access error).
    public static let targetRoom = 1 << 23
}
