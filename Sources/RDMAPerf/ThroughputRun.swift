import RDMA

/// What one bandwidth run moves; the client sends it to the server in `hello`.
public struct ThroughputParameters: Sendable, Equatable {
    public var operation: BandwidthOperation
    public var sizes: [Int]
    /// Messages per QP per size (perftest's -n for bandwidth tests); nil with `duration`.
    public var iterations: Int?
    public var duration: Double?
    public var queuePairs: Int
    public var bidirectional: Bool
    /// Outstanding requests per QP (perftest's -t).
    public var sendDepth: Int
    /// Signal one request in this many per QP (perftest's --cq-mod / -Q).
    public var completionModeration: Int
    public var inlineSize: Int?
    public var mtu: Int?
    public var qpTimeout: UInt8
    public var progressTimeout: Double
    /// Never yield while polling (--spin).
    public var spin: Bool
    /// Fill every message with its own pattern and check every byte that landed, in
    /// rounds (--verify; see `VerifiedThroughput`).
    public var verify: Bool

    public init(operation: BandwidthOperation, sizes: [Int], iterations: Int?, duration: Double?, queuePairs: Int = 1,
                bidirectional: Bool = false, sendDepth: Int = 128, completionModeration: Int = 100, inlineSize: Int? = nil, mtu: Int? = nil,
                qpTimeout: UInt8 = 14, progressTimeout: Double = 10, spin: Bool = false, verify: Bool = false) {
        self.spin = spin
        self.verify = verify
        self.operation = operation
        self.sizes = sizes
        self.iterations = iterations
        self.duration = duration
        self.queuePairs = queuePairs
        self.bidirectional = bidirectional
        self.sendDepth = sendDepth
        self.completionModeration = completionModeration
        self.inlineSize = inlineSize
        self.mtu = mtu
        self.qpTimeout = qpTimeout
        self.progressTimeout = progressTimeout
    }

    /// Per-message timestamps kept at most (for the peak figure): 64 MiB of them. A run
    /// with more messages times the first ones only; its average counts them all.
    public static let stampCap = 1 << 22

    /// The progress bound of a sending loop: `--timeout` plus the time the bytes between
    /// two signaled completions take at 8 MiB/s (`progressBound`) — with -Q 100 and 8 MiB
    /// messages a completion comes only every `ThroughputLoop.signalingBytes` (256 MiB),
    /// half a minute on a slow path (kernel rxe under TCG moves ~9 MiB/s).
    var sendingProgressTimeout: Double {
        let between = (sizes.max() ?? 0) * max(1, min(completionModeration, sendDepth)) * max(1, queuePairs)
        return progressBound(progressTimeout, size: min(ThroughputLoop.signalingBytes, between))
    }

    /// How many timestamps a run keeps: one per message up to `stampCap`.
    static func stampCapacity(_ parameters: ThroughputParameters) -> Int {
        min(stampCap, parameters.iterations.map { $0 * parameters.queuePairs } ?? stampCap)
    }
}

/// Per-message timestamps for the peak figure, preallocated.
final class StampBuffers {
    let posted: UnsafeMutableBufferPointer<UInt64>
    let completed: UnsafeMutableBufferPointer<UInt64>
    let outstanding: UnsafeMutableBufferPointer<Int>
    let postedOn: UnsafeMutableBufferPointer<Int>
    let unsignaled: UnsafeMutableBufferPointer<Int>
    let target: UnsafeMutableBufferPointer<Int>
    /// When each QP's last request completed (0: not yet), for the per-QP spread.
    let finished: UnsafeMutableBufferPointer<UInt64>

    init(capacity: Int, queuePairs: Int) {
        posted = .allocate(capacity: max(1, capacity))
        posted.initialize(repeating: 0)
        completed = .allocate(capacity: max(1, capacity))
        completed.initialize(repeating: 0)
        func counters() -> UnsafeMutableBufferPointer<Int> {
            let buffer = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(1, queuePairs))
            buffer.initialize(repeating: 0)
            return buffer
        }
        outstanding = counters()
        postedOn = counters()
        unsignaled = counters()
        target = counters()
        finished = .allocate(capacity: max(1, queuePairs))
        finished.initialize(repeating: 0)
    }

    deinit {
        posted.deallocate()
        completed.deallocate()
        outstanding.deallocate()
        postedOn.deallocate()
        unsignaled.deallocate()
        target.deallocate()
        finished.deallocate()
    }
}

