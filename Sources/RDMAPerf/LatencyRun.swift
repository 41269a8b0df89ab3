import Histogram
import RDMA

/// What one latency run measures; the client sends it to the server in `hello`.
public struct LatencyParameters: Sendable, Equatable {
    public var operation: LatencyOperation
    public var sizes: [Int]
    /// Measured iterations per size (warm-up not included); nil with `duration`.
    public var iterations: Int?
    public var duration: Double?
    public var warmup: Int
    public var inlineSize: Int?
    public var mtu: Int?
    public var qpTimeout: UInt8
    public var progressTimeout: Double
    /// Never yield while polling (--spin).
    public var spin: Bool
    /// Fill and check every payload byte (--verify).
    public var verify: Bool
    /// A `-D` run against perftest: each side stops on its own clock (perftest's from its
    /// first received message), so the peer may stop answering just before our end; a
    /// round trip still unanswered 50 ms after our end is dropped, not waited for.
    public var dropLateReplies = false

    public init(operation: LatencyOperation, sizes: [Int], iterations: Int?, duration: Double?, warmup: Int,
                inlineSize: Int? = nil, mtu: Int? = nil, qpTimeout: UInt8 = 14, progressTimeout: Double = 10, spin: Bool = false,
                verify: Bool = false) {
        self.spin = spin
        self.verify = verify
        self.operation = operation
        self.sizes = sizes
        self.iterations = iterations
        self.duration = duration
        self.warmup = warmup
        self.inlineSize = inlineSize
        self.mtu = mtu
        self.qpTimeout = qpTimeout
        self.progressTimeout = progressTimeout
    }

    /// Samples kept at most in a `-D` run (16 MiB of UInt64).
    public static let durationSampleCap = 1 << 21
}

/// One size's outcome.
public struct LatencyResult: Sendable {
    public var size: Int
    public var operation: LatencyOperation
    public var statistics: LatencyStatistics
    /// Nanoseconds, halved for ping-pong like the statistics.
    public var histogram: Histogram<UInt64>
    /// Ctrl-C or the sample cap ended the run early.
    public var truncated: Bool
    /// Payload bytes checked with --verify (warm-up included); nil without it.
    public var verifiedBytes: Int? = nil
    /// With -e: how many waits on the completion channel an event ended (all sizes so
    /// far); nil without -e.
    public var completionEventWakeups: Int? = nil
}

/// Samples of one size, in the client's preallocated buffer.
final class SampleBuffer {
    let storage: UnsafeMutableBufferPointer<UInt64>
    var count = 0
    init(capacity: Int) {
        storage = .allocate(capacity: max(1, capacity))
        storage.initialize(repeating: 0)
    }
    deinit { storage.deallocate() }
    var filled: UnsafeBufferPointer<UInt64> { UnsafeBufferPointer(rebasing: storage[0..<count]) }
}

