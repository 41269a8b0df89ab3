import RDMA

/// Where `rdma-throughput --verify` puts each message, and which pattern it carries.
///
/// A bandwidth run keeps many messages in flight, so they cannot share one buffer and
/// still be checked: each side's buffer holds a ring of `window` slots per QP in each half
/// (`[0, half)` what is sent or read, `[half, 2·half)` where it lands). Message `n` of QP
/// `q` uses slot `q·window + n mod window`; the client sends `window` messages per QP at
/// most before the round is checked, so no slot is reused before its bytes were compared.
/// Byte `k` of the message is `PayloadCheck`'s pattern of message
/// `sizeIndex·2^48 + n·qps + q` (written by the client for WRITE/SEND, by the server for
/// READ): every message differs from every other, so a stale slot is caught.
///
/// ```swift
/// let ring = VerifyRing(sizes: [65536], queuePairs: 1, sendDepth: 128)   // window 128
/// ring.offset(queuePair: 0, message: 130)                                  // slot 2
/// ```
struct VerifyRing: Equatable {
    /// Messages per QP per round.
    let window: Int
    let queuePairs: Int
    /// Bytes per slot: the largest size, 64-byte aligned.
    let stride: Int

    /// What the rings of all QPs may take in each half of the buffer (the window shrinks to fit).
    static let targetBytes = 64 << 20
    /// Above this a half does not fit (a remote key's 32-bit length covers both halves).
    static let maximumHalf = 1 << 30

    init(sizes: [Int], queuePairs: Int, sendDepth: Int) {
        stride = LatencySession.slot(for: sizes)
        self.queuePairs = queuePairs
        window = max(1, min(sendDepth, Self.targetBytes / max(1, queuePairs * stride)))
    }

    /// The size of each half of the buffer.
    var half: Int { queuePairs * window * stride }

    /// Refuses a ring that cannot be registered (both halves in one 32-bit remote key).
    static func check(sizes: [Int], queuePairs: Int) -> String? {
        let stride = LatencySession.slot(for: sizes)
        guard queuePairs * stride <= maximumHalf else {
            return "\(queuePairs) QP(s) × \(stride) B is more than \(maximumHalf >> 20) MiB of distinct slots per side"
        }
        return nil
    }

    func offset(queuePair q: Int, message n: Int) -> Int { (q * window + n % window) * stride }

    func pattern(queuePair q: Int, message n: Int, sizeIndex: Int) -> Int { sizeIndex << 48 &+ n &* queuePairs &+ q }

    /// Fills slots of messages `messages` of every QP in the half at `base` with `writer`'s pattern.
    func fill(_ base: UnsafeMutableRawPointer, messages: Range<Int>, size: Int, sizeIndex: Int, writer: PayloadCheck.Writer) {
        for q in 0..<queuePairs {
            for n in messages {
                PayloadCheck.fill(base + offset(queuePair: q, message: n), count: size,
                                  message: pattern(queuePair: q, message: n, sizeIndex: sizeIndex), writer: writer)
            }
        }
    }

    /// Compares messages `messages` of every QP in the half at `base`; `slot` maps QP and
    /// message to the slot it landed in. Returns the bytes compared; throws naming the
    /// first message and byte that differ.
    func verify(_ base: UnsafeRawPointer, messages: Range<Int>, size: Int, sizeIndex: Int, writer: PayloadCheck.Writer,
                operation: BandwidthOperation, slot: (Int, Int) -> Int) throws(PerfError) -> Int {
        for q in 0..<queuePairs {
            for n in messages {
                let start = base + slot(q, n) * stride
                let message = pattern(queuePair: q, message: n, sizeIndex: sizeIndex)
                if let offset = PayloadCheck.firstMismatch(start, count: size, message: message, writer: writer) {
                    let expected = PayloadCheck.byte(message: message, offset: offset, writer: writer)
                    let got = start.load(fromByteOffset: offset, as: UInt8.self)
                    throw PerfError("--verify: \(operation) \(size) B, QP \(q) iteration \(n), byte \(offset) of \(size): expected 0x\(String(expected, radix: 16)), got 0x\(String(got, radix: 16))",
                                    hint: "the data was changed between the two memories (the path, the device, or the peer)")
                }
            }
        }
        return queuePairs * messages.count * size
    }
}

/// The SEND target's receive ring: receives are consumed in the order they were posted,
/// so the `k`-th receive of a QP is posted to slot `k mod window` and the `k`-th message
/// that QP receives lands there.
final class VerifyReceives {
    let ring: VerifyRing
    let posted: UnsafeMutableBufferPointer<Int>
    let received: UnsafeMutableBufferPointer<Int>

    init(ring: VerifyRing) {
        self.ring = ring
        posted = .allocate(capacity: ring.queuePairs)
        posted.initialize(repeating: 0)
        received = .allocate(capacity: ring.queuePairs)
        received.initialize(repeating: 0)
    }

    deinit {
        posted.deallocate()
        received.deallocate()
    }

