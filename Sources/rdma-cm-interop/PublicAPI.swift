// The same exchange as --messages-client/--messages-server, written against the public
// RDMA API (`Connection.connect`, `ConnectionListener`) on a soft Context: what a user of
// the package writes, its rdma_cm calls answered by the engine's IB CM. rdma_server and
// rdma_client (rdma-core's examples) are the peers: 16 bytes each way, then disconnect.
#if canImport(Glibc)
import Glibc
#endif
import RDMA

/// One side's verbs objects on the soft context: a CQ, a registered buffer (first half
/// receives, second half sends) and, once made by the identifier, the QP.
final class PublicEndpoint: @unchecked Sendable {
    let context: Context
    let protectionDomain: ProtectionDomain
    let completionQueue: CompletionQueue
    let region: MemoryRegion
    var queuePair: QueuePair?

    init(context: Context) throws {
        self.context = context
        protectionDomain = try ProtectionDomain(context: context)
        completionQueue = try CompletionQueue(context: context, minimumEntries: 16)
        region = try MemoryRegion(protectionDomain: protectionDomain, length: 8192, access: [.localWrite])
    }

    func makeQueuePair(_ identifier: ConnectionIdentifier) throws -> QueuePair {
        let queuePair = try identifier.createQueuePair(protectionDomain: protectionDomain, sendCompletionQueue: completionQueue,
                                                       receiveCompletionQueue: completionQueue)
        try queuePair.postReceive(id: 1, scatterGather: region.scatterGather(offset: 0, length: 4096))
        self.queuePair = queuePair
        return queuePair
    }

    /// Closes the QP (if the connection has not), the buffer, the CQ and the PD. Idempotent.
    func close() {
        try? queuePair?.close()
        try? region.close()
        try? completionQueue.close()
        try? protectionDomain.close()
    }

    func send(_ bytes: [UInt8]) throws {
        UnsafeMutableRawBufferPointer(rebasing: region.bytes[4096...]).copyBytes(from: bytes)
        try queuePair?.post(SendWorkRequest(id: 2), scatterGather: region.scatterGather(offset: 4096, length: bytes.count))
    }

    /// The next completion of `opcode`, polled (the engine's background progress runs while a
    /// channel is open), bounded by `seconds`; a failed one throws.
    func completion(_ opcode: WorkCompletion.Opcode, seconds: Double = 30) async throws -> WorkCompletion {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if let completion = try completionQueue.pollOne() {
                guard completion.status == .success else { throw Failure(description: "work completion \(completion.status)") }
                if completion.opcode == opcode { return completion }
                continue
            }
            try await Task.sleep(for: .microseconds(200))
        }
        throw Failure(description: "no \(opcode) completion within \(seconds) s")
    }
}

func softContext(_ arguments: Arguments) throws -> Context {
    var configuration = SoftDeviceConfiguration(address: arguments.address, port: arguments.udpPort)
    if let path = arguments.capture { configuration.capture = PacketCapture(path: path) }
    return try Context(soft: configuration)
}

func publicAPIClient(_ arguments: Arguments, host: String, port: UInt16) async throws {
    let context = try softContext(arguments)
    defer { try? context.close() }
    let endpoint = try PublicEndpoint(context: context)
    defer { endpoint.close() }
    let connection = try await Connection.connect(to: host, port: port, timeout: .seconds(30), context: context,
                                                  queuePair: endpoint.makeQueuePair)
    print("PASS engine (public API) → \(host):\(port): Connection.connect returned, established")
    let message = [UInt8](repeating: 0x61, count: arguments.size)
    try endpoint.send(message)
    _ = try await endpoint.completion(.send)
    let answer = try await endpoint.completion(.receive)
    print("PASS engine (public API) → \(host):\(port): sent \(message.count) B, received \(answer.byteLength) B")
    try? await connection.disconnect()
    try connection.close()
    print("PASS engine (public API) → \(host):\(port): disconnected")
}

func publicAPIServer(_ arguments: Arguments, port: UInt16) async throws {
    let context = try softContext(arguments)
    defer { try? context.close() }
    guard let address = ConnectionAddress(arguments.address, port: port) else { throw Failure(description: "bad address \(arguments.address)") }
    let listener = try ConnectionListener(address: address, context: context)
    defer { try? listener.close() }
    let endpoint = try PublicEndpoint(context: context)
    defer { endpoint.close() }
    let request = try await listener.nextRequest(timeout: .milliseconds(Int(arguments.seconds * 1000)))
    let peer = request.peerAddress.map { "\($0)" } ?? "?"
    let connection = try await request.accept(queuePair: try endpoint.makeQueuePair(request.identifier), timeout: .seconds(30))
    print("PASS \(peer) → engine (public API): ConnectionListener request accepted, established")
    let received = try await endpoint.completion(.receive)
    try endpoint.send(Array(endpoint.region.bytes[0..<Int(received.byteLength)]))
    _ = try await endpoint.completion(.send)
    print("PASS \(peer) → engine (public API): received \(received.byteLength) B, echoed them")
    let reason = try await connection.waitForDisconnection(timeout: .seconds(30))
    try connection.close()
    print("PASS \(peer) → engine (public API): disconnected (\(reason.hint ?? "\(reason)"))")
}