enum LatencyLoops {
    /// The client's measured loop for one size. Allocates nothing per iteration: one
    /// stack-built work request, the preallocated completion buffer and sample array.
    /// With `check` (--verify) each message is filled and its reply checked outside the
    /// timed region, and a sample runs from just before the post to the reply being seen.
    static func client(queues: QueueSet, remote: RemoteMemory, parameters: LatencyParameters, size: Int,
                       samples: SampleBuffer, pump: CompletionPump, check: inout PayloadCheck?,
                       progress: inout ProgressLine) throws(PerfError) -> Bool {
        let pair = queues.queuePairs[0]
        let base = queues.memory
        let slot = queues.slot
        let sendElement = base.scatterGather(offset: 0, length: size)
        let landing = base.scatterGather(offset: slot, length: parameters.operation == .atomic ? 8 : size)
        let receiveElement = base.scatterGather(offset: slot, length: slot)
        let flags: SendFlags = size <= queues.maxInline && parameters.operation.isPingPong ? [.signaled, .inline] : .signaled
        var request: SendWorkRequest
        switch parameters.operation {
        case .send: request = SendWorkRequest(id: 0, operation: .send, flags: flags, datagram: queues.datagrams.first)
        case .write: request = SendWorkRequest(id: 0, operation: .write(remote.slice(offset: UInt32(slot), length: UInt32(size))), flags: flags)
        case .read: request = SendWorkRequest(id: 0, operation: .read(remote.slice(offset: 0, length: UInt32(size))), flags: flags)
        case .atomic: request = SendWorkRequest(id: 0, operation: .fetchAndAdd(remote.slice(offset: 0, length: 8), add: 1), flags: flags)
        }
        // Ping-pong learns of delivery from the reply, so like perftest only every
        // `signalEvery`-th request asks for a completion (it keeps the send queue drained);
        // READ/atomic results arrive in their completion, so those are always signaled.
        let quietFlags = parameters.operation.isPingPong ? flags.subtracting(.signaled) : flags
        let signalEvery = max(1, min(64, queues.sendDepth / 2))
        let element = parameters.operation == .read || parameters.operation == .atomic ? landing : sendElement
        let mine = base.bytes.baseAddress!
        let lastSent = mine + (size - 1)
        let lastLanded = mine + (slot + size - 1)
        let total = parameters.iterations.map { $0 + parameters.warmup } ?? Int.max
        // A -D run measures for that long after its warm-up.
        var end = parameters.warmup == 0 ? parameters.duration.map { MonotonicClock.deadline(after: $0) } ?? .max : .max
        var truncated = false
        var nextAlive = MonotonicClock.nanoseconds() + 1_000_000_000
        pump.activity = "waiting for the \(parameters.operation) response (size \(size))"
        pump.progressed(at: MonotonicClock.nanoseconds())
        var iteration = 0
        // One clock read per iteration, taken right before posting: a sample is the period
        // between the starts of consecutive posts — perftest's tposted[i+1] − tposted[i] —
        // so it contains its whole round trip. (Read after the post, as this loop once did,
        // a round trip that progresses inside the post call — kernel rxe runs its requester,
        // the loopback wire and often the responder and completer in the post_send system
        // call; a thread preempted right after its sendto wakes the peer — was counted in
        // the sample before it, and the next sample shrank to a poll plus a post: READ and
        // atomic t_min of ~2 µs on a path whose round trip is 8 µs.)
        var pendingStart: UInt64 = 0
        var pending = false
        let verifying = check != nil
        let lateReplyGrace: UInt64 = 50_000_000
        while iteration < total {
            if pending || verifying, iteration - (verifying ? 0 : 1) >= parameters.warmup, samples.count == samples.storage.count {
                truncated = true
                pending = false
                break
            }
            let marker = UInt8(iteration % 255 + 1)
            check?.prepare(message: iteration)
            if parameters.operation == .write { lastSent.storeBytes(of: marker, as: UInt8.self) }
            request.flags = iteration % signalEvery == signalEvery - 1 ? flags : quietFlags
            let now = MonotonicClock.nanoseconds()
            try rdma("posting the \(parameters.operation) request") { () throws(RDMAError) in try pair.post(request, scatterGather: element) }
            pump.afterPost?(iteration)
            if pending, iteration - 1 >= parameters.warmup {
                samples.storage[samples.count] = now &- pendingStart
                samples.count += 1
            }
            pendingStart = now
            pending = !verifying
            var done = false
            var abandoned = false
            while !done {
                if parameters.operation == .write, lastLanded.load(as: UInt8.self) == marker { done = true }
                let count = try pump.poll()
                if count == 0, parameters.dropLateReplies, pump.spins & 255 == 0, end != .max,
                   MonotonicClock.nanoseconds() > end &+ lateReplyGrace {
                    pending = false
                    abandoned = true
                    break
                }
                for index in 0..<count {
                    let completion = pump.completions[index]
                    if completion.id & receiveTag != 0 {
                        try rdma("re-posting a receive") { () throws(RDMAError) in try pair.postReceive(id: receiveTag, scatterGather: receiveElement) }
                        if parameters.operation == .send { done = true }
                    } else if parameters.operation == .read || parameters.operation == .atomic {
                        done = true
                    }
                }
            }
            if abandoned { break }
            if verifying {
                let seen = MonotonicClock.nanoseconds()
                if iteration >= parameters.warmup {
                    samples.storage[samples.count] = seen &- now
                    samples.count += 1
                }
                try check?.verify(message: iteration)
            }
            pump.tick()
            iteration += 1
            if iteration == parameters.warmup, let duration = parameters.duration { end = MonotonicClock.deadline(after: duration) }
            if now >= end { break }
            if stopRequested() { truncated = true; break }
            if now >= nextAlive {
                nextAlive = now + 1_000_000_000
                // The server of a READ/atomic run is passive: tell it we are alive.
                if !parameters.operation.isPingPong, pump.watchControl { try pump.control?.send(.alive) }
                progress.tick(now: now, "\(parameters.operation) \(size) B: \(samples.count) samples")
            }
        }
        // The last round trip has no next post: it ends at its reply.
        if pending, iteration - 1 >= parameters.warmup, samples.count < samples.storage.count {
            samples.storage[samples.count] = MonotonicClock.nanoseconds() &- pendingStart
            samples.count += 1
        }
        return truncated
    }