struct ThroughputOutcome {
    var sent: Int
    var elapsed: UInt64
    var peak: Double
    var received: Int
    var truncated: Bool
    /// The peer said `bye` mid-run (its Ctrl-C).
    var stoppedByPeer = false
    /// Per-QP bandwidth when several QPs sent and each finished.
    var spread: QueuePairSpread? = nil
}

enum ThroughputLoop {
    /// One side of one size. Sends `iterations` messages per QP (or for `duration`) when
    /// `sending`; reposts receives when `receiving`; when `expectPeerDone`, runs until the
    /// peer's `done` arrived and (receiving) its count was received. Announces its own
    /// `done` when sending finished. Allocates nothing per message.
    ///
    /// Like perftest (`--cq-mod`, default 100) only every n-th request per QP is signaled;
    /// its completion's id carries how many requests it accounts for. When a `-D` run or
    /// Ctrl-C stops it, each QP with unsignaled requests in flight posts one signaled
    /// request more so that every request is accounted for.
    /// See `signalEvery` in `run`.
    static let signalingBytes = 256 << 20

    /// `peerMessages`: how many messages the peer sends us, known beforehand (a perftest
    /// `ib_send_bw -b` peer, whose -n and -q are ours): received before the run ends.
    /// `whenMoved` runs as soon as our messages are done, before the figures are computed:
    /// the peak's search takes up to half a second in a debug build, and a peer that is
    /// still moving data (perftest's -b, which says nothing until the reports) needs our
    /// engine driven meanwhile, or its last requests go unacknowledged until it runs out
    /// of retries.
    static func run(queues: QueueSet, remote: RemoteMemory, parameters: ThroughputParameters, size: Int,
                    sending: Bool, receiving: Bool, expectPeerDone: Bool, peerMessages: Int? = nil, stamps: StampBuffers,
                    pump: CompletionPump, progress: inout ProgressLine, whenMoved: () -> Void = {}) throws(PerfError) -> ThroughputOutcome {
        let peerCountLimit = RunLimits.standard.doneCountLimit(iterations: parameters.iterations, queuePairs: parameters.queuePairs)
        let pairs = queues.queuePairs
        let qpCount = pairs.count
        let slot = queues.slot
        let depth = min(parameters.sendDepth, queues.sendDepth)
        // Every QP signals at least once per `signalingBytes` moved by all QPs together: when
        // the engine shares the link fairly, the first completions of -q 1024 -s 64K would
        // otherwise come only when nearly everything has moved, past the no-progress bound.
        let signalingBound = max(1, Self.signalingBytes / max(1, size * qpCount))
        let signalEvery = max(1, min(parameters.completionModeration, depth, 0xFFFF, signalingBound))
        let carriesData = parameters.operation == .write || parameters.operation == .send
        let quiet: SendFlags = size <= queues.maxInline && carriesData ? [.inline] : []
        let loud = quiet.union(.signaled)
        let operation: SendOperation
        let element: ScatterGatherElement
        switch parameters.operation {
        case .write:
            operation = .write(remote.slice(offset: UInt32(slot), length: UInt32(size)))
            element = queues.memory.scatterGather(offset: 0, length: size)
        case .send:
            operation = .send
            element = queues.memory.scatterGather(offset: 0, length: size)
        case .read:
            operation = .read(remote.slice(offset: 0, length: UInt32(size)))
            element = queues.memory.scatterGather(offset: slot, length: size)
        case .atomic:
            // ib_atomic_bw's default: FETCH_AND_ADD of 1 on the peer's first 8 bytes; the
            // old value lands at our `slot`.
            operation = .fetchAndAdd(remote.slice(offset: 0, length: UInt32(BandwidthOperation.atomicSize)), add: 1)
            element = queues.memory.scatterGather(offset: slot, length: BandwidthOperation.atomicSize)
        }
        let receiveElement = queues.memory.scatterGather(offset: slot, length: slot)
        let datagrams = queues.datagrams   // UD: each QP's destination
        let perQueueTarget = sending ? (parameters.iterations ?? Int.max) : 0
        let outstanding = stamps.outstanding, postedOn = stamps.postedOn, unsignaled = stamps.unsignaled, target = stamps.target
        for q in 0..<qpCount {
            outstanding[q] = 0; postedOn[q] = 0; unsignaled[q] = 0; target[q] = perQueueTarget; stamps.finished[q] = 0
        }
        var total = sending ? (parameters.iterations.map { $0 * qpCount } ?? Int.max) : 0
        let capacity = stamps.posted.count
        var posted = 0, completed = 0, received = 0
        var peerCount: Int? = peerMessages
        var peerDone = !expectPeerDone
        var announced = !sending
        var stopping = !sending || parameters.duration == nil
        var truncated = false
        let start = MonotonicClock.nanoseconds()
        let end = parameters.duration.map { start &+ MonotonicClock.span(seconds: $0, cap: .max &- start) } ?? .max
        var lastCompletion = start
        var nextAlive = start + 1_000_000_000
        pump.activity = "moving \(parameters.operation) \(size) B"
        pump.progressed(at: start)
        while true {
            if sending, posted < total {
                let now = MonotonicClock.nanoseconds()
                for q in 0..<qpCount {
                    while outstanding[q] < depth, postedOn[q] < target[q] {
                        postedOn[q] += 1
                        unsignaled[q] += 1
                        let signal = unsignaled[q] >= signalEvery || postedOn[q] == target[q]
                        let id = UInt64(q) | UInt64(unsignaled[q]) << 16
                        try rdma("posting \(parameters.operation) on QP \(q)") { () throws(RDMAError) in
                            try pairs[q].post(SendWorkRequest(id: id, operation: operation, flags: signal ? loud : quiet,
                                                              datagram: datagrams.isEmpty ? nil : datagrams[q]), scatterGather: element)
                        }
                        if signal { unsignaled[q] = 0 }
                        if posted < capacity { stamps.posted[posted] = now }
                        outstanding[q] += 1
                        posted += 1
                    }
                }
            }
            let count = try pump.poll()
            if count > 0 {
                let now = MonotonicClock.nanoseconds()
                for index in 0..<count {
                    let id = pump.completions[index].id
                    if id & receiveTag != 0 {
                        received += 1
                        let q = Int(id & 0xFFFF)
                        try rdma("re-posting a receive") { () throws(RDMAError) in
                            try pairs[q].postReceive(id: id, scatterGather: receiveElement)
                        }
                    } else {
                        let q = Int(id & 0xFFFF), covered = Int((id >> 16) & 0xFFFF)
                        outstanding[q] -= covered
                        if outstanding[q] == 0 && postedOn[q] >= target[q] { stamps.finished[q] = now }
                        for _ in 0..<covered {
                            if completed < capacity { stamps.completed[completed] = now }
                            completed += 1
                        }
                        lastCompletion = now
                    }
                }
                pump.progressed(at: now)
                if now >= nextAlive {
                    nextAlive = now + 1_000_000_000
                    if sending, pump.watchControl { try pump.control?.send(.alive) }
                    progress.tick(now: now, "\(parameters.operation) \(size) B: \(completed) sent, \(received) received")
                }
            } else if let message = pump.controlMessage {
                pump.controlMessage = nil
                switch message {
                case .done(let count, _):
                    guard (0...peerCountLimit).contains(count) else { throw .refused("done.count", "\(count) (0…\(peerCountLimit))") }
                    peerDone = true
                    peerCount = count
                case .alive:
                    break
                case .bye:
                    // The client stopped the run (Ctrl-C): what moved so far stands.
                    return ThroughputOutcome(sent: completed, elapsed: lastCompletion &- start, peak: 0, received: received,
                                             truncated: true, stoppedByPeer: true)
                default:
                    throw .refused("cmd", "unexpected \(message.name) during the run")
                }
            }
            let interrupted = stopRequested()
            if sending, !announced, interrupted || (!stopping && MonotonicClock.nanoseconds() >= end) {
                // Stop posting; a QP with unsignaled requests in flight gets one signaled
                // request more, whose completion accounts for them.
                if interrupted { truncated = true }
                stopping = true
                total = 0
                for q in 0..<qpCount {
                    target[q] = postedOn[q] + (unsignaled[q] > 0 ? 1 : 0)
                    total += target[q]
                }
            }
            if !announced, completed == total {
                announced = true
                if pump.watchControl {   // a perftest peer's exchange is silent during the run
                    try pump.control?.send(.done(count: completed, latency: nil))
                }
            }
            if announced, peerDone, !receiving || received >= (peerCount ?? 0) { break }
            // A receiving side that Ctrl-C does not end (the server side of --loopback)
            // goes on until the sender's `done`.
            if interrupted, !sending, pump.interruptible { truncated = true; break }
        }
        whenMoved()
        let peak = BandwidthStatistics.peak(posted: UnsafeBufferPointer(rebasing: stamps.posted[0..<min(posted, capacity)]),
                                            completed: UnsafeBufferPointer(rebasing: stamps.completed[0..<min(completed, capacity)]),
                                            messageSize: size)
        var outcome = ThroughputOutcome(sent: completed, elapsed: lastCompletion &- start, peak: peak, received: received, truncated: truncated)
        if sending, qpCount > 1, !truncated {
            outcome.spread = QueuePairSpread(rates: (0..<qpCount).map { q in
                Double(postedOn[q] * size) / (Double(stamps.finished[q] &- start) / 1e9)
            })
        }
        return outcome
    }
}