    /// Posts one receive on QP `q` into its next slot.
    func post(_ queues: QueueSet, queuePair q: Int) throws(PerfError) {
        let element = queues.memory.scatterGather(offset: ring.half + (q * ring.window + posted[q] % ring.window) * ring.stride,
                                                  length: ring.stride)
        try rdma("posting a receive") { () throws(RDMAError) in
            try queues.queuePairs[q].postReceive(id: receiveTag | UInt64(q), scatterGather: element)
        }
        posted[q] += 1
    }

    func postAll(_ queues: QueueSet) throws(PerfError) {
        for q in 0..<ring.queuePairs {
            for _ in 0..<queues.receiveDepth { try post(queues, queuePair: q) }
        }
    }
}

/// `rdma-throughput --verify`: the run goes in rounds of at most `window` messages per QP.
/// Each round's payloads are written before its first post and checked after its last
/// completion (the server's part after `check`); only the rounds themselves are timed, so
/// the figures measure rounds that start with an empty pipe (lower than without --verify).
enum VerifiedThroughput {
    /// The client's side of one size. Returns the outcome (elapsed = the sum of the
    /// rounds) and the bytes verified on both sides.
    static func client(queues: QueueSet, remote: RemoteMemory, ring: VerifyRing, parameters: ThroughputParameters, size: Int,
                       sizeIndex: Int, stamps: StampBuffers, pump: CompletionPump, control: ControlConnection,
                       timeout: Double, progress: inout ProgressLine) throws(PerfError) -> (ThroughputOutcome, verified: Int) {
        guard ring.window <= queues.sendDepth else {
            throw PerfError("--verify: a round of \(ring.window) messages does not fit the send queue of \(queues.sendDepth)")
        }
        let pairs = queues.queuePairs
        let base = queues.memory.bytes.baseAddress!
        let inline = size <= queues.maxInline && parameters.operation != .read
        let flags: SendFlags = inline ? [.signaled, .inline] : .signaled
        let capacity = stamps.posted.count
        let iterations = parameters.iterations ?? Int.max
        let duration = parameters.duration.map { MonotonicClock.span(seconds: $0) } ?? .max
        var sent = 0, completed = 0, verified = 0
        var active: UInt64 = 0
        var truncated = false
        pump.activity = "moving \(parameters.operation) \(size) B (--verify round)"
        while sent < iterations, active < duration {
            if stopRequested() { truncated = true; break }
            let count = min(ring.window, iterations - sent)
            let messages = sent..<(sent + count)
            if parameters.operation != .read {
                ring.fill(base, messages: messages, size: size, sizeIndex: sizeIndex, writer: .client)
            }
            let target = completed + count * ring.queuePairs
            let roundStart = MonotonicClock.nanoseconds()
            pump.progressed(at: roundStart)
            for q in 0..<ring.queuePairs {
                for n in messages {
                    let offset = ring.offset(queuePair: q, message: n)
                    let request: SendWorkRequest
                    let element: ScatterGatherElement
                    switch parameters.operation {
                    case .write:
                        request = SendWorkRequest(id: UInt64(q) | 1 << 16, operation: .write(remote.slice(offset: UInt32(ring.half + offset), length: UInt32(size))), flags: flags)
                        element = queues.memory.scatterGather(offset: offset, length: size)
                    case .send:
                        request = SendWorkRequest(id: UInt64(q) | 1 << 16, operation: .send, flags: flags)
                        element = queues.memory.scatterGather(offset: offset, length: size)
                    case .read:
                        request = SendWorkRequest(id: UInt64(q) | 1 << 16, operation: .read(remote.slice(offset: UInt32(offset), length: UInt32(size))), flags: flags)
                        element = queues.memory.scatterGather(offset: ring.half + offset, length: size)
                    case .atomic:
                        throw .usage("--verify checks WRITE, SEND and READ payloads, not atomics")
                    }
                    let now = MonotonicClock.nanoseconds()
                    try rdma("posting \(parameters.operation) on QP \(q)") { () throws(RDMAError) in try pairs[q].post(request, scatterGather: element) }
                    let index = completed + (q * count) + (n - sent)
                    if index < capacity { stamps.posted[index] = active + (now - roundStart) }
                }
            }
            var lastCompletion = roundStart
            var landed = completed
            while landed < target {
                let polled = try pump.poll()
                guard polled > 0 else { continue }
                let now = MonotonicClock.nanoseconds()
                for index in 0..<polled where pump.completions[index].id & receiveTag == 0 {
                    if landed < capacity { stamps.completed[landed] = active + (now - roundStart) }
                    landed += 1
                }
                lastCompletion = now
                pump.tick()
            }
            active += lastCompletion - roundStart
            completed = landed
            // Outside the timed region from here.
            if parameters.operation == .read {
                verified += try ring.verify(base + ring.half, messages: messages, size: size, sizeIndex: sizeIndex, writer: .server,
                                            operation: .read) { q, n in q * ring.window + n % ring.window }
            }
            try control.send(.check(messages: count))
            let answer = try control.receive(timeout: timeout, waitingFor: "the server's check of round \(sent / ring.window)")
            guard case .checked(let bytes) = answer else { throw .peer("expected checked, got \(answer.name)") }
            let expected = parameters.operation == .read ? 0 : count * ring.queuePairs * size
            guard bytes == expected else { throw .refused("checked.count", "\(bytes) B checked; the round moved \(expected) B") }
            verified += bytes
            sent += count
            progress.tick(now: MonotonicClock.nanoseconds(), "\(parameters.operation) \(size) B: \(completed) sent and verified")
        }
        try control.send(.done(count: completed, latency: nil))
        let peak = BandwidthStatistics.peak(posted: UnsafeBufferPointer(rebasing: stamps.posted[0..<min(completed, capacity)]),
                                            completed: UnsafeBufferPointer(rebasing: stamps.completed[0..<min(completed, capacity)]),
                                            messageSize: size)
        return (ThroughputOutcome(sent: completed, elapsed: active, peak: peak, received: 0, truncated: truncated), verified)
    }

