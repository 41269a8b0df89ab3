import RDMA

/// The two roles of `rdma-pingpong` over one exchange connection.
public enum LatencySession {
    static func slot(for sizes: [Int]) -> Int {
        let largest = max(8, sizes.max() ?? 8)
        return (largest + 63) & ~63
    }

    static func checkSizes(_ sizes: [Int], opened: OpenedDevice, operation: LatencyOperation) throws(PerfError) {
        for size in sizes where size > opened.maxMessageSize {
            throw .usage("size \(size) B is above what \(opened.context.device.name) allows (max message \(opened.maxMessageSize) B)")
        }
        if operation == .atomic, sizes != [8] {
            throw .usage("atomics move exactly 8 bytes", hint: "use -s 8 (the default for --op atomic)")
        }
        for size in sizes where size < 1 { throw .usage("size must be at least 1 byte") }
    }

    /// Client: sends `hello`, connects, measures each size and calls `report` as each
    /// finishes. Returns the results (also on Ctrl-C: what was measured so far).
    public static func runClient(opened: OpenedDevice, control: ControlConnection, parameters: LatencyParameters,
                                 report: (LatencyResult) -> Void) throws(PerfError) -> [LatencyResult] {
        try runClient(opened: opened, control: control, parameters: parameters, afterPost: nil, report: report)
    }

    /// `afterPost`: the test seam of `CompletionPump.afterPost`.
    static func runClient(opened: OpenedDevice, control: ControlConnection, parameters: LatencyParameters,
                          afterPost: ((Int) -> Void)?, report: (LatencyResult) -> Void) throws(PerfError) -> [LatencyResult] {
        try checkSizes(parameters.sizes, opened: opened, operation: parameters.operation)
        let slot = slot(for: parameters.sizes)
        let queues = try QueueSet(context: opened.context, queuePairs: 1, slot: slot, sendDepth: 128,
                                  receiveDepth: 64, inlineSize: parameters.inlineSize, events: opened.completionEvents)
        defer { queues.close() }
        let local = try queues.endpoints(port: opened.port, gidIndex: opened.gidIndex)
        let hello = Hello(shape: .latency(parameters.operation, warmup: parameters.warmup), sizes: parameters.sizes,
                          iterations: parameters.iterations, duration: parameters.duration,
                          endpoints: local, memory: queues.remoteDescriptor, verify: parameters.verify)
        let timeout = progressBound(parameters.progressTimeout, size: parameters.sizes.max() ?? 0)
        let welcome = try control.greet(hello, timeout: timeout)
        let (remoteEndpoints, remote) = (welcome.endpoints, welcome.memory)
        try queues.connect(local: local, remote: remoteEndpoints, port: opened.port, gidIndex: opened.gidIndex,
                           mtu: parameters.mtu, timeout: parameters.qpTimeout)
        let pair = queues.queuePairs[0]
        for _ in 0..<queues.receiveDepth {
            try rdma("posting receives") { () throws(RDMAError) in
                try pair.postReceive(id: receiveTag, scatterGather: queues.memory.scatterGather(offset: slot, length: slot))
            }
        }
        let pump = CompletionPump(queue: queues.completionQueue, progressTimeout: timeout, control: control)
        pump.yieldWhenIdle = !parameters.spin
        pump.afterPost = afterPost
        var results: [LatencyResult] = []
        var progress = ProgressLine()
        defer { progress.finish() }
        let capacity = parameters.iterations ?? LatencyParameters.durationSampleCap
        let samples = SampleBuffer(capacity: capacity)
        for size in parameters.sizes {
            if stopRequested() { break }
            queues.memory.bytes.initializeMemory(as: UInt8.self, repeating: 0)
            try control.send(.go(size: size))
            let ready = try control.receive(timeout: timeout, waitingFor: "ready (size \(size))")
            guard ready == .ready else { throw .peer("expected ready, got \(ready.name)") }
            samples.count = 0
            var truncated = false
            var interruption: PerfError?
            var check = parameters.verify ? PayloadCheck(operation: parameters.operation, size: size, base: queues.memory.bytes.baseAddress!, slot: slot) : nil
            do {
                truncated = try LatencyLoops.client(queues: queues, remote: remote, parameters: parameters, size: size,
                                                    samples: samples, pump: pump, check: &check, progress: &progress)
            } catch where error.exitCode == 130 {
                truncated = true
                interruption = error
            }
            let halve = parameters.operation.isPingPong
            var figures: LatencyStatistics?
            if let statistics = LatencyStatistics(samples: samples.filled, halve: halve) {
                let result = LatencyResult(size: size, operation: parameters.operation, statistics: statistics,
                                           histogram: LatencyStatistics.histogram(of: samples.filled, halve: halve),
                                           truncated: truncated, verifiedBytes: check?.verifiedBytes,
                                           completionEventWakeups: queues.completionChannel == nil ? nil : pump.eventWakeups)
                results.append(result)
                figures = statistics
                report(result)
            }
            try? control.send(.done(count: samples.count, latency: figures))
            if interruption != nil || stopRequested() { break }
            if figures == nil {
                throw PerfError("size \(size): \(samples.count) samples after the warm-up, too few for figures (3 at least)",
                                hint: parameters.duration.map { "-D \($0) s is shorter than three round trips; give a longer -D" } ?? "give a larger -n")
            }
        }
        try? control.send(.bye)
        return results
    }

