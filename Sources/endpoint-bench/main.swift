// endpoint-bench: request/response through MessageEndpoint between two soft devices
// (127.0.0.1 ↔ 127.0.0.2), the server answering on its own thread. Prints the round-trip
// percentiles, calls per second with 1 and 32 outstanding, and — when run under
// tools/malloc-count.c (LD_PRELOAD) — heap allocations per call in poll and async mode.
// Run via tools/bench-endpoint, which builds it in release mode and runs rdma-pingpong
// alongside on the same backend.
// With --device (kernel rxe in the lab: tools/endpoint-lab), both endpoints are on that
// verbs device and connect by address through rdma_cm (MessageEndpointListener on
// --address, MessageEndpoint.connect to it); the handshakes travel in the CM private data.
// --latency-only runs the poll-mode round trip alone (the scripts interleave it with
// rdma-pingpong, pair by pair, to show the ratio beside the noise).
// Usage: endpoint-bench [iterations] [payload bytes] [--device rxe0 --address 10.0.0.1] [--latency-only]
// Experiments (environment): ENDPOINT_IDLE_SPIN_US (the async driver's spin),
// ENDPOINT_RECEIVE_SLOTS (the receive pool, 128 here), ENDPOINT_TIMED_CALL_INTERVAL,
// ENDPOINT_RECEIVED_MESSAGES (poll mode through ReceivedMessage values — tryReceive,
// trySendResponse, callPolling returning the response — instead of answerPolling and
// callPolling(readingResponse:), which answer and read in place under one lock).
#if canImport(Glibc)
import Glibc
#endif
import RDMA
import RDMAEndpoint
import Synchronization

/// `--name value` from the command line, removed from the positional arguments.
func option(_ name: String, in arguments: inout [String]) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    defer { arguments.removeSubrange(index...(index + 1)) }
    return arguments[index + 1]
}
var arguments = Array(CommandLine.arguments.dropFirst())
let latencyOnly = arguments.contains("--latency-only")
arguments.removeAll { $0 == "--latency-only" }
let verbsDevice = option("--device", in: &arguments)
let verbsAddress = option("--address", in: &arguments)
if verbsDevice != nil && verbsAddress == nil { fatalError("--device needs --address (the device's IPv4 address)") }
let iterations = arguments.count > 0 ? Int(arguments[0]) ?? 20_000 : 20_000
let payloadSize = arguments.count > 1 ? Int(arguments[1]) ?? 2 : 2
let warmup = min(2_000, max(100, iterations / 5))

typealias MallocCounter = @convention(c) () -> UInt64
let mallocCounter: MallocCounter? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_count_total")
    .map { unsafeBitCast($0, to: MallocCounter.self) }

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// One side: a soft device, a QP connected to the other side's; its completion queue has
/// a channel, on which the async driver parks when idle.
final class Side: @unchecked Sendable {
    let context: Context
    let pair: QueuePair

    init(address: String, port: UInt16) throws {
        context = try Context(soft: SoftDeviceConfiguration(address: address, port: port))
        let domain = try ProtectionDomain(context: context)
        let queue = try CompletionQueue(context: context, minimumEntries: 1024, channel: CompletionChannel(context: context))
        pair = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue, receiveCompletionQueue: queue,
                             capabilities: QueuePairCapabilities(maxSendWorkRequests: 256, maxReceiveWorkRequests: 256))
    }
}

func connectedSides() throws -> (Side, Side) {
    for candidate in UInt16(20_200)..<UInt16(20_400) {
        guard let first = try? Side(address: "127.0.0.1", port: candidate) else { continue }
        guard let second = try? Side(address: "127.0.0.2", port: candidate) else { continue }
        let endpointA = try first.pair.localEndpoint(gidIndex: 0, psn: 100)
        let endpointB = try second.pair.localEndpoint(gidIndex: 0, psn: 200)
        // A 0.5 s ACK timeout (× 7 retries): on a machine shared by many builds a spinning
        // side can be descheduled long enough to exhaust the default 67 ms × 7.
        let options = ConnectionOptions(gidIndex: 0, timeout: 17)
        try first.pair.connect(to: endpointB, local: endpointA, options: options)
        try second.pair.connect(to: endpointA, local: endpointB, options: options)
        return (first, second)
    }
    fatalError("no free UDP port on 127.0.0.1/127.0.0.2")
}

/// ENDPOINT_RECEIVED_MESSAGES: poll mode through `ReceivedMessage` values (see the top).
let throughReceivedMessages = getenv("ENDPOINT_RECEIVED_MESSAGES") != nil

