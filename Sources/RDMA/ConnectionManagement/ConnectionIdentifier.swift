import Synchronization

/// An rdma_cm identifier: the connection-manager side of one endpoint, like a socket.
/// Active: resolve the address and route, create the queue pair, connect. Passive: bind,
/// listen; each connect request brings a new identifier to accept or reject.
///
/// ```swift
/// let channel = try ConnectionEventChannel()
/// let client = try ConnectionIdentifier(channel: channel)
/// try client.resolveAddress(to: try ConnectionAddress(host: "10.0.0.2", port: 7471))
/// // … wait for .addressResolved, then:
/// try client.resolveRoute()
/// // … wait for .routeResolved, then open a Context on client.deviceName and:
/// let queuePair = try client.createQueuePair(protectionDomain: pd, sendCompletionQueue: cq, receiveCompletionQueue: cq)
/// try client.connect(ConnectionParameters(privateData: Array("hi".utf8)))
/// // … wait for .established: queuePair is in RTS
/// ```
/// The identifier keeps its channel alive, and the queue pair it creates keeps the
/// identifier alive; `close()` closes that queue pair first and is idempotent.
public final class ConnectionIdentifier: ClosableResource, @unchecked Sendable {
    /// The backend's identifier: a `let`, so that a call through it needs no retain;
    /// it outlives `close()`, and every use checks `isClosed` first.
    private let operations: any ConnectionIdentifierOperations
    /// True after `close()` — set once the destroy call succeeded.
    public private(set) var isClosed = false
    public let portSpace: ConnectionPortSpace
    private let currentChannel: Mutex<ConnectionEventChannel>
    private let attached = Mutex<Weak?>(nil)
    /// True when `createQueuePair` made the queue pair: `close()` closes it then.
    private let ownsQueuePair = Mutex(false)
    let children = ChildRegistry()

    private struct Weak: @unchecked Sendable { weak var queuePair: QueuePair? }

    /// Creates an identifier whose events arrive on `channel`.
    /// The corresponding C function is `rdma_create_id`.
    public init(channel: ConnectionEventChannel, portSpace: ConnectionPortSpace = .tcp) throws(RDMAError) {
        operations = try channel.operations("rdma_create_id").createIdentifier(portSpace: portSpace)
        self.portSpace = portSpace
        currentChannel = Mutex(channel)
        operations.owner = self
        channel.children.add(self)
    }

    /// Wraps the identifier a backend made for a connect request.
    init(adopting operations: any ConnectionIdentifierOperations, channel: ConnectionEventChannel, portSpace: ConnectionPortSpace) {
        self.operations = operations
        self.portSpace = portSpace
        currentChannel = Mutex(channel)
        operations.owner = self
        channel.children.add(self)
    }

    /// The channel this identifier's events arrive on (changed by `migrate(to:)`).
    public var channel: ConnectionEventChannel { currentChannel.withLock { $0 } }

    /// The queue pair `createQueuePair` created or `attach` took, while it is open.
    public var queuePair: QueuePair? { attached.withLock { $0?.queuePair } }

    /// The backend's identifier while open.
    var currentOperations: (any ConnectionIdentifierOperations)? { isClosed ? nil : operations }

    /// The backend's identifier, or a `.closed` error naming `operation`.
    private func operations(_ operation: StaticString) throws(RDMAError) -> any ConnectionIdentifierOperations {
        if isClosed { throw RDMAError.closed(operation, "ConnectionIdentifier") }
        return operations
    }

    /// Binds to a local address and port (port 0: the kernel picks one; the wildcard
    /// address: every RDMA device). The corresponding C function is `rdma_bind_addr`.
    public func bind(to address: ConnectionAddress) throws(RDMAError) {
        try operations("rdma_bind_addr").bind(address)
    }

    /// Listens for connect requests (`.connectRequest` events) on the bound address.
    /// `backlog` (1…4096) bounds the requests queued before they are accepted or rejected.
    /// The corresponding C function is `rdma_listen`.
    public func listen(backlog: Int = 64) throws(RDMAError) {
        guard (1...4096).contains(backlog) else {
            throw RDMAError(operation: "rdma_listen", kind: .invalidArgument, hint: "backlog must be 1…4096; got \(backlog)")
        }
        try operations("rdma_listen").listen(backlog: Int32(backlog))
    }

