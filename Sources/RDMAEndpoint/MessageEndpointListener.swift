import Logging
import Metrics
import RDMA

/// Listens on an address and port and yields a started `MessageEndpoint` for each peer
/// that connects with `MessageEndpoint.connect(to:port:)`. The endpoint handshakes travel
/// in the rdma_cm private data: the peer's in its request (checked before anything is
/// created for it), ours in the accept.
///
/// ```swift
/// let listener = try MessageEndpointListener(address: .any(port: 7471))
/// for try await endpoint in listener {
///     Task {
///         while let request = try? await endpoint.receive() {
///             let id = request.callID, reply = request.bytes
///             request.release()
///             try await endpoint.respond(to: id, with: reply)
///         }
///         endpoint.close()
///     }
/// }
/// ```
/// A request whose handshake fails the checks is rejected — the peer's `connect` throws
/// `.rejected`, the field named in the hint — and the sequence goes on; so does it after
/// a peer that went away during its accept. Each endpoint owns its connection and the
/// objects created for it; close each one, and the listener, when done.
public final class MessageEndpointListener: AsyncSequence, @unchecked Sendable {
    public typealias Element = MessageEndpoint

    public let listener: ConnectionListener
    public let configuration: EndpointConfiguration
    let mode: MessageEndpoint.DrivingMode
    let context: Context?
    let acceptTimeout: Duration
    let logger: Logger
    let metricsFactory: (any MetricsFactory)?

    /// Binds to `address` (`.any(port:)` for every device) and listens. Endpoints use
    /// `configuration` and start in `mode`; `context` chooses the device (a soft one with
    /// `Context(soft:)`, shared by every endpoint and kept open for the caller), nil the
    /// verbs device each request arrives on.
    /// The corresponding C functions are `rdma_bind_addr` and `rdma_listen`.
    public init(address: ConnectionAddress, configuration: EndpointConfiguration = EndpointConfiguration(),
                mode: MessageEndpoint.DrivingMode = .async, backlog: Int = 64, acceptTimeout: Duration = .seconds(10),
                context: Context? = nil, logger: Logger? = nil, metricsFactory: (any MetricsFactory)? = nil) throws {
        try configuration.validate()
        listener = try ConnectionListener(address: address, backlog: backlog, context: context)
        self.configuration = configuration
        self.mode = mode
        self.context = context
        self.acceptTimeout = acceptTimeout
        self.logger = logger ?? Logger(label: configuration.label)
        self.metricsFactory = metricsFactory
    }

    /// The bound address (with the port the kernel chose for port 0).
    public var localAddress: ConnectionAddress? { listener.localAddress }

    /// The next peer's started endpoint, waiting at most `timeout` (nil: until one comes,
    /// the listener is closed or the task is cancelled). Requests refused or failed on the
    /// way are logged and skipped.
    public func nextEndpoint(timeout: Duration? = nil) async throws -> MessageEndpoint {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            let remaining = deadline.map { Swift.max(.nanoseconds(1), $0 - ContinuousClock.now) }
            let request = try await listener.nextRequest(timeout: remaining)
            if let endpoint = await accept(request) { return endpoint }
        }
    }

    /// Checks the peer's handshake, creates the endpoint on the request's identifier (its
    /// receives posted), accepts with our handshake and starts. Nil when refused or failed.
    func accept(_ request: ConnectionRequest) async -> MessageEndpoint? {
        let peerName = request.peerAddress.map(String.init(describing:)) ?? "a peer"
        let peer: EndpointHandshake
        do {
            peer = try EndpointHandshake(serialized: request.privateData)
        } catch {
            logger.warning("rejecting \(peerName): \(error)")
            try? request.reject(privateData: error.rejectionPrivateData)
            return nil
        }
        var objects: EndpointObjects?, endpoint: MessageEndpoint?
        do {
            let created = try EndpointObjects(identifier: request.identifier, context: context, configuration: configuration)
            objects = created
            let started = try MessageEndpoint(queuePair: created.queuePair, configuration: configuration, logger: logger,
                                              metricsFactory: metricsFactory)
            endpoint = started
            let connection = try await request.accept(queuePair: created.queuePair,
                                                      parameters: ConnectionParameters(privateData: started.localHandshake.serialized),
                                                      timeout: acceptTimeout)
            started.adopt(connection, objects: created)
            try started.start(peer: peer, mode: mode)
            return started
        } catch {
            logger.warning("accepting \(peerName) failed: \(error)")
            endpoint?.close()
            objects?.close()
            request.close()
            return nil
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let listener: MessageEndpointListener
        /// The next peer's endpoint; nil once the listener is closed.
        public mutating func next() async throws -> MessageEndpoint? {
            do { return try await listener.nextEndpoint() } catch let error as RDMAError where error.kind == .closed { return nil }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(listener: self) }

    /// Stops listening (requests not taken are rejected); endpoints already yielded stay.
    /// Idempotent. The corresponding C function is `rdma_destroy_id`.
    public func close() throws(RDMAError) { try listener.close() }
}

extension EndpointError {
    /// What a listener's REJ carries back: the field first (the peer's error shows the
    /// first 64 bytes), within the REJ's 148 bytes of private data.
    var rejectionPrivateData: [UInt8] {
        let text: String
        if case .invalidConfiguration(let field, let detail) = self {
            text = "endpoint handshake refused: \(field): \(detail)"
        } else {
            text = "endpoint handshake refused: \(self)"
        }
        return Array(text.utf8.prefix(PrivateDataLimit.reject))
    }
}