func benchConfiguration() -> EndpointConfiguration {
    var configuration = EndpointConfiguration()
    configuration.receiveSlots = 128
    configuration.sendSlots = 128
    configuration.rendezvousSlots = 0
    configuration.maxOutstandingCalls = 1024
    // Overrides for experiments: the async driver's spin before it parks; the receive
    // pool (each buffer its own page: a round trip cycles through them all); the eager
    // limit (the buffers' size: 4 KiB + the header by default); the timed calls.
    func number(_ name: String) -> Int? { getenv(name).flatMap { Int(String(cString: $0)) } }
    if let spin = number("ENDPOINT_IDLE_SPIN_US") { configuration.idleSpin = .microseconds(spin) }
    if let slots = number("ENDPOINT_RECEIVE_SLOTS") { configuration.receiveSlots = slots }
    if let limit = number("ENDPOINT_EAGER_LIMIT") { configuration.eagerLimit = limit }
    if let interval = number("ENDPOINT_TIMED_CALL_INTERVAL") { configuration.timedCallInterval = interval }
    return configuration
}

/// A client and a server endpoint: on two soft devices, or by address on the verbs device.
func endpoints(mode: MessageEndpoint.DrivingMode) async throws -> (client: MessageEndpoint, server: MessageEndpoint, sides: [Side]) {
    if let verbsAddress {
        let listener = try MessageEndpointListener(address: ConnectionAddress(verbsAddress, port: 7490)!, configuration: benchConfiguration(), mode: mode)
        async let accepted = listener.nextEndpoint(timeout: .seconds(30))
        let client = try await MessageEndpoint.connect(to: verbsAddress, port: 7490, configuration: benchConfiguration(), mode: mode)
        let server = try await accepted
        try listener.close()
        return (client, server, [])
    }
    let (a, b) = try connectedSides()
    let client = try MessageEndpoint(queuePair: a.pair, configuration: benchConfiguration())
    let server = try MessageEndpoint(queuePair: b.pair, configuration: benchConfiguration())
    try client.start(peer: server.localHandshake, mode: mode)
    try server.start(peer: client.localHandshake, mode: mode)
    return (client, server, [a, b])
}

final class Stop: Sendable { let flag = Atomic<Bool>(false) }

/// The poll-mode echo server: run to completion on its own thread.
final class PollServer: @unchecked Sendable {
    let endpoint: MessageEndpoint
    let stop = Stop()
    var thread = pthread_t()