/// The two roles of `rdma-throughput`.
public enum ThroughputSession {
    static func checkSizes(_ sizes: [Int], opened: OpenedDevice) throws(PerfError) {
        for size in sizes where size > opened.maxMessageSize {
            throw .usage("size \(size) B is above what \(opened.context.device.name) allows (max message \(opened.maxMessageSize) B)")
        }
    }

    /// `ring` (--verify): the buffer holds a slot per message in flight instead of one.
    /// `kind` UD (`ib_send_bw -c UD`): each receive has room for the 40-byte route header.
    static func prepare(opened: OpenedDevice, queuePairs: Int, sizes: [Int], depth: Int, inlineSize: Int?,
                        ring: VerifyRing? = nil, kind: QueuePairKind = .reliableConnected) throws(PerfError) -> QueueSet {
        let room = kind == .unreliableDatagram ? QueueSet.routeHeaderRoom : 0
        let slot = ring?.half ?? LatencySession.slot(for: sizes.map { $0 + room })
        let queues = try QueueSet(context: opened.context, queuePairs: queuePairs, slot: slot, sendDepth: depth,
                                  receiveDepth: max(2 * depth, 256), inlineSize: inlineSize, events: opened.completionEvents, kind: kind)
        return queues
    }

    static func postReceives(_ queues: QueueSet) throws(PerfError) {
        for (q, pair) in queues.queuePairs.enumerated() {
            for _ in 0..<queues.receiveDepth {
                try rdma("posting receives") { () throws(RDMAError) in
                    try pair.postReceive(id: receiveTag | UInt64(q), scatterGather: queues.memory.scatterGather(offset: queues.slot, length: queues.slot))
                }
            }
        }
    }

