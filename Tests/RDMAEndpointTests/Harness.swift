import MetricsTestKit
import RDMA
import Testing
@testable import RDMAEndpoint

/// Two RC queue pairs on one soft device (127.0.0.1, a kernel-chosen UDP port), connected
/// to each other the way the RDMA tests' `ConnectedPair` does, each with its own CQ. The ACK
/// timeout (16: 0.27 s × 7 retries) outlasts a thread descheduled on a loaded CI machine.
final class QueuePairPair: @unchecked Sendable {
    let context: Context
    let domain: ProtectionDomain
    let pairA: QueuePair
    let pairB: QueuePair

    init(receiveSlots: Int = 256, sendDepth: UInt32 = 512, timeout: UInt8 = 16, retryCount: UInt8 = 7) throws {
        context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
        domain = try ProtectionDomain(context: context)
        let capabilities = QueuePairCapabilities(maxSendWorkRequests: sendDepth, maxReceiveWorkRequests: UInt32(receiveSlots),
                                                 maxSendScatterGather: 1, maxReceiveScatterGather: 1, maxInlineData: 0)
        let entries = Int(sendDepth) + receiveSlots
        let queueA = try CompletionQueue(context: context, minimumEntries: entries)
        let queueB = try CompletionQueue(context: context, minimumEntries: entries)
        pairA = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queueA,
                              receiveCompletionQueue: queueA, capabilities: capabilities)
        pairB = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queueB,
                              receiveCompletionQueue: queueB, capabilities: capabilities)
        let gidIndex = try context.preferredRoCEv2GID().index
        let endpointA = try pairA.localEndpoint(gidIndex: gidIndex, psn: 0x100)
        let endpointB = try pairB.localEndpoint(gidIndex: gidIndex, psn: 0xFF_FFF0)
        let options = ConnectionOptions(gidIndex: UInt8(gidIndex), timeout: timeout, retryCount: retryCount)
        try pairA.connect(to: endpointB, local: endpointA, options: options)
        try pairB.connect(to: endpointA, local: endpointB, options: options)
    }

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

/// Payload bytes that depend on `seed` and the position, so a misplaced byte shows.
func pattern(_ count: Int, seed: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7 &+ ($0 >> 8)) }
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