    init(_ endpoint: MessageEndpoint) {
        self.endpoint = endpoint
        pthread_create(&thread, nil, { raw in
            let server = Unmanaged<PollServer>.fromOpaque(raw!).takeUnretainedValue()
            server.run()
            return nil
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Yields like rdma-pingpong's server (`MessageEndpoint.idle`) after 256 empty rounds.
    /// Empty rounds run `emptyRoundsPerLock` at a time under one lock, as `callPolling`'s
    /// do. By default each request is answered in place (`answerPolling`, an echo); with
    /// ENDPOINT_RECEIVED_MESSAGES through `tryReceive` and `trySendResponse`. Either way an
    /// empty poll goes straight to the next, as rdma-pingpong's server only looks at what
    /// its poll returned.
    func run() {
        var emptyRounds = 0
        let rounds = MessageEndpoint.emptyRoundsPerLock
        do {
            while !stop.flag.load(ordering: .relaxed) {
                if !throughReceivedMessages {
                    let handled = try endpoint.answerPolling(rounds: rounds) { request, response in
                        response.copyMemory(from: request)
                        return request.count
                    }
                    if handled == 0 { MessageEndpoint.idle(&emptyRounds, rounds: rounds) }
                    continue
                }
                if try endpoint.poll(rounds: rounds) == 0 {
                    MessageEndpoint.idle(&emptyRounds, rounds: rounds)
                    continue
                }
                while let request = try endpoint.tryReceive() {
                    let id = request.callID
                    while try !request.withUnsafeBytes({ try endpoint.trySendResponse(to: id, $0) }) { try endpoint.poll() }
                }
            }
        } catch {
            if !stop.flag.load(ordering: .relaxed) { fatalError("server: \(error)") }
        }
    }

    func finish() {
        stop.flag.store(true, ordering: .relaxed)
        pthread_join(thread, nil)
    }
}

func percentile(_ sorted: [UInt64], _ p: Double) -> Double {
    Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1000
}

/// What a call asked of the device, per call, from both endpoints' statistics.
func perCall(_ before: EndpointStatistics, _ after: EndpointStatistics, calls: Int) -> String {
    func rate(_ value: KeyPath<EndpointStatistics, UInt64>) -> String { fixed(Double(after[keyPath: value] - before[keyPath: value]) / Double(calls), 3) }
    return "post_send \(rate(\.sendRequestsPosted)) (signalled \(rate(\.sendRequestsSignalled)), inline \(rate(\.inlineSends)), "
        + "control writes \(rate(\.controlWrites))), post_recv calls \(rate(\.receivePostCalls)) (receives \(rate(\.receivesPosted))), "
        + "completions \(rate(\.completionsPolled)), poll_cq calls \(rate(\.completionQueuePolls))"
}

/// Poll mode, one call at a time: round-trip samples, mallocs and verbs calls per call.
/// A sample is the time from one call's start to the next's — one clock read per call,
/// as rdma-pingpong takes them (the period between consecutive posts).
func pollModeLatency() async throws -> (p50: Double, p99: Double, callsPerSecond: Double, mallocsPerCall: Double?, client: String, server: String) {
    let (client, server, sides) = try await endpoints(mode: .poll)
    let serverThread = PollServer(server)
    let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: max(payloadSize, 1), alignment: 8)
    defer { payload.deallocate() }
    let request = UnsafeRawBufferPointer(rebasing: payload[0..<payloadSize])
    var samples = [UInt64](repeating: 0, count: iterations)
    var mallocsAtStart: UInt64 = 0
    var start: UInt64 = 0
    var clientBefore = EndpointStatistics(), serverBefore = EndpointStatistics()
    var previous: UInt64 = 0
    for k in 0..<(warmup + iterations) {
        if k == warmup {
            clientBefore = client.statistics
            serverBefore = server.statistics
            mallocsAtStart = mallocCounter?() ?? 0
        }
        let t0 = now()
        if k > warmup { samples[k - warmup - 1] = t0 - previous }
        if k == warmup { start = t0 }
        previous = t0
        if throughReceivedMessages {
            let response = try client.callPolling(request)
            precondition(response.count == payloadSize)
            response.release()
        } else {
            let count = try client.callPolling(request) { $0.count }
            precondition(count == payloadSize)
        }
    }
    let end = now()
    samples[iterations - 1] = end - previous
    let elapsed = end - start
    let mallocs = mallocCounter.map { Double($0() - mallocsAtStart) / Double(iterations) }
    let clientCounts = perCall(clientBefore, client.statistics, calls: iterations)
    let serverCounts = perCall(serverBefore, server.statistics, calls: iterations)
    if getenv("ENDPOINT_BENCH_COUNTERS") != nil {
        for side in sides {
            print((side.context.softCounters?.named ?? []).filter { $0.value != 0 }.map { "\($0.name)=\($0.value)" }.joined(separator: " "))
        }
    }
    serverThread.finish()
    client.close()
    server.close()
    for side in sides { try? side.context.close() }
    samples.sort()
    return (percentile(samples, 0.5), percentile(samples, 0.99), Double(iterations) / (Double(elapsed) / 1e9), mallocs,
            clientCounts, serverCounts)
}

/// Poll mode with `outstanding` calls in flight: calls per second.
func pollModeThroughput(outstanding: Int) async throws -> Double {
    let (client, server, sides) = try await endpoints(mode: .poll)
    let serverThread = PollServer(server)
    let request: [UInt8] = Array(repeating: 7, count: payloadSize)
    var inFlight = [UInt64](repeating: 0, count: outstanding)
    var issued = 0, completed = 0
    let total = iterations
    let start = now()
    try request.withUnsafeBytes { bytes in
        for slot in 0..<outstanding {
            while true { if let id = try client.trySendRequest(bytes) { inFlight[slot] = id; break }; try client.poll() }
            issued += 1
        }
        var emptyRounds = 0
        while completed < total {
            if try client.poll() == 0 { MessageEndpoint.idle(&emptyRounds) }
            for slot in 0..<outstanding where inFlight[slot] != 0 {
                guard let response = try client.takeResponse(inFlight[slot]) else { continue }
                response.release()
                completed += 1
                inFlight[slot] = 0
                if issued < total {
                    while true { if let id = try client.trySendRequest(bytes) { inFlight[slot] = id; break }; try client.poll() }
                    issued += 1
                }
            }
        }
    }
    let elapsed = now() - start
    serverThread.finish()
    client.close()
    server.close()
    for side in sides { try? side.context.close() }
    return Double(total) / (Double(elapsed) / 1e9)
}

/// Where the async benchmark's tasks run: the global pool (the default), on their
/// endpoint's driver (`MessageEndpoint.taskExecutor`), or the callers on the global pool
/// with only each `call` scoped to the client's driver (`withTaskExecutorPreference`) —
/// what `call` could do by default; the task hops back to the pool when the scope ends.
enum Placement { case global, drivers, scopedToCalls }

/// Async mode: `outstanding` tasks each calling in a loop; calls per second, p50/p99 and
/// mallocs per call, with the tasks (and the server's) placed by `placement`.
func asyncMode(outstanding: Int, placement: Placement = .global) async throws -> (p50: Double, p99: Double, callsPerSecond: Double, mallocsPerCall: Double?) {
    let (client, server, sides) = try await endpoints(mode: .async)
    let onDrivers = placement == .drivers, scoped = placement == .scopedToCalls
    let serverTask = Task(executorPreference: onDrivers ? server.taskExecutor : nil) {
        while let request = try? await server.receive() {
            // Echoed from the receive buffer straight into a send buffer: no copy in between.
            try? await server.respond(to: request.callID, length: request.count) { buffer in
                request.withUnsafeBytes { buffer.copyMemory(from: $0) }
            }
            request.release()
        }
    }
    let request: [UInt8] = Array(repeating: 7, count: payloadSize)
    for _ in 0..<warmup { try await client.call(request).release() }
    let perTask = max(1, iterations / outstanding)
    let mallocsAtStart = mallocCounter?() ?? 0
    let start = now()
    let samples = try await withThrowingTaskGroup(of: [UInt64].self) { group in
        for _ in 0..<outstanding {
            group.addTask(executorPreference: onDrivers ? client.taskExecutor : nil) {
                var samples = [UInt64]()
                samples.reserveCapacity(perTask)
                for _ in 0..<perTask {
                    let t0 = now()
                    if scoped {
                        try await withTaskExecutorPreference(client.taskExecutor) { try await client.call(request).release() }
                    } else {
                        try await client.call(request).release()
                    }
                    samples.append(now() - t0)
                }
                return samples
            }
        }
        var all = [UInt64]()
        for try await part in group { all += part }
        return all.sorted()
    }
    let elapsed = now() - start
    let mallocs = mallocCounter.map { Double($0() - mallocsAtStart) / Double(perTask * outstanding) }
    client.close()
    server.close()
    serverTask.cancel()
    for side in sides { try? side.context.close() }
    return (percentile(samples, 0.5), percentile(samples, 0.99), Double(perTask * outstanding) / (Double(elapsed) / 1e9), mallocs)
}

func fixed(_ value: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    return "\((value * scale).rounded() / scale)"
}

func format(_ value: Double?) -> String { value.map { fixed($0, 3) } ?? "n/a (run under tools/malloc-count.c)" }

let poll = try await pollModeLatency()
print("endpoint poll mode, \(payloadSize)-byte request/response, \(iterations) calls, \(verbsDevice.map { "\($0) by rdma_cm" } ?? "soft engine"):")
print("  round trip p50 \(fixed(poll.p50, 2)) us  p99 \(fixed(poll.p99, 2)) us  (half round trip p50 \(fixed(poll.p50 / 2, 2)) us)")
print("  calls/s 1 outstanding: \(Int(poll.callsPerSecond))")
print("  mallocs per call (poll): \(format(poll.mallocsPerCall))")
print("  per call, client: \(poll.client)")
print("  per call, server: \(poll.server)")
if latencyOnly { exit(0) }
let thirtyTwo = try await pollModeThroughput(outstanding: 32)
print("  calls/s 32 outstanding: \(Int(thirtyTwo))")
let async1 = try await asyncMode(outstanding: 1)
let async32 = try await asyncMode(outstanding: 32)
let driver1 = try await asyncMode(outstanding: 1, placement: .drivers)
let driver32 = try await asyncMode(outstanding: 32, placement: .drivers)
let scoped1 = try await asyncMode(outstanding: 1, placement: .scopedToCalls)
print("endpoint async mode:")
print("  1 outstanding: round trip p50 \(fixed(async1.p50, 2)) us  p99 \(fixed(async1.p99, 2)) us  calls/s \(Int(async1.callsPerSecond))")
print("  32 outstanding: calls/s \(Int(async32.callsPerSecond))")
print("  mallocs per call (async, 1 outstanding): \(format(async1.mallocsPerCall))")
print("  mallocs per call (async, 32 outstanding): \(format(async32.mallocsPerCall))")
print("endpoint async mode, tasks on the endpoints' drivers (taskExecutor):")
print("  1 outstanding: round trip p50 \(fixed(driver1.p50, 2)) us  p99 \(fixed(driver1.p99, 2)) us  calls/s \(Int(driver1.callsPerSecond))")
print("  32 outstanding: calls/s \(Int(driver32.callsPerSecond))")
print("  mallocs per call (1 outstanding): \(format(driver1.mallocsPerCall)); (32 outstanding): \(format(driver32.mallocsPerCall))")
print("endpoint async mode, tasks on the global pool, each call scoped to the client's driver (withTaskExecutorPreference):")
print("  1 outstanding: round trip p50 \(fixed(scoped1.p50, 2)) us  p99 \(fixed(scoped1.p99, 2)) us  calls/s \(Int(scoped1.callsPerSecond))  mallocs per call \(format(scoped1.mallocsPerCall))")
