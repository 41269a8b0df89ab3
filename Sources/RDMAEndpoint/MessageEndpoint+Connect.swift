#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import Metrics
import RDMA

// Connecting by address: the endpoint handshake travels in the rdma_cm private data (the
// request's 56 bytes one way, the accept's 196 the other), so no other channel is needed.
// The endpoint's pools are registered inside `Connection.connect`'s `offer` closure, once
// the queue pair exists and before the request leaves: the handshake names their rkeys.
extension MessageEndpoint {
    /// Connects to a `MessageEndpointListener` at `host`:`port`, exchanging the endpoint
    /// handshakes in the connection request and its accept, and starts the endpoint in
    /// `mode`. The endpoint owns everything it created (context, protection domain,
    /// completion queue, queue pair, rdma_cm identifier); `close()` disconnects and closes
    /// them. `context` chooses the device (a soft one with `Context(soft:)`, kept open for
    /// the caller); nil opens the verbs device rdma_cm resolved the address to.
    ///
    /// ```swift
    /// let endpoint = try await MessageEndpoint.connect(to: "10.0.0.2", port: 7471)
    /// let response = try await endpoint.call(Array("ping".utf8), timeout: .seconds(1))
    /// endpoint.close()
    /// ```
    /// A listener that refuses our handshake rejects the request (`RDMAError.rejected`,
    /// its reason in the hint); a peer whose handshake fails our checks is disconnected
    /// and the error names the field.
    /// The corresponding C functions are `rdma_resolve_addr`, `rdma_resolve_route`,
    /// `rdma_create_qp` and `rdma_connect`.
    public static func connect(to host: String, port: UInt16, configuration: EndpointConfiguration = EndpointConfiguration(),
                               mode: DrivingMode = .async, timeout: Duration = .seconds(10), context: Context? = nil,
                               logger: Logger? = nil, metricsFactory: (any MetricsFactory)? = nil) async throws -> MessageEndpoint {
        try configuration.validate()
        var created: (endpoint: MessageEndpoint, objects: EndpointObjects)?
        let connection: Connection
        do {
            connection = try await Connection.connect(to: host, port: port, timeout: timeout, context: context) { identifier in
                let objects = try EndpointObjects(identifier: identifier, context: context, configuration: configuration)
                do {
                    let endpoint = try MessageEndpoint(queuePair: objects.queuePair, configuration: configuration,
                                                       logger: logger, metricsFactory: metricsFactory)
                    created = (endpoint, objects)
                    return (objects.queuePair, ConnectionParameters(privateData: endpoint.localHandshake.serialized))
                } catch {
                    objects.close()
                    throw error
                }
            }
        } catch {
            created?.endpoint.close()
            created?.objects.close()
            throw error
        }
        let endpoint = created!.endpoint
        endpoint.adopt(connection, objects: created!.objects)
        do {
            try endpoint.start(peer: EndpointHandshake(serialized: connection.peerPrivateData), mode: mode)
        } catch {
            endpoint.logger.error("refusing the peer's endpoint handshake: \(error)")
            endpoint.close(reason: protocolViolationCloseReason)
            throw error
        }
        return endpoint
    }

    /// The peer's address and port when connected by address (`connect(to:port:)`, a
    /// `MessageEndpointListener`); nil otherwise.
    public var peerAddress: ConnectionAddress? { lock.locked { connection?.identifier.peerAddress } }

    /// Takes ownership of the connection that connected the queue pair and of the objects
    /// created for it: `close()` ends them after the queue pair.
    func adopt(_ connection: Connection, objects: EndpointObjects) {
        lock.locked {
            self.connection = connection
            self.connectionObjects = objects
        }
    }

    /// After `close()` closed the queue pair: disconnects (the peer's queue pair moves to
    /// ERROR at once, failing its waiters with `.disconnected`), then closes the rdma_cm
    /// identifier and what was created for the connection.
    /// The corresponding C functions are `rdma_disconnect` and `rdma_destroy_id`.
    func closeConnection() {
        let (connection, objects) = lock.locked {
            defer { self.connection = nil; connectionObjects = nil }
            return (self.connection, connectionObjects)
        }
        if let connection {
            try? connection.identifier.disconnect()
            try? connection.close()
        }
        objects?.close()
    }

