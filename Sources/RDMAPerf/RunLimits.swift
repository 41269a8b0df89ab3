import RDMA

/// The bounds of a run, in one place: a client's flags are checked against them at parse
/// time and a server checks every field of every message against them, so a client never
/// asks for what a server refuses and no peer-given count reaches an allocation unchecked.
///
/// ```swift
/// let limits = RunLimits.standard.capped(toMessageSize: opened.maxMessageSize)
/// try limits.check(hello, server: "rdma-pingpong")   // throws "refused hello.sizes[0]: …"
/// ```
public struct RunLimits: Sendable, Equatable {
    /// Largest message: 1 GiB. Each side registers 2 × the size (send and landing halves)
    /// and a `RemoteMemory` length is 32-bit, so 2 GiB would not fit.
    public var maximumSize = 1 << 30
    /// Sizes per run (`-a` has 23).
    public var maximumSizeCount = 32
    /// Latency iterations per size: the samples are kept (8 B each: 128 MiB at most).
    public var maximumLatencyIterations = 1 << 24
    /// Bandwidth messages per size, all QPs together (`-n` × `-q`; only the first
    /// `ThroughputParameters.stampCap` are timed one by one).
    public var maximumBandwidthIterations = 1 << 32
    /// Warm-up round trips.
    public var maximumWarmup = 1 << 24
    /// Seconds of `-D`.
    public var maximumDuration = 86_400.0
    public var maximumQueuePairs = 1024
    /// Outstanding requests per QP (`-t`).
    public var maximumSendDepth = 8192
    /// QPs × depth: what the queues cost in the engine or the device (1024 QPs × 128).
    public var maximumOutstanding = 1 << 17
    /// `-Q`: the signal count travels in 16 bits of the work-request id.
    public var maximumCompletionModeration = 0xFFFF
    /// Iterations below this say nothing (perftest's dropped tail and warm-up).
    public var minimumIterations = 5

    public static let standard = RunLimits()

    /// These limits with the message size no larger than a device allows.
    public func capped(toMessageSize deviceMaximum: Int) -> RunLimits {
        var limits = self
        limits.maximumSize = max(1, min(maximumSize, deviceMaximum))
        return limits
    }

    /// Checks every field of a client's hello; throws a refusal naming the first bad one.
    /// `server` is the tool answering (a hello for the other tool is refused).
    public func check(_ hello: Hello, server: String) throws(PerfError) {
        guard hello.version == Hello.protocolVersion else {
            throw .refused("hello.version", "\(hello.version); this server speaks version \(Hello.protocolVersion) — run the same build on both sides")
        }
        guard hello.shape.tool == server else {
            throw .refused("hello.tool", "\(hello.shape.tool) client; this is an \(server) server")
        }
        guard (1...maximumSizeCount).contains(hello.sizes.count) else {
            throw .refused("hello.sizes", "\(hello.sizes.count) sizes (1…\(maximumSizeCount))")
        }
        for (index, size) in hello.sizes.enumerated() where !(1...maximumSize).contains(size) {
            throw .refused("hello.sizes[\(index)]", "\(size) B (1…\(maximumSize))")
        }
        let latency: Bool
        let queuePairs: Int
        switch hello.shape {
        case .latency(let operation, let warmup):
            latency = true
            queuePairs = 1
            if operation == .atomic, hello.sizes != [8] {
                throw .refused("hello.sizes", "atomics move exactly 8 bytes")
            }
            guard (0...maximumWarmup).contains(warmup) else { throw .refused("hello.warmup", "\(warmup) (0…\(maximumWarmup))") }
        case .bandwidth(_, let count, _, let depth, let moderation):
            latency = false
            queuePairs = count
            guard (1...maximumQueuePairs).contains(count) else { throw .refused("hello.qps", "\(count) QPs (1…\(maximumQueuePairs))") }
            guard (1...maximumSendDepth).contains(depth) else { throw .refused("hello.txDepth", "\(depth) (1…\(maximumSendDepth))") }
            guard count * depth <= maximumOutstanding else {
                throw .refused("hello.txDepth", "\(count) QPs × depth \(depth) = \(count * depth) outstanding requests (at most \(maximumOutstanding))")
            }
            guard (1...maximumCompletionModeration).contains(moderation) else {
                throw .refused("hello.cqMod", "\(moderation) (1…\(maximumCompletionModeration))")
            }
        }
        switch (hello.iterations, hello.duration) {
        case (let iterations?, nil):
            let most = latency ? maximumLatencyIterations : maximumBandwidthIterations / queuePairs
            guard (minimumIterations...most).contains(iterations) else {
                throw .refused("hello.iterations", "\(iterations) (\(minimumIterations)…\(most)\(latency ? "" : " with \(queuePairs) QP(s)"))")
            }
        case (nil, let duration?):
            guard duration > 0, duration <= maximumDuration else {
                throw .refused("hello.duration", "\(duration) s (more than 0, at most \(maximumDuration))")
            }
        default:
            throw .refused("hello.iterations", "give either iterations or a duration")
        }
        guard hello.endpoints.count == queuePairs else {
            throw .refused("hello.endpoints", "\(hello.endpoints.count) endpoints for \(queuePairs) QP(s)")
        }
        try Self.check(hello.endpoints, hello.memory, sizes: hello.sizes, message: "hello")
    }

    /// Checks the server's welcome on the client's side: as many endpoints as we have QPs,
    /// and memory large enough for what the run will touch.
    public static func check(_ welcome: Welcome, answering hello: Hello) throws(PerfError) {
        guard welcome.endpoints.count == hello.endpoints.count else {
            throw .refused("welcome.endpoints", "\(welcome.endpoints.count) endpoints for \(hello.endpoints.count) QP(s)")
        }
        try check(welcome.endpoints, welcome.memory, sizes: hello.sizes, message: "welcome")
    }

    private static func check(_ endpoints: [Endpoint], _ memory: RemoteMemory, sizes: [Int], message: String) throws(PerfError) {
        for (index, endpoint) in endpoints.enumerated() {
            guard (1...0xFF_FFFF).contains(endpoint.queuePairNumber) else {
                throw .refused("\(message).endpoints[\(index)].qpn", "\(endpoint.queuePairNumber) (1…0xffffff)")
            }
            guard endpoint.packetSequenceNumber <= 0xFF_FFFF else {
                throw .refused("\(message).endpoints[\(index)].psn", "\(endpoint.packetSequenceNumber) (0…0xffffff)")
            }
        }
        let needed = 2 * LatencySession.slot(for: sizes)
        guard Int(memory.length) >= needed else {
            throw .refused("\(message).memory.length", "\(memory.length) B; the run writes and reads \(needed) B of it")
        }
        guard memory.address <= UInt64.max - UInt64(needed) else {
            throw .refused("\(message).memory.address", "0x\(String(memory.address, radix: 16)) + \(needed) B wraps around")
        }
    }

    /// Checks a `go`: its size must be one the hello announced (the buffers are sized for those).
    public func check(go size: Int, of hello: Hello) throws(PerfError) {
        guard hello.sizes.contains(size) else {
            throw .refused("go.size", "\(size) B is not one of the hello's sizes")
        }
    }

    /// The largest `done` count a bandwidth peer may announce: every message of the run,
    /// plus the one signaled request per QP a stopped run adds.
    public func doneCountLimit(iterations: Int?, queuePairs: Int) -> Int {
        guard let iterations else { return Int.max }
        return iterations * queuePairs + queuePairs
    }
}
