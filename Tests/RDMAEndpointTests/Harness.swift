#if canImport(Glibc)
import Glibc
#endif
import MetricsTestKit
import RDMA
import Testing
@testable import RDMAEndpoint

/// The device the endpoint tests run on: the verbs device `RDMA_TEST_DEVICE` names (kernel
/// rxe inside the lab VM: tools/endpoint-lab), else a soft device on 127.0.0.1.
enum EndpointTestDevice {
    static let verbsName: String? = getenv("RDMA_TEST_DEVICE").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
    /// The address rdma_cm connects to on verbs (the lab's rxe netdev).
    static let verbsAddress: String? = getenv("RDMA_TEST_IPV4").map { String(cString: $0) }

    static func open() throws -> Context {
        if let verbsName { return try Context(deviceNamed: verbsName) }
        return try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
    }

    /// RNR events on the context's device so far — NAKs received and sent, RNR retries
    /// exhausted: the soft engine's counters, or rxe's hw_counters (device-wide).
    static func rnrEvents(_ context: Context) -> UInt64 {
        let names = ["rcvd_rnr_err", "send_rnr_err", "retry_rnr_exceeded_err"]
        if let counters = context.softCounters {
            return counters.named.filter { names.contains($0.name) }.reduce(0) { $0 + $1.value }
        }
        return names.reduce(0) { total, name in
            let path = "/sys/class/infiniband/\(context.device.name)/ports/1/hw_counters/\(name)"
            guard let file = fopen(path, "r") else { return total }
            defer { fclose(file) }
            var line = [CChar](repeating: 0, count: 32)
            guard fgets(&line, 32, file) != nil else { return total }
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return total + (UInt64(text.trimmingPrefix(" ").prefix { $0.isNumber }) ?? 0)
        }
    }
}

/// Two RC queue pairs on one device (`EndpointTestDevice`), connected to each other the
/// way the RDMA tests' `ConnectedPair` does, each with its own CQ. The ACK timeout (16:
/// 0.27 s × 7 retries) outlasts a thread descheduled on a loaded CI machine.
final class QueuePairPair: @unchecked Sendable {
    let context: Context
    let domain: ProtectionDomain
    let pairA: QueuePair
    let pairB: QueuePair
    /// The device's RNR events when the pair was made (rxe counts device-wide).
    let rnrEventsAtStart: UInt64

    init(receiveSlots: Int = 256, sendDepth: UInt32 = 512, timeout: UInt8 = 16, retryCount: UInt8 = 7) throws {
        context = try EndpointTestDevice.open()
        rnrEventsAtStart = EndpointTestDevice.rnrEvents(context)
        domain = try ProtectionDomain(context: context)
        let capabilities = QueuePairCapabilities(maxSendWorkRequests: sendDepth, maxReceiveWorkRequests: UInt32(receiveSlots),
                                                 maxSendScatterGather: 1, maxReceiveScatterGather: 1, maxInlineData: 0)
        let entries = Int(sendDepth) + receiveSlots
        // With channels, async drivers park until a completion instead of sleeping in turns
        // (which, in the lab's emulated VM, left kernel rxe waiting on them).
        let queueA = try CompletionQueue(context: context, minimumEntries: entries, channel: CompletionChannel(context: context))
        let queueB = try CompletionQueue(context: context, minimumEntries: entries, channel: CompletionChannel(context: context))
        pairA = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queueA,
                              receiveCompletionQueue: queueA, capabilities: capabilities)
        pairB = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queueB,
                              receiveCompletionQueue: queueB, capabilities: capabilities)
        let gidIndex = try getenv("RDMA_TEST_GID_INDEX").flatMap { Int(String(cString: $0)) } ?? context.preferredRoCEv2GID().index
        let endpointA = try pairA.localEndpoint(gidIndex: gidIndex, psn: 0x100)
        let endpointB = try pairB.localEndpoint(gidIndex: gidIndex, psn: 0xFF_FFF0)
        let options = ConnectionOptions(gidIndex: UInt8(gidIndex), timeout: timeout, retryCount: retryCount)
        try pairA.connect(to: endpointB, local: endpointA, options: options)
        try pairB.connect(to: endpointA, local: endpointB, options: options)
    }

    /// RNR events on the device since the pair was made.
    var rnrEvents: UInt64 { EndpointTestDevice.rnrEvents(context) - rnrEventsAtStart }

    deinit { try? context.close() }
}