    /// A failed work request after the connection manager reported the end of the
    /// connection is that end (the peer disconnected, its process died, the device went
    /// away): the waiters learn the reason rather than a flush status.
    ///
    /// A flush as the first failure means the queue pair was moved to ERROR — by the
    /// connection manager, whose event may still be on its way to the connection's
    /// watcher: it is waited for, at most 100 ms, once per connection.
    func explainFailureLocked(_ error: EndpointError) -> EndpointError {
        guard case .completionFailed(_, let status) = error else { return error }
        let closeReason = ControlBlock.read(memory.controlIn.base).closeReason
        if closeReason != 0 { return .peerClosed(reason: closeReason) }
        guard let connection else { return error }
        if status == .flushed {
            let deadline = monotonicNanoseconds() + 100_000_000
            while connection.disconnection == nil && monotonicNanoseconds() < deadline { usleep(100) }
        }
        return connection.disconnection.map { .disconnected($0) } ?? error
    }
}

/// The verbs objects an endpoint connected by address creates: a protection domain, one
/// completion queue sized for every send and receive with a completion channel (the async
/// driver parks on it when idle), and the RC queue pair on the rdma_cm identifier (in
/// INIT, so the endpoint posts its receives before the request leaves). The context too,
/// when none was given.
struct EndpointObjects: @unchecked Sendable {
    let context: Context
    let ownsContext: Bool
    let protectionDomain: ProtectionDomain
    let completionChannel: CompletionChannel
    let completionQueue: CompletionQueue
    let queuePair: QueuePair

    /// Inline data asked for: a header and 96 payload bytes (perftest's latency tests ask 220).
    static let inlineData: UInt32 = 128

    init(identifier: ConnectionIdentifier, context given: Context?, configuration: EndpointConfiguration) throws {
        let context: Context
        if let given {
            context = given
        } else {
            guard let name = identifier.deviceName else {
                throw EndpointError.invalidConfiguration(field: "device", detail: "rdma_cm resolved the address to no RDMA device")
            }
            context = try Context(deviceNamed: name)
        }
        var domain: ProtectionDomain?, channel: CompletionChannel?, queue: CompletionQueue?
        do {
            domain = try ProtectionDomain(context: context)
            channel = try CompletionChannel(context: context)
            let sends = configuration.sendSlots + configuration.rendezvousSlots + EndpointMemory.controlWritesInFlight + 4
            queue = try CompletionQueue(context: context, minimumEntries: sends + configuration.receiveSlots, channel: channel)
            // Small messages go inline (no buffer lookup by the device, the buffer free at
            // once), as rdma-pingpong's do; a device that allows less inline data gets none.
            var capabilities = QueuePairCapabilities(maxSendWorkRequests: UInt32(sends), maxReceiveWorkRequests: UInt32(configuration.receiveSlots),
                                                     maxInlineData: EndpointObjects.inlineData)
            do {
                queuePair = try identifier.createQueuePair(protectionDomain: domain!, sendCompletionQueue: queue!,
                                                           receiveCompletionQueue: queue!, capabilities: capabilities)
            } catch {
                capabilities.maxInlineData = 0
                queuePair = try identifier.createQueuePair(protectionDomain: domain!, sendCompletionQueue: queue!,
                                                           receiveCompletionQueue: queue!, capabilities: capabilities)
            }
        } catch {
            if given == nil {
                try? context.close()
            } else {
                try? queue?.close()
                try? channel?.close()
                try? domain?.close()
            }
            throw error
        }
        self.context = context
        ownsContext = given == nil
        protectionDomain = domain!
        completionChannel = channel!
        completionQueue = queue!
    }

    /// Closes what was created here (the queue pair is closed by then). Idempotent.
    func close() {
        try? queuePair.close()
        if ownsContext {
            try? context.close()
        } else {
            try? completionQueue.close()
            try? completionChannel.close()
            try? protectionDomain.close()
        }
    }
}
