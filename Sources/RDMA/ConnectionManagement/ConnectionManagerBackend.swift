// # The connection manager's backend seam
//
// Like the verbs table (Backend.swift), one table per backend, each in its own file:
//
// | table entry (protocol)               | verbs (VerbsConnectionManager.swift) | soft (SoftConnectionManager.swift) |
// |--------------------------------------|--------------------------------------|------------------------------------|
// | ConnectionChannelOperations          | VerbsConnectionChannel               | SoftBackendConnectionChannel       |
// | ConnectionIdentifierOperations       | VerbsConnectionIdentifier            | SoftBackendConnectionIdentifier    |
//
// The public objects (`ConnectionEventChannel`, `ConnectionIdentifier`) check what is
// common — argument limits, the closed state, the parent/child order — and call through.
// The steps are librdmacm's (bind, listen, resolve address, resolve route, connect, accept,
// reject, disconnect, migrate, destroy): a backend whose CM resolves and connects in one
// go (the soft one) records the destination at `resolveAddress` and queues the two
// "resolved" events itself.
//
// Events: a channel exposes a pollable descriptor and a non-blocking `nextEvent()`. The
// async layer (ConnectionEventWatcher.swift) waits for readability and then drains
// `nextEvent()`: it never blocks in a backend call on the cooperative pool. A backend
// that owns the queue pair (`attach(queuePair:)`) moves it through INIT → RTR → RTS as
// rdma_cm does with `rdma_create_qp`: on accept (passive) and on the peer's REP (active,
// reported as `established`), and to ERROR on disconnect and on `disconnected`.

/// One event as a backend reports it, already copied out of the backend's own storage
/// (for verbs: `rdma_ack_cm_event` has been called).
struct ConnectionEventRecord {
    var kind: ConnectionEventKind
    /// librdmacm's `status`: 0, a negative errno, or (for `.rejected`) the IB CM reason.
    var status: Int32
    /// The identifier the event is for. For `.connectRequest`, a new identifier that the
    /// backend created for the request; for the others, one the channel created before.
    var identifier: any ConnectionIdentifierOperations
    /// For `.connectRequest`: the listening identifier.
    var listener: (any ConnectionIdentifierOperations)?
    var privateData: [UInt8]
    /// The peer's parameters (connected port space).
    var parameters: ConnectionParameters?
    /// The peer's datagram parameters (UDP port space).
    var datagram: DatagramParameters?
}

/// `rdma_create_event_channel`'s object: the place events arrive.
protocol ConnectionChannelOperations: AnyObject, Sendable {
    var kind: BackendKind { get }
    /// Readable while `nextEvent()` has something to return.
    var fileDescriptor: Int32 { get }
    /// `rdma_create_id` on this channel.
    func createIdentifier(portSpace: ConnectionPortSpace) throws(RDMAError) -> any ConnectionIdentifierOperations
    /// `rdma_get_cm_event` + `rdma_ack_cm_event`, never blocking: nil when none is queued.
    func nextEvent() throws(RDMAError) -> ConnectionEventRecord?
    /// `rdma_destroy_event_channel`
    func destroy() throws(RDMAError)
}

/// `rdma_create_id`'s object.
protocol ConnectionIdentifierOperations: AnyObject, Sendable {
    /// The public identifier, held weakly (it owns these operations); set once at creation.
    var owner: ConnectionIdentifier? { get set }
    /// `rdma_bind_addr`
    func bind(_ address: ConnectionAddress) throws(RDMAError)
    /// `rdma_listen`
    func listen(backlog: Int32) throws(RDMAError)
    /// `rdma_resolve_addr`: `.addressResolved` or `.addressError` follows.
    func resolveAddress(source: ConnectionAddress?, destination: ConnectionAddress, timeoutMilliseconds: Int32) throws(RDMAError)
    /// `rdma_resolve_route`: `.routeResolved` or `.routeError` follows.
    func resolveRoute(timeoutMilliseconds: Int32) throws(RDMAError)
    /// `rdma_create_qp`'s other half: the CM owns `queuePair`'s state from now on (it
    /// moves it to INIT at once). Needs a resolved address or a connect request.
    func attach(queuePair: QueuePair) throws(RDMAError)
    /// `rdma_connect`: `.established`, `.rejected`, `.unreachable` or `.connectError` follows
    /// (`.connectResponse` when no queue pair is attached).
    func connect(_ parameters: ConnectionParameters) throws(RDMAError)
    /// `rdma_establish`: after `.connectResponse`, once the caller moved its QP to RTS.
    func establish() throws(RDMAError)
    /// `rdma_accept`
    func accept(_ parameters: ConnectionParameters) throws(RDMAError)
    /// `rdma_reject`
    func reject(privateData: [UInt8]) throws(RDMAError)
    /// `rdma_disconnect`
    func disconnect() throws(RDMAError)
    /// `rdma_migrate_id`: later events of this identifier arrive on `channel`.
    func migrate(to channel: any ConnectionChannelOperations) throws(RDMAError)
    /// `rdma_get_local_addr`
    var localAddress: ConnectionAddress? { get }
    /// `rdma_get_peer_addr`
    var peerAddress: ConnectionAddress? { get }
    /// The RDMA device the identifier is bound to (after bind, resolution or a request).
    var deviceName: String? { get }
    /// The device port the identifier is bound to.
    var portNumber: UInt8? { get }
    /// `rdma_destroy_id`
    func destroy() throws(RDMAError)
}

extension RDMAError {
    /// What a backend answers for a connection-manager step it does not implement (yet).
    static func connectionManagerUnsupported(_ operation: StaticString, backend: BackendKind) -> RDMAError {
        RDMAError(operation: "\(operation)", kind: .unsupported,
                  hint: "rdma_cm is not supported on the \(backend) backend yet")
    }
}