    /// Server: answers one client's run, after checking every field of its hello (and of
    /// each later message) against `limits`; calls `report` with the client's figures per
    /// size. Marks the client admitted once its QPs are connected and it was welcomed.
    public static func serve(opened: OpenedDevice, control: ControlConnection, admission: ServerLoop.Admission = .init(),
                             limits: RunLimits = .standard, progressTimeout: Double,
                             inlineSize: Int?, mtu: Int?, qpTimeout: UInt8, spin: Bool = false,
                             log: (String) -> Void, report: (Int, LatencyOperation, LatencyStatistics) -> Void) throws(PerfError) {
        let first = try control.receive(timeout: progressTimeout, waitingFor: "hello")
        guard case .hello(let hello) = first else { throw .refused("cmd", "\(first.name) before hello") }
        let limits = limits.capped(toMessageSize: opened.maxMessageSize)
        try limits.check(hello, server: "rdma-pingpong")
        guard case .latency(let operation, _) = hello.shape else { throw .refused("hello.tool", "not a latency run") }
        let sizes = hello.sizes
        let timeout = progressBound(progressTimeout, size: sizes.max() ?? 0)
        log("client \(control.peerDescription): \(operation) latency, sizes \(sizes.count == 1 ? "\(sizes[0])" : "\(sizes.first!)…\(sizes.last!)")")
        let slot = slot(for: sizes)
        // WRITE ping-pong waits on a byte in memory, not on a completion: no events there.
        let queues = try QueueSet(context: opened.context, queuePairs: 1, slot: slot, sendDepth: 128, receiveDepth: 64, inlineSize: inlineSize,
                                  events: opened.completionEvents && operation != .write)
        defer { queues.close() }
        let local = try queues.endpoints(port: opened.port, gidIndex: opened.gidIndex)
        try queues.connect(local: local, remote: hello.endpoints, port: opened.port, gidIndex: opened.gidIndex, mtu: mtu, timeout: qpTimeout)
        let pair = queues.queuePairs[0]
        for _ in 0..<queues.receiveDepth {
            try rdma("posting receives") { () throws(RDMAError) in
                try pair.postReceive(id: receiveTag, scatterGather: queues.memory.scatterGather(offset: slot, length: slot))
            }
        }
        try control.send(.welcome(Welcome(endpoints: local, memory: queues.remoteDescriptor, path: opened.path)))
        admission.admitted = true
        let pump = CompletionPump(queue: queues.completionQueue, progressTimeout: timeout, control: control)
        pump.yieldWhenIdle = !spin
        while true {
            let message = try control.receive(timeout: timeout, waitingFor: "the next size (go) or bye")
            switch message {
            case .bye:
                return
            case .go(let size):
                try limits.check(go: size, of: hello)
                queues.memory.bytes.initializeMemory(as: UInt8.self, repeating: 0)
                if hello.verify, operation == .read { PayloadCheck.offerForRead(queues.memory.bytes.baseAddress!, size: size) }
                try control.send(.ready)
                let end: ControlMessage
                if operation.isPingPong {
                    end = try LatencyLoops.echo(queues: queues, remote: hello.memory, operation: operation, size: size, pump: pump,
                                                echoReceived: hello.verify)
                } else {
                    opened.backgroundProgress(true)
                    defer { opened.backgroundProgress(false) }
                    end = try waitPassively(control: control, timeout: timeout)
                }
                switch end {
                case .done(_, let statistics?): report(size, operation, statistics)
                case .bye:
                    log("client \(control.peerDescription) stopped the run")
                    return
                default: break
                }
            default:
                throw .refused("cmd", "unexpected \(message.name) (expected go or bye)")
            }
        }
    }

    /// The passive side (READ/atomic target, WRITE/READ bandwidth target): the client's
    /// `alive` messages keep the wait bounded by the progress timeout, not the run length.
    /// Returns the client's `done`, or `bye` when it stopped the run (Ctrl-C).
    static func waitPassively(control: ControlConnection, timeout: Double) throws(PerfError) -> ControlMessage {
        while true {
            let message = try control.receive(timeout: timeout, waitingFor: "the client's progress (alive/done)")
            switch message {
            case .done, .bye: return message
            case .alive: continue
            default: throw .refused("cmd", "unexpected \(message.name) during the run")
            }
        }
    }
}
