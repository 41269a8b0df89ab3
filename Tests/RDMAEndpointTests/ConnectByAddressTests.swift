import RDMA
import Testing
@testable import RDMAEndpoint

/// Endpoints connected by address through the soft engine's rdma_cm on loopback (two soft
/// devices, 127.0.0.1 and 127.0.0.2): the handshakes travel in the CM private data.
/// Real sockets; the waits are bounds, generous for a loaded machine.
@Suite("Message endpoint: connect and listen by address (soft rdma_cm)", .serialized)
struct ConnectByAddressTests {
    /// Two soft contexts on 127.0.0.1 (client) and 127.0.0.2 (server) sharing a free UDP port.
    final class Contexts: @unchecked Sendable {
        let client: Context
        let server: Context

        init() throws {
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
            try MessageEndpointListener(address: ConnectionAddress("127.0.0.2", port: port)!, configuration: configuration,
                                        acceptTimeout: .seconds(60), context: server)
        }

        func connect(port: UInt16, configuration: EndpointConfiguration = EndpointConfiguration()) async throws -> MessageEndpoint {
            try await MessageEndpoint.connect(to: "127.0.0.2", port: port, configuration: configuration, timeout: .seconds(60), context: client)
        }

        deinit {
            try? client.close()
            try? server.close()
        }
    }

    @Test func connectByAddressThenCallsBothSizes() async throws {
        let contexts = try Contexts()
        let listener = try contexts.listener(port: 7481)
        let served = Task { () -> MessageEndpoint? in
            for try await endpoint in listener {
                await serveEcho(endpoint)
                return endpoint
            }
            return nil
        }
        let client = try await contexts.connect(port: 7481)
        #expect(client.connection?.identifier.peerAddress?.description.hasPrefix("127.0.0.2") == true)
        for index in 0..<200 {
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
        let served = Task { () -> MessageEndpoint? in
            for try await endpoint in listener {
                await serveEcho(endpoint)
                return endpoint
            }
            return nil
        }
        // A peer speaking another version: refused before anything is created for it.
        var handshake = [UInt8](repeating: 0, count: EndpointHandshake.serializedCount)
        handshake[0] = 0x45; handshake[1] = 0x4D; handshake[2] = 9
        let domain = try ProtectionDomain(context: contexts.client)
        let queue = try CompletionQueue(context: contexts.client, minimumEntries: 8)
        do {
            _ = try await Connection.connect(to: "127.0.0.2", port: 7482, timeout: .seconds(60),
                                             parameters: ConnectionParameters(privateData: handshake), context: contexts.client) {
                try $0.createQueuePair(protectionDomain: domain, sendCompletionQueue: queue, receiveCompletionQueue: queue)
            }
            Issue.record("a bad handshake was accepted")
        } catch let error as RDMAError {
            #expect(error.kind == .rejected(.consumerDefined), "\(error)")
            #expect(error.hint?.contains("handshake.version") == true, "the REJ names the field: \(error)")
        }
        try queue.close()
        try domain.close()
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
        let listener = try ConnectionListener(address: ConnectionAddress("127.0.0.2", port: 7483)!, context: contexts.server)
        let domain = try ProtectionDomain(context: contexts.server)
        let queue = try CompletionQueue(context: contexts.server, minimumEntries: 8)
        let accepted = Task { () -> Connection? in
            for try await request in listener {
                let queuePair = try request.identifier.createQueuePair(protectionDomain: domain, sendCompletionQueue: queue,
                                                                       receiveCompletionQueue: queue)
                // Not an endpoint handshake: no magic.
                return try await request.accept(queuePair: queuePair, parameters: ConnectionParameters(privateData: Array("hello".utf8)),
                                                timeout: .seconds(60))
            }
            return nil
        }
        await #expect(throws: EndpointError.invalidConfiguration(field: "handshake.magic", detail: "not an endpoint handshake")) {
            _ = try await contexts.connect(port: 7483)
        }
        let connection = try #require(try await accepted.value)
        _ = try await connection.waitForDisconnection(timeout: .seconds(60))
        try connection.close()
        try queue.close()
        try domain.close()
        try listener.close()
    }

    @Test func peerDisconnectFailsEveryWaiterWithTheReason() async throws {
        let contexts = try Contexts()
        let listener = try contexts.listener(port: 7484)
        async let accepted = listener.nextEndpoint(timeout: .seconds(60))
        let client = try await contexts.connect(port: 7484)
        let server = try await accepted
        let outcomes = Task {
            await withTaskGroup(of: EndpointError?.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        do { _ = try await client.call([UInt8(index & 0xFF)]); return nil } catch { return error as? EndpointError }
                    }
                }
                var errors: [EndpointError?] = []
                for await outcome in group { errors.append(outcome) }
                return errors
            }
        }
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