/// A client and a server endpoint over a `QueuePairPair`, handshakes exchanged directly.
final class EndpointPair: @unchecked Sendable {
    let queuePairs: QueuePairPair
    let client: MessageEndpoint
    let server: MessageEndpoint
    let clientMetrics = TestMetrics()
    let serverMetrics = TestMetrics()

    init(client clientConfiguration: EndpointConfiguration = EndpointConfiguration(),
         server serverConfiguration: EndpointConfiguration? = nil, mode: MessageEndpoint.DrivingMode = .async,
         timeout: UInt8 = 16, retryCount: UInt8 = 7) throws {
        let serverConfiguration = serverConfiguration ?? clientConfiguration
        queuePairs = try QueuePairPair(receiveSlots: max(clientConfiguration.receiveSlots, serverConfiguration.receiveSlots),
                                       timeout: timeout, retryCount: retryCount)
        client = try MessageEndpoint(queuePair: queuePairs.pairA, configuration: clientConfiguration, metricsFactory: clientMetrics)
        server = try MessageEndpoint(queuePair: queuePairs.pairB, configuration: serverConfiguration, metricsFactory: serverMetrics)
        let clientHandshake = try EndpointHandshake(serialized: client.localHandshake.serialized)
        let serverHandshake = try EndpointHandshake(serialized: server.localHandshake.serialized)
        try client.start(peer: serverHandshake, mode: mode)
        try server.start(peer: clientHandshake, mode: mode)
    }

    func close() {
        client.close()
        server.close()
    }

    deinit { close() }
}

/// Payload bytes that depend on `seed` and the position, so a misplaced byte shows: 251
/// distinct bytes (a prime period, so no shift by a page or a power of two maps it onto
/// itself), repeated by doubling copies — an 8 MiB payload byte by byte took seconds in a
/// debug build, tens of them in the lab's emulated VM.
func pattern(_ count: Int, seed: Int) -> [UInt8] {
    let period = (0..<min(count, 251)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7) }
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        guard let base = buffer.baseAddress else { initialized = 0; return }
        period.withUnsafeBufferPointer { base.initialize(from: $0.baseAddress!, count: period.count) }
        var filled = period.count
        while filled < count {
            let copied = min(filled, count - filled)
            (base + filled).initialize(from: base, count: copied)
            filled += copied
        }
        initialized = count
    }
}

/// Whether `message` holds exactly `bytes` (one memcmp: an element-wise comparison of
/// 8 MiB is slow in a debug build).
func holds(_ message: borrowing ReceivedMessage, _ bytes: [UInt8]) -> Bool {
    message.count == bytes.count && (bytes.isEmpty || message.withUnsafeBytes { received in
        bytes.withUnsafeBytes { expected in memcmp(received.baseAddress!, expected.baseAddress!, bytes.count) == 0 }
    })
}

/// Serves echo calls until the connection ends: each request's payload comes back.
func serveEcho(_ endpoint: MessageEndpoint) async {
    while true {
        guard let request = try? await endpoint.receive() else { return }
        let id = request.callID, bytes = request.bytes
        request.release()
        do { try await endpoint.respond(to: id, with: bytes) } catch { return }
    }
}

/// `count` calls in flight at once on `client` (8-71 byte payloads, each task preferring
/// `executor`): how many came back intact. Throws the first call's error.
func echoCalls(_ client: MessageEndpoint, count: Int, timeout: Duration, executor: (any TaskExecutor)? = nil) async throws -> Int {
    try await withThrowingTaskGroup(of: Bool.self) { group in
        for index in 0..<count {
            group.addTask(executorPreference: executor) {
                let payload = pattern(8 + index % 64, seed: index)
                let response = try await client.call(payload, timeout: timeout)
                return response.bytes == payload
            }
        }
        var good = 0
        for try await ok in group where ok { good += 1 }
        return good
    }
}

/// `count` one-byte calls in flight at once on `client`, each until it ends: the error of
/// each (nil for one answered). For tests that end the connection under them.
func concurrentCalls(_ client: MessageEndpoint, count: Int) -> Task<[EndpointError?], Never> {
    Task {
        await withTaskGroup(of: EndpointError?.self) { group in
            for index in 0..<count {
                group.addTask {
                    do { _ = try await client.call([UInt8(index & 0xFF)]); return nil } catch { return error as? EndpointError }
                }
            }
            var errors: [EndpointError?] = []
            for await outcome in group { errors.append(outcome) }
            return errors
        }
    }
}
