import Foundation
import Testing
@testable import RDMA

/// The device the device tests run against — one contract, two backends:
/// - verbs, when the environment names a device: `RDMA_TEST_DEVICE` (e.g. rxe0), optional
///   `RDMA_TEST_PORT` (default 1) and `RDMA_TEST_GID_INDEX` (default: the IPv4-mapped
///   RoCEv2 entry). tools/rxe-lab sets them inside the kernel-rxe VM;
/// - otherwise the soft backend (SoftRoCE), on 127.0.0.1 with a kernel-chosen UDP port per
///   context, so that every `swift test` runs the contract on any machine.
enum DeviceUnderTest {
    static let environment = ProcessInfo.processInfo.environment
    static let verbsName: String? = environment["RDMA_TEST_DEVICE"].flatMap { $0.isEmpty ? nil : $0 }
    /// The soft device's name when the soft backend is under test.
    static let softName = "soft0"
    static let isSoft = verbsName == nil
    static let name: String? = verbsName ?? softName
    static let port: UInt8 = environment["RDMA_TEST_PORT"].flatMap { UInt8($0) } ?? 1
    static let configuredGIDIndex: Int? = environment["RDMA_TEST_GID_INDEX"].flatMap { Int($0) }
    static let isPresent = name != nil
    static let skipReason: Comment = "no RDMA device: set RDMA_TEST_DEVICE (tools/rxe-lab does, inside the kernel-rxe VM)"
    /// Bounded waits: TCG-emulated VMs are slow, but nothing may hang.
    static let completionTimeout = Duration.seconds(20)

    static func open() throws -> Context {
        if let verbsName { return try Context(deviceNamed: verbsName) }
        return try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0, name: softName))
    }

    /// The configured index names a GID of the verbs device under test; a soft context
    /// opened beside it (SoftBackendTests) has its own table.
    static func gidIndex(_ context: Context) throws -> Int {
        if let configuredGIDIndex, context.backend == .verbs { return configuredGIDIndex }
        return try context.preferredRoCEv2GID(port: port).index
    }
}

/// Two queue pairs of one kind on one device, connected to each other, each with its own
/// completion queue and a 64 KiB region open to the peer.
final class ConnectedPair {
    let context: Context
    let domain: ProtectionDomain
    let queueA: CompletionQueue
    let queueB: CompletionQueue
    let pairA: QueuePair
    let pairB: QueuePair
    let regionA: MemoryRegion
    let regionB: MemoryRegion
    let gidIndex: Int
    let endpointA: Endpoint
    let endpointB: Endpoint
    private let ownsContext: Bool

    init(kind: QueuePairKind = .reliableConnected, channelForB: CompletionChannel? = nil,
         sharedReceiveQueueForB: ((ProtectionDomain) throws -> SharedReceiveQueue)? = nil,
         context existing: Context? = nil, configure: (inout ConnectionOptions) -> Void = { _ in }) throws {
        context = try existing ?? DeviceUnderTest.open()
        ownsContext = existing == nil
        domain = try ProtectionDomain(context: context)
        queueA = try CompletionQueue(context: context, minimumEntries: 64)
        queueB = try CompletionQueue(context: context, minimumEntries: 64, channel: channelForB)
        let srq = try sharedReceiveQueueForB?(domain)
        let capabilities = QueuePairCapabilities(maxSendWorkRequests: 32, maxReceiveWorkRequests: 32,
                                                 maxSendScatterGather: 2, maxReceiveScatterGather: 2, maxInlineData: 64)
        pairA = try QueuePair(protectionDomain: domain, kind: kind, sendCompletionQueue: queueA,
                              receiveCompletionQueue: queueA, capabilities: capabilities)
        pairB = try QueuePair(protectionDomain: domain, kind: kind, sendCompletionQueue: queueB,
                              receiveCompletionQueue: queueB, capabilities: capabilities, sharedReceiveQueue: srq)
        regionA = try MemoryRegion(protectionDomain: domain, length: 65536, access: .allRemote)
        regionB = try MemoryRegion(protectionDomain: domain, length: 65536, access: .allRemote)
        gidIndex = try DeviceUnderTest.gidIndex(context)
        endpointA = try pairA.localEndpoint(port: DeviceUnderTest.port, gidIndex: gidIndex, psn: 0x00_0100)
        endpointB = try pairB.localEndpoint(port: DeviceUnderTest.port, gidIndex: gidIndex, psn: 0xFF_FFF0) // wraps soon
        var options = ConnectionOptions(port: DeviceUnderTest.port, gidIndex: UInt8(gidIndex))
        options.timeout = 12
        configure(&options)
        try pairA.connect(to: endpointB, local: endpointA, options: options)
        try pairB.connect(to: endpointA, local: endpointB, options: options)
    }

    /// The tests drop their pair at the end; closing here keeps the debug-build leak check
    /// (LeakCheck) for what a test itself leaves open.
    deinit {
        if ownsContext {
            try? context.close()
        } else {
            for queue in [queueA, queueB] { try? queue.close() }
            try? domain.close()
        }
    }

    /// Exactly `count` completions from `queue` within the device timeout.
    func completions(_ queue: CompletionQueue, count: Int = 1) throws -> [WorkCompletion] {
        let results = try queue.waitForCompletions(count: count, timeout: DeviceUnderTest.completionTimeout)
        try #require(results.count == count, "expected \(count) completions within \(DeviceUnderTest.completionTimeout), got \(results)")
        return results
    }
}

extension MemoryRegion {
    func write(_ text: String, at offset: Int = 0) {
        let bytes = Array(text.utf8)
        UnsafeMutableRawBufferPointer(rebasing: self.bytes[offset..<(offset + bytes.count)]).copyBytes(from: bytes)
    }

    func read(_ count: Int, at offset: Int = 0) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]), as: UTF8.self)
    }
}