    /// Client: measures each size, reports as it goes (summing both directions with -b).
    public static func runClient(opened: OpenedDevice, control: ControlConnection, parameters: ThroughputParameters,
                                 report: (BandwidthStatistics) -> Void) throws(PerfError) -> [BandwidthStatistics] {
        try checkSizes(parameters.sizes, opened: opened)
        let ring = parameters.verify ? VerifyRing(sizes: parameters.sizes, queuePairs: parameters.queuePairs, sendDepth: parameters.sendDepth) : nil
        let queues = try prepare(opened: opened, queuePairs: parameters.queuePairs, sizes: parameters.sizes,
                                 depth: parameters.sendDepth, inlineSize: parameters.inlineSize, ring: ring)
        defer { queues.close() }
        let local = try queues.endpoints(port: opened.port, gidIndex: opened.gidIndex)
        let hello = Hello(shape: .bandwidth(parameters.operation, queuePairs: parameters.queuePairs, bidirectional: parameters.bidirectional,
                                            sendDepth: parameters.sendDepth, completionModeration: parameters.completionModeration),
                          sizes: parameters.sizes, iterations: parameters.iterations, duration: parameters.duration,
                          endpoints: local, memory: queues.remoteDescriptor, verify: parameters.verify)
        let timeout = parameters.sendingProgressTimeout
        let welcome = try control.greet(hello, timeout: timeout)
        let (remoteEndpoints, remote) = (welcome.endpoints, welcome.memory)
        if let ring, Int(remote.length) < 2 * ring.half {
            throw .refused("welcome.memory.length", "\(remote.length) B; the --verify rings need \(2 * ring.half) B")
        }
        try queues.connect(local: local, remote: remoteEndpoints, port: opened.port, gidIndex: opened.gidIndex,
                           mtu: parameters.mtu, timeout: parameters.qpTimeout)
        try postReceives(queues)
        let pump = CompletionPump(queue: queues.completionQueue, progressTimeout: timeout, control: control)
        pump.yieldWhenIdle = !parameters.spin
        let stamps = StampBuffers(capacity: ThroughputParameters.stampCapacity(parameters), queuePairs: parameters.queuePairs)
        var progress = ProgressLine()
        defer { progress.finish() }
        var results: [BandwidthStatistics] = []
        for size in parameters.sizes {
            if stopRequested() { break }
            let sizeIndex = parameters.sizes.firstIndex(of: size) ?? 0   // as the server numbers it
            try control.send(.go(size: size))
            let ready = try control.receive(timeout: timeout, waitingFor: "ready (size \(size))")
            guard ready == .ready else { throw .peer("expected ready, got \(ready.name)") }
            // From here Ctrl-C ends the size the loops' way: stop posting, drain what was
            // posted, exchange and print the figures (a second Ctrl-C exits at once).
            pump.interruptible = false
            control.interruptible = false
            defer { pump.interruptible = true; control.interruptible = true }
            let outcome: ThroughputOutcome
            var verified: Int?
            do {
                if let ring {
                    (outcome, verified) = try VerifiedThroughput.client(queues: queues, remote: remote, ring: ring, parameters: parameters, size: size,
                                                                        sizeIndex: sizeIndex, stamps: stamps, pump: pump, control: control,
                                                                        timeout: timeout, progress: &progress)
                } else {
                    outcome = try ThroughputLoop.run(queues: queues, remote: remote, parameters: parameters, size: size, sending: true,
                                                     receiving: parameters.bidirectional && parameters.operation == .send,
                                                     expectPeerDone: parameters.bidirectional, stamps: stamps, pump: pump, progress: &progress)
                }
            } catch where error.exitCode == 130 {
                break
            }
            var statistics = BandwidthStatistics(messageSize: size, messages: outcome.sent, elapsedNanoseconds: outcome.elapsed,
                                                 peakBytesPerSecond: outcome.peak)
            statistics.verifiedBytes = verified
            if queues.completionChannel != nil { statistics.completionEventWakeups = pump.eventWakeups }
            statistics.queuePairSpread = outcome.spread
            try control.send(.result(statistics))
            if parameters.bidirectional {
                let theirs = try control.receive(timeout: timeout, waitingFor: "the server's result")
                guard case .result(let other) = theirs else { throw .peer("expected the server's result, got \(theirs.name)") }
                statistics = combine(statistics, other)
            }
            results.append(statistics)
            report(statistics)
            if outcome.truncated { break }
        }
        try? control.send(.bye)
        return results
    }