    /// Starts resolving `destination` to a local device and port: `.addressResolved` or
    /// `.addressError` follows within about `timeoutMilliseconds` (1…60000).
    /// The corresponding C function is `rdma_resolve_addr`.
    public func resolveAddress(to destination: ConnectionAddress, from source: ConnectionAddress? = nil,
                               timeoutMilliseconds: Int32 = 2000) throws(RDMAError) {
        try Self.validate(timeoutMilliseconds: timeoutMilliseconds, "rdma_resolve_addr")
        if destination.bytes.allSatisfy({ $0 == 0 }) {
            throw RDMAError(operation: "rdma_resolve_addr", kind: .invalidArgument, hint: "the destination \(destination) is the wildcard address")
        }
        try operations("rdma_resolve_addr").resolveAddress(source: source, destination: destination, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Starts resolving the route to the resolved address: `.routeResolved` or
    /// `.routeError` follows. The corresponding C function is `rdma_resolve_route`.
    public func resolveRoute(timeoutMilliseconds: Int32 = 2000) throws(RDMAError) {
        try Self.validate(timeoutMilliseconds: timeoutMilliseconds, "rdma_resolve_route")
        try operations("rdma_resolve_route").resolveRoute(timeoutMilliseconds: timeoutMilliseconds)
    }

    private static func validate(timeoutMilliseconds: Int32, _ operation: String) throws(RDMAError) {
        guard (1...60_000).contains(timeoutMilliseconds) else {
            throw RDMAError(operation: operation, kind: .invalidArgument, hint: "timeoutMilliseconds must be 1…60000; got \(timeoutMilliseconds)")
        }
    }

    /// Creates a queue pair whose states the connection manager drives: it is in INIT on
    /// return (post receives now), and moves to RTR/RTS on `accept` or when the connection
    /// is established; to ERROR on `disconnect()` and on `.disconnected`. RC for the TCP
    /// port space, UD for UDP. Needs a resolved address (or the identifier of a connect
    /// request), and `protectionDomain` on the same device (`deviceName`).
    /// The corresponding C function is `rdma_create_qp`.
    public func createQueuePair(protectionDomain: ProtectionDomain, sendCompletionQueue: CompletionQueue,
                                receiveCompletionQueue: CompletionQueue,
                                capabilities: QueuePairCapabilities = QueuePairCapabilities(),
                                sharedReceiveQueue: SharedReceiveQueue? = nil, signalAllSends: Bool = false) throws(RDMAError) -> QueuePair {
        _ = try operations("rdma_create_qp")
        let queuePair = try QueuePair(protectionDomain: protectionDomain, kind: portSpace == .tcp ? .reliableConnected : .unreliableDatagram,
                                      sendCompletionQueue: sendCompletionQueue, receiveCompletionQueue: receiveCompletionQueue,
                                      capabilities: capabilities, sharedReceiveQueue: sharedReceiveQueue, signalAllSends: signalAllSends)
        do throws(RDMAError) {
            try attach(queuePair)
        } catch {
            try? queuePair.close()
            throw error
        }
        ownsQueuePair.withLock { $0 = true }
        return queuePair
    }

    /// Hands an existing queue pair (in RESET, RC for TCP / UD for UDP) to the connection
    /// manager, as `createQueuePair` does with the one it creates. It stays the caller's:
    /// closing the identifier detaches it (and leaves it open; move it to RESET to attach
    /// it to another identifier, e.g. to retry a rejected connect).
    /// The corresponding C function is `rdma_create_qp`.
    public func attach(_ queuePair: QueuePair) throws(RDMAError) {
        let operations = try operations("rdma_create_qp")
        let wanted: QueuePairKind = portSpace == .tcp ? .reliableConnected : .unreliableDatagram
        guard queuePair.kind == wanted else {
            throw RDMAError(operation: "rdma_create_qp", kind: .invalidArgument, hint: "a \(portSpace) identifier needs a \(wanted) queue pair; got \(queuePair.kind)")
        }
        guard self.queuePair == nil else {
            throw RDMAError(operation: "rdma_create_qp", kind: .invalidArgument, hint: "the identifier already has a queue pair")
        }
        guard queuePair.connectionIdentifier == nil else {
            throw RDMAError(operation: "rdma_create_qp", kind: .invalidArgument, hint: "the queue pair belongs to another identifier")
        }
        let state = try queuePair.state()
        guard state == .reset else {
            throw RDMAError(operation: "rdma_create_qp", kind: .invalidArgument, hint: "the queue pair must be in RESET; it is \(state)")
        }
        try operations.attach(queuePair: queuePair)
        attached.withLock { $0 = Weak(queuePair: queuePair) }
        queuePair.connectionIdentifier = self
        children.add(queuePair)
    }

    /// Sends the connect request (after `.routeResolved`): `.established` follows, or
    /// `.rejected` / `.unreachable` / `.connectError`; `.connectResponse` when no queue pair
    /// was attached. The corresponding C function is `rdma_connect`.
    public func connect(_ parameters: ConnectionParameters = ConnectionParameters()) throws(RDMAError) {
        try parameters.validate(privateDataLimit: portSpace.connectPrivateDataLimit, operation: "rdma_connect")
        try operations("rdma_connect").connect(parameters)
    }

    /// Completes an active connection after `.connectResponse`, once the caller has moved
    /// its own queue pair to RTS. The corresponding C function is `rdma_establish`.
    public func establish() throws(RDMAError) {
        try operations("rdma_establish").establish()
    }

    /// Accepts a connect request (on the request's identifier); the queue pair, if one
    /// was created, is in RTS on return and `.established` follows.
    /// The corresponding C function is `rdma_accept`.
    public func accept(_ parameters: ConnectionParameters = ConnectionParameters()) throws(RDMAError) {
        try parameters.validate(privateDataLimit: portSpace.acceptPrivateDataLimit, operation: "rdma_accept")
        try operations("rdma_accept").accept(parameters)
    }

    /// Refuses a connect request; the peer sees `.rejected` with `consumerDefined` and
    /// `privateData`. The corresponding C function is `rdma_reject`.
    public func reject(privateData: [UInt8] = []) throws(RDMAError) {
        try ConnectionParameters.validate(privateData: privateData, limit: PrivateDataLimit.reject, operation: "rdma_reject")
        try operations("rdma_reject").reject(privateData: privateData)
    }

    /// Disconnects: the queue pair moves to ERROR (outstanding work is flushed) and both
    /// sides get `.disconnected`. The corresponding C function is `rdma_disconnect`.
    public func disconnect() throws(RDMAError) {
        try operations("rdma_disconnect").disconnect()
    }

    /// Moves this identifier to `channel`: its later events (and any queued) arrive there.
    /// Do not wait on either channel for this identifier's events meanwhile.
    /// The corresponding C function is `rdma_migrate_id`.
    public func migrate(to channel: ConnectionEventChannel) throws(RDMAError) {
        let operations = try operations("rdma_migrate_id")
        let old = self.channel
        guard channel !== old else { return }
        try operations.migrate(to: try channel.operations("rdma_migrate_id"))
        currentChannel.withLock { $0 = channel }
        channel.children.add(self)
        old.children.remove(self)
    }

    /// The bound or resolved local address. The corresponding C function is `rdma_get_local_addr`.
    public var localAddress: ConnectionAddress? { isClosed ? nil : operations.localAddress }
    /// The peer's address. The corresponding C function is `rdma_get_peer_addr`.
    public var peerAddress: ConnectionAddress? { isClosed ? nil : operations.peerAddress }
    /// The RDMA device the identifier is bound to: after a bind to a device's address,
    /// address resolution, or for the identifier of a connect request. Open the
    /// `Context` for `createQueuePair` on it.
    public var deviceName: String? { isClosed ? nil : operations.deviceName }
    /// The device port the identifier is bound to.
    public var portNumber: UInt8? { isClosed ? nil : operations.portNumber }

    /// Closes the queue pair it created (detaches one given to `attach`), then destroys
    /// the identifier (a connection still up is torn down by the kernel). Idempotent; after a failure the identifier stays
    /// open and `close()` may be retried. The corresponding C function is `rdma_destroy_id`.
    public func close() throws(RDMAError) {
        if isClosed { return }
        if !ownsQueuePair.withLock({ $0 }), let queuePair {
            children.remove(queuePair)
            queuePair.connectionIdentifier = nil
            attached.withLock { $0 = nil }
        }
        try children.closeAll()
        try operations.destroy()
        isClosed = true
    }

    deinit {
        LeakCheck.objectDeinitialized("ConnectionIdentifier", isOpen: !isClosed, detail: "\(portSpace)")
        try? close()
    }
}