    /// The server's side of one size, after `go` and before `ready`: READ's first round
    /// is offered here.
    static func prepareServer(queues: QueueSet, ring: VerifyRing, operation: BandwidthOperation, size: Int, sizeIndex: Int) {
        if operation == .read {
            ring.fill(queues.memory.bytes.baseAddress!, messages: 0..<ring.window, size: size, sizeIndex: sizeIndex, writer: .server)
        }
    }

    /// The server's side of one size: answers each `check` until `done` or `bye`, which
    /// it returns. `receives` is the SEND target's receive ring (nil otherwise).
    static func serve(queues: QueueSet, ring: VerifyRing, operation: BandwidthOperation, size: Int, sizeIndex: Int,
                      iterations: Int?, receives: VerifyReceives?, pump: CompletionPump, control: ControlConnection,
                      timeout: Double) throws(PerfError) -> ControlMessage {
        let base = queues.memory.bytes.baseAddress!
        let first = receives.map { receiving in (0..<ring.queuePairs).map { receiving.received[$0] } } ?? []
        let limit = iterations ?? Int.max
        var checked = 0
        pump.activity = "receiving \(operation) \(size) B (--verify round)"
        pump.progressed(at: MonotonicClock.nanoseconds())
        while true {
            let message: ControlMessage
            if let receives {
                message = try awaitMessage(queues: queues, receives: receives, pump: pump)
            } else {
                message = try control.receive(timeout: timeout, waitingFor: "the client's next round (check) or done")
            }
            switch message {
            case .check(let count):
                guard (1...ring.window).contains(count), count <= limit - checked else {
                    throw .refused("check.count", "\(count) messages per QP (1…\(min(ring.window, limit - checked)) in this round)")
                }
                let messages = checked..<(checked + count)
                var bytes = 0
                switch operation {
                case .write:
                    bytes = try ring.verify(base + ring.half, messages: messages, size: size, sizeIndex: sizeIndex, writer: .client,
                                            operation: operation) { q, n in q * ring.window + n % ring.window }
                case .send:
                    guard let receives else { throw PerfError("--verify: SEND target without its receive ring") }
                    try awaitReceives(queues: queues, receives: receives, until: first.map { $0 + messages.upperBound }, pump: pump)
                    bytes = try ring.verify(base + ring.half, messages: messages, size: size, sizeIndex: sizeIndex, writer: .client,
                                            operation: operation) { q, n in q * ring.window + (first[q] + n) % ring.window }
                case .read:
                    ring.fill(base, messages: messages.upperBound..<(messages.upperBound + ring.window), size: size,
                              sizeIndex: sizeIndex, writer: .server)
                case .atomic:
                    throw .refused("hello.verify", "--verify with op atomic")
                }
                checked += count
                try control.send(.checked(bytes: bytes))
            case .alive:
                continue
            case .done, .bye:
                return message
            default:
                throw .refused("cmd", "unexpected \(message.name) during a --verify run")
            }
        }
    }

    /// SEND target: reposts receives while waiting for the client's next message.
    private static func awaitMessage(queues: QueueSet, receives: VerifyReceives, pump: CompletionPump) throws(PerfError) -> ControlMessage {
        while true {
            try reap(queues: queues, receives: receives, pump: pump)
            if let message = pump.controlMessage {
                pump.controlMessage = nil
                return message
            }
        }
    }

    /// SEND target: polls until QP `q` received `counts[q]` messages in all.
    private static func awaitReceives(queues: QueueSet, receives: VerifyReceives, until counts: [Int],
                                      pump: CompletionPump) throws(PerfError) {
        while (0..<counts.count).contains(where: { receives.received[$0] < counts[$0] }) {
            try reap(queues: queues, receives: receives, pump: pump)
        }
    }

    private static func reap(queues: QueueSet, receives: VerifyReceives, pump: CompletionPump) throws(PerfError) {
        let count = try pump.poll()
        for index in 0..<count {
            let id = pump.completions[index].id
            guard id & receiveTag != 0 else { continue }
            let q = Int(id & 0xFFFF)
            guard q < receives.ring.queuePairs else { continue }
            receives.received[q] += 1
            try receives.post(queues, queuePair: q)
        }
        if count > 0 { pump.tick() }
    }
}
