// softroce-bench: 2-byte RC SEND ping-pong between two soft devices (127.0.0.1 ↔ 127.0.0.2)
// through the public RDMA API, each side busy-polling on its own thread. Prints the
// half round trip (RTT/2, like perftest and qperf) percentiles and, when run under
// tools/malloc-count (LD_PRELOAD), heap allocations per message in steady state.
// Run via tools/bench-soft-pingpong, which builds it in release mode and runs qperf alongside.
// Usage: softroce-bench [ITERATIONS] [IDLE_QPS] — IDLE_QPS connected RC QP pairs that carry
// no traffic are created first (their memory per QP is printed), to show that a poll does
// not cost more with many idle QPs. Example: softroce-bench 20000 1000
#if canImport(Glibc)
import Glibc
#endif
import RDMA
import Synchronization

final class Flag: Sendable { let value = Atomic<Int>(0) }
let clientDone = Flag()

let iterations = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 20_000 : 20_000
let warmup = 2_000
/// SOFTROCE_ICRC: automatic (default), strict, assume-id0 or off.
let icrcMode = getenv("SOFTROCE_ICRC").flatMap { ICRCVerification(rawValue: String(cString: $0)) } ?? .automatic

typealias Counter = @convention(c) () -> UInt64
let mallocCounter: Counter? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_count_total").map { unsafeBitCast($0, to: Counter.self) }

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

final class Side: @unchecked Sendable {
    let context: Context
    let domain: ProtectionDomain
    let queue: CompletionQueue
    let pair: QueuePair
    let region: MemoryRegion
    init(address: String, port: UInt16) throws {
        context = try Context(soft: SoftDeviceConfiguration(address: address, port: port, icrc: icrcMode))
        domain = try ProtectionDomain(context: context)
        queue = try CompletionQueue(context: context, minimumEntries: 256)
        pair = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue, receiveCompletionQueue: queue,
                             capabilities: QueuePairCapabilities(maxSendWorkRequests: 64, maxReceiveWorkRequests: 64))
        region = try MemoryRegion(protectionDomain: domain, length: 4096, access: .allRemote)
    }
}

// Pick a port free on both addresses.
var port: UInt16 = 0
var a: Side!
var b: Side!
var lastFailure: (any Error)?
for candidate in UInt16(20_000)..<UInt16(20_100) {
    do {
        let first = try Side(address: "127.0.0.1", port: candidate)
        b = try Side(address: "127.0.0.2", port: candidate)
        a = first; port = candidate
        break
    } catch {
        lastFailure = error
    }
}
guard let a, let b else {
    let line = Array("softroce-bench: no soft device pair on ports 20000-20099 of 127.0.0.1/127.0.0.2; the last failure: \(lastFailure.map { "\($0)" } ?? "none")\n".utf8)
    _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    exit(1)
}
let endpointA = try a.pair.localEndpoint(gidIndex: 0, psn: 100)
let endpointB = try b.pair.localEndpoint(gidIndex: 0, psn: 200)
try a.pair.connect(to: endpointB, local: endpointA, options: ConnectionOptions(gidIndex: 0))
try b.pair.connect(to: endpointA, local: endpointB, options: ConnectionOptions(gidIndex: 0))

/// Resident memory in bytes: `/proc/self/statm`'s second field, in pages.
func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    guard fgets(&line, 256, file) != nil else { return 0 }
    let fields = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

let idleQueuePairCount = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? 0 : 0
var idleQueuePairs: [QueuePair] = []
if idleQueuePairCount > 0 {
    let before = residentBytes()
    for index in 0..<idleQueuePairCount {
        let capabilities = QueuePairCapabilities(maxSendWorkRequests: 64, maxReceiveWorkRequests: 64)
        let first = try QueuePair(protectionDomain: a.domain, kind: .reliableConnected, sendCompletionQueue: a.queue, receiveCompletionQueue: a.queue,
                                  capabilities: capabilities)
        let second = try QueuePair(protectionDomain: b.domain, kind: .reliableConnected, sendCompletionQueue: b.queue, receiveCompletionQueue: b.queue,
                                   capabilities: capabilities)
        let firstEnd = try first.localEndpoint(gidIndex: 0, psn: UInt32(index))
        let secondEnd = try second.localEndpoint(gidIndex: 0, psn: UInt32(index))
        try first.connect(to: secondEnd, local: firstEnd, options: ConnectionOptions(gidIndex: 0))
        try second.connect(to: firstEnd, local: secondEnd, options: ConnectionOptions(gidIndex: 0))
        idleQueuePairs += [first, second]
    }
    let perQueuePair = (residentBytes() - before) / (2 * idleQueuePairCount)
    print("idle RC QPs: \(idleQueuePairCount) connected pairs (\(2 * idleQueuePairCount) QPs, 64 send + 64 receive entries each): \(perQueuePair) B resident per QP")
}

