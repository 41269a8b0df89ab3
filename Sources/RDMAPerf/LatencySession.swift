import RDMA

/// The two roles of `rdma-pingpong` over one exchange connection.
public enum LatencySession {
    static let protocolVersion = 1

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
        try checkSizes(parameters.sizes, opened: opened, operation: parameters.operation)
        let slot = slot(for: parameters.sizes)
        let queues = try QueueSet(context: opened.context, queuePairs: 1, slot: slot, sendDepth: 128,
                                  receiveDepth: 64, inlineSize: parameters.inlineSize)
        defer { queues.close() }
        let local = try queues.endpoints(port: opened.port, gidIndex: opened.gidIndex)
        var hello = ControlMessage.hello(tool: "rdma-pingpong", operation: parameters.operation.rawValue, sizes: parameters.sizes,
                                         iterations: parameters.iterations, duration: parameters.duration,
                                         endpoints: local, memory: queues.remoteDescriptor)
        hello.warmup = parameters.warmup
        let (remoteEndpoints, remote) = try control.greet(hello, timeout: parameters.progressTimeout)
        try queues.connect(local: local, remote: remoteEndpoints, port: opened.port, gidIndex: opened.gidIndex,
                           mtu: parameters.mtu, timeout: parameters.qpTimeout)
        let pair = queues.queuePairs[0]
        for _ in 0..<queues.receiveDepth {
            try rdma("posting receives") { () throws(RDMAError) in
                try pair.postReceive(id: receiveTag, scatterGather: queues.memory.scatterGather(offset: slot, length: slot))
            }
        }
        let pump = CompletionPump(queue: queues.completionQueue, progressTimeout: parameters.progressTimeout, control: control)
        pump.yieldWhenIdle = !parameters.spin
        var results: [LatencyResult] = []
        var progress = ProgressLine()
        defer { progress.finish() }
        let capacity = parameters.iterations ?? LatencyParameters.durationSampleCap
        let samples = SampleBuffer(capacity: capacity)
        for size in parameters.sizes {
            if stopRequested() { break }
            queues.memory.bytes.initializeMemory(as: UInt8.self, repeating: 0)
            var go = ControlMessage(cmd: "go")
            go.size = size
            try control.send(go)
            let ready = try control.receive(timeout: parameters.progressTimeout, waitingFor: "ready (size \(size))")
            guard ready.cmd == "ready" else { throw .peer("expected ready, got \(ready.cmd)") }
            samples.count = 0
            var truncated = false
            var interruption: PerfError?
            do {
                truncated = try LatencyLoops.client(queues: queues, remote: remote, parameters: parameters, size: size,
                                                    samples: samples, pump: pump, progress: &progress)
            } catch where error.exitCode == 130 {
                truncated = true
                interruption = error
            }
            let halve = parameters.operation.isPingPong
            var done = ControlMessage(cmd: "done")
            done.size = size
            done.count = samples.count
            if let statistics = LatencyStatistics(samples: samples.filled, halve: halve) {
                let result = LatencyResult(size: size, operation: parameters.operation, statistics: statistics,
                                           histogram: LatencyStatistics.histogram(of: samples.filled, halve: halve),
                                           truncated: truncated)
                results.append(result)
                done.latency = statistics
                report(result)
            }
            try? control.send(done)
            if interruption != nil || stopRequested() { break }
        }
        try? control.send(ControlMessage(cmd: "bye"))
        return results
    }

    /// Server: waits for one client's `hello`, answers the run, and returns the client's
    /// figures per size (it calls `report` with them as they arrive).
    public static func serve(opened: OpenedDevice, control: ControlConnection, progressTimeout: Double,
                             inlineSize: Int?, mtu: Int?, qpTimeout: UInt8, spin: Bool = false,
                             log: (String) -> Void, report: (Int, LatencyOperation, LatencyStatistics) -> Void) throws(PerfError) {
        let hello = try control.receive(timeout: progressTimeout, waitingFor: "hello")
        guard hello.cmd == "hello", hello.tool == "rdma-pingpong", let sizes = hello.sizes,
              let operation = hello.op.flatMap(LatencyOperation.init(rawValue:)), let remoteEndpoints = hello.endpoints,
              let remote = hello.memory else {
            throw .peer("the client's hello is not an rdma-pingpong hello (tool \(hello.tool ?? "?"))",
                        hint: "run rdma-pingpong on both sides")
        }
        do { try checkSizes(sizes, opened: opened, operation: operation) } catch {
            var refusal = ControlMessage(cmd: "error")
            refusal.error = "server: \(error)"
            try? control.send(refusal)
            throw error
        }
        log("client \(control.peerDescription): \(operation) latency, sizes \(sizes.count == 1 ? "\(sizes[0])" : "\(sizes.first!)…\(sizes.last!)")")
        let slot = slot(for: sizes)
        let queues = try QueueSet(context: opened.context, queuePairs: 1, slot: slot, sendDepth: 128, receiveDepth: 64, inlineSize: inlineSize)
        defer { queues.close() }
        let local = try queues.endpoints(port: opened.port, gidIndex: opened.gidIndex)
        try queues.connect(local: local, remote: remoteEndpoints, port: opened.port, gidIndex: opened.gidIndex, mtu: mtu, timeout: qpTimeout)
        let pair = queues.queuePairs[0]
        for _ in 0..<queues.receiveDepth {
            try rdma("posting receives") { () throws(RDMAError) in
                try pair.postReceive(id: receiveTag, scatterGather: queues.memory.scatterGather(offset: slot, length: slot))
            }
        }
        var welcome = ControlMessage(cmd: "welcome")
        welcome.endpoints = local
        welcome.memory = queues.remoteDescriptor
        welcome.path = opened.path
        try control.send(welcome)
        let pump = CompletionPump(queue: queues.completionQueue, progressTimeout: progressTimeout, control: control)
        pump.yieldWhenIdle = !spin
        while true {
            let message = try control.receive(timeout: progressTimeout, waitingFor: "the next size (go) or bye")
            switch message.cmd {
            case "bye":
                return
            case "go":
                guard let size = message.size, size <= slot else { throw .peer("go without a valid size") }
                queues.memory.bytes.initializeMemory(as: UInt8.self, repeating: 0)
                try control.send(ControlMessage(cmd: "ready"))
                let done: ControlMessage
                if operation.isPingPong {
                    done = try LatencyLoops.echo(queues: queues, remote: remote, operation: operation, size: size, pump: pump)
                } else {
                    opened.backgroundProgress(true)
                    defer { opened.backgroundProgress(false) }
                    done = try waitPassively(control: control, timeout: progressTimeout)
                }
                if let statistics = done.latency { report(size, operation, statistics) }
            default:
                throw .peer("unexpected \(message.cmd) from the client")
            }
        }
    }

    /// The passive side (READ/atomic target, WRITE/READ bandwidth target): the client's
    /// `alive` messages keep the wait bounded by the progress timeout, not the run length.
    static func waitPassively(control: ControlConnection, timeout: Double) throws(PerfError) -> ControlMessage {
        while true {
            let message = try control.receive(timeout: timeout, waitingFor: "the client's progress (alive/done)")
            if message.cmd == "done" { return message }
            if message.cmd != "alive" { throw .peer("unexpected \(message.cmd) during the run") }
        }
    }
}
