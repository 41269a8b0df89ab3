import RDMA
import Testing
@testable import RDMAEndpoint

/// Endpoints connected by address through rdma_cm: the handshakes travel in the CM private
/// data. On the soft engine's CM over loopback (two soft devices, 127.0.0.1 and 127.0.0.2),
/// or — when `RDMA_TEST_DEVICE` names one (tools/endpoint-lab) — librdmacm on kernel rxe,
/// both ends on `RDMA_TEST_IPV4`. Real sockets; the waits are bounds, generous for a
/// loaded machine.
@Suite("Message endpoint: connect and listen by address (rdma_cm)", .serialized)
struct ConnectByAddressTests {
    /// The client's and the server's device: two soft contexts on 127.0.0.1 and 127.0.0.2
    /// sharing a free UDP port, or nil for both on verbs (rdma_cm picks the device).
    final class Contexts: @unchecked Sendable {
        let client: Context?
        let server: Context?
        let serverAddress: String

        init() throws {
            if EndpointTestDevice.verbsName != nil {
                client = nil
                server = nil
                serverAddress = try #require(EndpointTestDevice.verbsAddress, "RDMA_TEST_IPV4 names the rxe netdev's address")
                return
            }
            serverAddress = "127.0.0.2"
            for _ in 0..<10 {
                let server = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.2", port: 0))
                if let port = server.softUDPPort, let client = try? Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: port)) {
                    self.client = client
                    self.server = server
                    return
                }
                try server.close()
            }
            throw RDMAError(operation: "test setup", kind: .invalidArgument, hint: "no common free UDP port on 127.0.0.1 and 127.0.0.2")
        }

        func listener(port: UInt16, configuration: EndpointConfiguration = EndpointConfiguration()) throws -> MessageEndpointListener {
            try MessageEndpointListener(address: ConnectionAddress(serverAddress, port: port)!, configuration: configuration,
                                        acceptTimeout: .seconds(60), context: server)
        }

        func connect(port: UInt16, configuration: EndpointConfiguration = EndpointConfiguration()) async throws -> MessageEndpoint {
            try await MessageEndpoint.connect(to: serverAddress, port: port, configuration: configuration, timeout: .seconds(60), context: client)
        }

        /// A context on the device the client (or server) side uses, for raw rdma_cm peers.
        func open(_ identifier: ConnectionIdentifier, server isServer: Bool) throws -> Context {
            if let context = isServer ? server : client { return context }
            return try Context(deviceNamed: identifier.deviceName ?? "")
        }

        deinit {
            try? client?.close()
            try? server?.close()
        }
    }

    /// Echoes calls for the listener's first peer until it leaves; that peer's endpoint.
    static func serveFirstPeer(_ listener: MessageEndpointListener) -> Task<MessageEndpoint?, any Error> {
        Task {
            for try await endpoint in listener {
                await serveEcho(endpoint)
                return endpoint
            }
            return nil
        }
    }

    @Test func connectByAddressThenCallsBothSizes() async throws {
        let contexts = try Contexts()
        let listener = try contexts.listener(port: 7481)
        let served = Self.serveFirstPeer(listener)
        let client = try await contexts.connect(port: 7481)
        #expect(client.connection?.identifier.peerAddress?.description.hasPrefix(contexts.serverAddress) == true)
        // 40 calls: enough to cycle the rendezvous slots many times, few enough for the
        // lab's emulated VM.
        for index in 0..<40 {
            let payload = pattern(index % 2 == 0 ? 1 + index : 65_536 + index, seed: index)   // eager and rendezvous
            let response = try await client.call(payload, timeout: .seconds(60))
            #expect(response.bytes == payload, "call \(index)")
        }
        client.close()
        let server = try #require(try await served.value)
        #expect(server.failure == .peerClosed(reason: MessageEndpoint.normalCloseReason))
        server.close()
        try listener.close()
    }

    @Test func listenerRejectsABadHandshakeAndServesTheNextPeer() async throws {
        let contexts = try Contexts()
        let listener = try contexts.listener(port: 7482)
        let served = Self.serveFirstPeer(listener)
        // A peer speaking another version: refused before anything is created for it.
        var handshake = [UInt8](repeating: 0, count: EndpointHandshake.serializedCount)
        handshake[0] = 0x45; handshake[1] = 0x4D; handshake[2] = 9
        var opened: Context?
        do {
            _ = try await Connection.connect(to: contexts.serverAddress, port: 7482, timeout: .seconds(60),
                                             parameters: ConnectionParameters(privateData: handshake), context: contexts.client) {
                let context = try contexts.open($0, server: false)
                opened = context
                let domain = try ProtectionDomain(context: context)
                let queue = try CompletionQueue(context: context, minimumEntries: 8)
                return try $0.createQueuePair(protectionDomain: domain, sendCompletionQueue: queue, receiveCompletionQueue: queue)
            }
            Issue.record("a bad handshake was accepted")
        } catch let error as RDMAError {
            #expect(error.kind == .rejected(.consumerDefined), "\(error)")
            #expect(error.hint?.contains("handshake.version") == true, "the REJ names the field: \(error)")
        }
        if contexts.client == nil { try opened?.close() }
        // The listener goes on: a good peer is served.
        let client = try await contexts.connect(port: 7482)
        let response = try await client.call([1, 2, 3], timeout: .seconds(60))
        #expect(response.bytes == [1, 2, 3])
        response.release()
        client.close()
        try #require(try await served.value).close()
        try listener.close()
    }

    @Test func connectRefusesAListenersBadHandshake() async throws {
        let contexts = try Contexts()
        let listener = try ConnectionListener(address: ConnectionAddress(contexts.serverAddress, port: 7483)!, context: contexts.server)
        let accepted = Task { () -> (Connection, Context)? in
            for try await request in listener {
                let context = try contexts.open(request.identifier, server: true)
                let domain = try ProtectionDomain(context: context)
                let queue = try CompletionQueue(context: context, minimumEntries: 8)
                let queuePair = try request.identifier.createQueuePair(protectionDomain: domain, sendCompletionQueue: queue,
                                                                       receiveCompletionQueue: queue)
                // Not an endpoint handshake: no magic.
                return (try await request.accept(queuePair: queuePair, parameters: ConnectionParameters(privateData: Array("hello".utf8)),
                                                 timeout: .seconds(60)), context)
            }
            return nil
        }
        await #expect(throws: EndpointError.invalidConfiguration(field: "handshake.magic", detail: "not an endpoint handshake")) {
            _ = try await contexts.connect(port: 7483)
        }
        let (connection, context) = try #require(try await accepted.value)
        _ = try await connection.waitForDisconnection(timeout: .seconds(60))
        try connection.close()
        if contexts.server == nil { try context.close() }
        try listener.close()
    }

    @Test func peerDisconnectFailsEveryWaiterWithTheReason() async throws {
        let contexts = try Contexts()
        let listener = try contexts.listener(port: 7484)
        async let accepted = listener.nextEndpoint(timeout: .seconds(60))
        let client = try await contexts.connect(port: 7484)
        let server = try await accepted
        let outcomes = concurrentCalls(client, count: 200)
        let first = try await server.receive()
        first.release()
        // The server's connection ends without the endpoint's goodbye (as when its
        // process dies and the kernel disconnects): only the CM tells the client.
        try #require(server.connection).identifier.disconnect()
        let errors = await outcomes.value
        #expect(errors.count == 200)
        #expect(errors.allSatisfy {
            if case .disconnected(let reason) = $0 { return reason.hint?.contains("disconnected") == true }
            return false
        }, "\(errors.prefix(3))")
        if case .disconnected = client.failure {} else { Issue.record("client failure: \(String(describing: client.failure))") }
        client.close()
        server.close()
        try listener.close()
    }
}