let total = warmup + iterations

// Sends are unsignaled except every 16th, so that the send queue drains without a CQE per message.
@inline(__always) func pingOnce(_ side: Side, _ k: Int) throws {
    try side.pair.post(SendWorkRequest(id: UInt64(k), flags: k % 16 == 0 ? .signaled : []), scatterGather: side.region.scatterGather(offset: 0, length: 2))
}

@inline(__always) func waitReceive(_ side: Side, repost: Bool) throws {
    while true {
        guard let completion = try side.queue.pollOne() else { continue }
        if completion.opcode == .receive {
            precondition(completion.status == .success, "\(completion)")
            if repost { try side.pair.postReceive(id: 1, scatterGather: side.region.scatterGather(offset: 2048, length: 64)) }
            return
        }
        precondition(completion.status == .success, "\(completion)")
    }
}

for _ in 0..<32 {
    try a.pair.postReceive(id: 1, scatterGather: a.region.scatterGather(offset: 2048, length: 64))
    try b.pair.postReceive(id: 1, scatterGather: b.region.scatterGather(offset: 2048, length: 64))
}

final class ServerJob: @unchecked Sendable {
    let side: Side
    let count: Int
    init(side: Side, count: Int) { self.side = side; self.count = count }
}

nonisolated func serve(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let job = Unmanaged<ServerJob>.fromOpaque(raw!).takeRetainedValue()
    do {
        for k in 0..<job.count {
            try waitReceive(job.side, repost: true)
            try pingOnce(job.side, k)
        }
        // Keep driving the engine (ACKs, retransmissions) until the client has its last pong.
        while clientDone.value.load(ordering: .acquiring) == 0 { _ = try job.side.queue.pollOne() }
    } catch { fatalError("server: \(error)") }
    return nil
}

var thread = pthread_t()
pthread_create(&thread, nil, serve, Unmanaged.passRetained(ServerJob(side: b, count: total)).toOpaque())

let samples = UnsafeMutablePointer<UInt64>.allocate(capacity: iterations)
var mallocsAtStart: UInt64 = 0
let start = now()
for k in 0..<total {
    if k == warmup { mallocsAtStart = mallocCounter?() ?? 0 }
    let t0 = now()
    try pingOnce(a, k)
    try waitReceive(a, repost: true)
    if k >= warmup { samples[k - warmup] = now() - t0 }
}
let mallocsAtEnd = mallocCounter?() ?? 0
clientDone.value.store(1, ordering: .releasing)
let elapsed = now() - start
pthread_join(thread, nil)

let sorted = [UInt64](UnsafeBufferPointer(start: samples, count: iterations)).sorted()
@MainActor func percentile(_ p: Double) -> Double { Double(sorted[min(iterations - 1, Int(Double(iterations) * p))]) / 2 / 1000 }
print("soft RC SEND 2 B ping-pong, \(iterations) iterations (+\(warmup) warm-up), 127.0.0.1 <-> 127.0.0.2 port \(port)")
print("half-RTT us: p50 \(percentile(0.5))  p90 \(percentile(0.9))  p99 \(percentile(0.99))  min \(Double(sorted[0]) / 2000)")
print("messages/s (round trips): \(Int(Double(total) / (Double(elapsed) / 1e9)))")
if mallocCounter != nil {
    let perMessage = Double(mallocsAtEnd - mallocsAtStart) / Double(iterations * 2)
    print("allocations per message (steady state, both sides): \(perMessage)  [\(mallocsAtEnd - mallocsAtStart) mallocs over \(iterations * 2) messages]")
} else {
    print("allocations per message: not measured (run under tools/bench-soft-pingpong to preload the malloc counter)")
}