    /// The server's side of a SEND/WRITE ping-pong: answer each ping until the client
    /// says `done` over the exchange connection.
    /// `echoReceived` (the client verifies): reply with the bytes received, from the
    /// landing area, so the client's check covers both directions.
    /// `duration` (perftest's `-D` client): answer for that long from the first ping, like
    /// perftest's own server, then end; the client stops on its own clock.
    static func echo(queues: QueueSet, remote: RemoteMemory, operation: LatencyOperation, size: Int,
                     pump: CompletionPump, limit: Int? = nil, duration: Double? = nil, echoReceived: Bool = false) throws(PerfError) -> ControlMessage {
        let pair = queues.queuePairs[0]
        let base = queues.memory
        let slot = queues.slot
        let sendElement = base.scatterGather(offset: echoReceived ? slot : 0, length: size)
        let receiveElement = base.scatterGather(offset: slot, length: slot)
        let flags: SendFlags = size <= queues.maxInline ? [.signaled, .inline] : .signaled
        var request = operation == .send
            ? SendWorkRequest(id: 0, operation: .send, flags: flags, datagram: queues.datagrams.first)
            : SendWorkRequest(id: 0, operation: .write(remote.slice(offset: UInt32(slot), length: UInt32(size))), flags: flags)
        let quietFlags = flags.subtracting(.signaled)
        let signalEvery = max(1, min(64, queues.sendDepth / 2))
        let mine = base.bytes.baseAddress!
        let lastSent = mine + (size - 1)
        let lastLanded = mine + (slot + size - 1)
        pump.activity = "waiting for the client's next \(operation) (size \(size))"
        pump.progressed(at: MonotonicClock.nanoseconds())
        var iteration = 0
        var end = UInt64.max
        while true {
            if let limit, iteration >= limit { return .done(count: iteration, latency: nil) }
            // The clock is read every 64 replies and while idle, not per reply.
            if end != .max, iteration & 63 == 0, MonotonicClock.nanoseconds() >= end { return .done(count: iteration, latency: nil) }
            let marker = UInt8(iteration % 255 + 1)
            var pinged = false
            while !pinged {
                if operation == .write, lastLanded.load(as: UInt8.self) == marker { pinged = true }
                let count = try pump.poll()
                if count == 0, end != .max, pump.spins & 255 == 0, MonotonicClock.nanoseconds() >= end {
                    return .done(count: iteration, latency: nil)
                }
                for index in 0..<count where pump.completions[index].id & receiveTag != 0 {
                    try rdma("re-posting a receive") { () throws(RDMAError) in try pair.postReceive(id: receiveTag, scatterGather: receiveElement) }
                    if operation == .send { pinged = true }
                }
                if !pinged, count == 0, let message = pump.controlMessage {
                    pump.controlMessage = nil
                    switch message {
                    case .done, .bye: return message
                    case .alive: break
                    default: throw .refused("cmd", "unexpected \(message.name) during the run")
                    }
                }
            }
            if operation == .write, !echoReceived { lastSent.storeBytes(of: marker, as: UInt8.self) }
            request.flags = iteration % signalEvery == signalEvery - 1 ? flags : quietFlags
            try rdma("posting the \(operation) reply") { () throws(RDMAError) in try pair.post(request, scatterGather: sendElement) }
            if iteration == 0, let duration { end = MonotonicClock.deadline(after: duration) }
            pump.tick()
            iteration += 1
        }
    }
}