    /// perftest -b reports the sum of both directions.
    static func combine(_ a: BandwidthStatistics, _ b: BandwidthStatistics) -> BandwidthStatistics {
        var sum = a
        sum.messages = a.messages + b.messages
        sum.averageBytesPerSecond = a.averageBytesPerSecond + b.averageBytesPerSecond
        sum.peakBytesPerSecond = a.peakBytesPerSecond + b.peakBytesPerSecond
        sum.messageRateMpps = a.messageRateMpps + b.messageRateMpps
        sum.elapsedSeconds = max(a.elapsedSeconds, b.elapsedSeconds)
        return sum
    }

    /// Server: answers one client's run, after checking every field of its hello (and of
    /// each later message) against `limits`; calls `report` with the client's figures.
    /// Marks the client admitted once its QPs are connected and it was welcomed.
    public static func serve(opened: OpenedDevice, control: ControlConnection, admission: ServerLoop.Admission = .init(),
                             limits: RunLimits = .standard, progressTimeout: Double,
                             inlineSize: Int?, mtu: Int?, qpTimeout: UInt8, spin: Bool = false,
                             log: (String) -> Void, report: (BandwidthStatistics) -> Void) throws(PerfError) {
        let first = try control.receive(timeout: progressTimeout, waitingFor: "hello")
        guard case .hello(let hello) = first else { throw .refused("cmd", "\(first.name) before hello") }
        let limits = limits.capped(toMessageSize: opened.maxMessageSize)
        try limits.check(hello, server: "rdma-throughput")
        guard case .bandwidth(let operation, let qps, let bidirectional, let depth, let moderation) = hello.shape else {
            throw .refused("hello.tool", "not a bandwidth run")
        }
        if operation == .atomic, hello.sizes != [BandwidthOperation.atomicSize] {
            throw .refused("hello.sizes", "\(hello.sizes.prefix(4)) with op atomic (an atomic moves \(BandwidthOperation.atomicSize) B)")
        }
        let parameters = ThroughputParameters(operation: operation, sizes: hello.sizes, iterations: hello.iterations, duration: hello.duration,
                                              queuePairs: qps, bidirectional: bidirectional, sendDepth: depth,
                                              completionModeration: moderation, inlineSize: inlineSize, mtu: mtu, qpTimeout: qpTimeout,
                                              progressTimeout: progressTimeout, spin: spin)
        let timeout = progressBound(progressTimeout, size: hello.sizes.max() ?? 0)
        var ring: VerifyRing?
        if hello.verify {
            guard !bidirectional else { throw .refused("hello.verify", "--verify with -b (both sides sending) is not supported") }
            guard operation != .atomic else { throw .refused("hello.verify", "--verify with op atomic (it checks payloads)") }
            if let why = VerifyRing.check(sizes: hello.sizes, queuePairs: qps) { throw .refused("hello.verify", why) }
            ring = VerifyRing(sizes: hello.sizes, queuePairs: qps, sendDepth: depth)
        }
        log("client \(control.peerDescription): \(operation) bandwidth, \(qps) QP(s)\(bidirectional ? ", bidirectional" : "")\(hello.verify ? ", verified" : "")")
        let queues = try prepare(opened: opened, queuePairs: qps, sizes: hello.sizes, depth: depth, inlineSize: inlineSize, ring: ring)
        defer { queues.close() }
        let local = try queues.endpoints(port: opened.port, gidIndex: opened.gidIndex)
        try queues.connect(local: local, remote: hello.endpoints, port: opened.port, gidIndex: opened.gidIndex, mtu: mtu, timeout: qpTimeout)
        let receives = ring.map(VerifyReceives.init)
        if let receives { try receives.postAll(queues) } else { try postReceives(queues) }
        try control.send(.welcome(Welcome(endpoints: local, memory: queues.remoteDescriptor, path: opened.path)))
        admission.admitted = true
        let pump = CompletionPump(queue: queues.completionQueue, progressTimeout: timeout, control: control)
        pump.yieldWhenIdle = !spin
        let stamps = StampBuffers(capacity: bidirectional ? ThroughputParameters.stampCapacity(parameters) : 1, queuePairs: qps)
        var progress = ProgressLine()
        while true {
            let message = try control.receive(timeout: timeout, waitingFor: "the next size (go) or bye")
            switch message {
            case .bye:
                return
            case .go(let size):
                try limits.check(go: size, of: hello)
                let sizeIndex = hello.sizes.firstIndex(of: size) ?? 0
                if let ring { VerifiedThroughput.prepareServer(queues: queues, ring: ring, operation: operation, size: size, sizeIndex: sizeIndex) }
                try control.send(.ready)
                if let ring {
                    if operation != .send { opened.backgroundProgress(true) }
                    defer { if operation != .send { opened.backgroundProgress(false) } }
                    let end = try VerifiedThroughput.serve(queues: queues, ring: ring, operation: operation, size: size, sizeIndex: sizeIndex,
                                                           iterations: hello.iterations, receives: operation == .send ? receives : nil,
                                                           pump: pump, control: control, timeout: timeout)
                    if end == .bye {
                        log("client \(control.peerDescription) stopped the run")
                        return
                    }
                } else if !bidirectional, operation != .send {
                    // The target of WRITE/READ has no completions to poll: block on the
                    // exchange instead of spinning, so the CPU goes to the device (rxe does
                    // its work on the host's cores) — as perftest's server does.
                    opened.backgroundProgress(true)
                    defer { opened.backgroundProgress(false) }
                    if try LatencySession.waitPassively(control: control, timeout: timeout) == .bye {
                        log("client \(control.peerDescription) stopped the run")
                        return
                    }
                } else {
                    let outcome = try ThroughputLoop.run(queues: queues, remote: hello.memory, parameters: parameters, size: size,
                                                         sending: bidirectional, receiving: operation == .send,
                                                         expectPeerDone: true, stamps: stamps, pump: pump, progress: &progress)
                    if outcome.stoppedByPeer {
                        log("client \(control.peerDescription) stopped the run (\(outcome.received) messages received)")
                        return
                    }
                    if bidirectional {
                        try control.send(.result(BandwidthStatistics(messageSize: size, messages: outcome.sent, elapsedNanoseconds: outcome.elapsed,
                                                                     peakBytesPerSecond: outcome.peak)))
                    }
                }
                let theirs = try control.receive(timeout: timeout, waitingFor: "the client's result")
                switch theirs {
                case .result(let statistics): report(statistics)
                case .bye:
                    log("client \(control.peerDescription) stopped the run")
                    return
                default: throw .refused("cmd", "unexpected \(theirs.name) (expected the client's result)")
                }
            default:
                throw .refused("cmd", "unexpected \(message.name) (expected go or bye)")
            }
        }
    }
}
