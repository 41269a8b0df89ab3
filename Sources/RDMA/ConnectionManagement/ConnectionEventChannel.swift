#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where rdma_cm events arrive: address and route resolution, connect requests,
/// establishment, rejection, disconnection. Its `fileDescriptor` is pollable, so an event
/// loop can wait on it; `nextEvent()` never blocks.
///
/// ```swift
/// let channel = try ConnectionEventChannel()
/// let identifier = try ConnectionIdentifier(channel: channel)
/// try identifier.resolveAddress(to: try ConnectionAddress(host: "10.0.0.2", port: 7471))
/// if let event = try channel.waitForEvent(timeoutMilliseconds: 2000) {
///     print(event.kind)   // RDMA_CM_EVENT_ADDR_RESOLVED
/// }
/// ```
/// Identifiers keep their channel alive; `close()` closes them first and is idempotent.
/// For async code, `Connection.connect(to:port:timeout:queuePair:)` and
/// `ConnectionListener` wait on the descriptor for you.
public final class ConnectionEventChannel: ClosableResource, @unchecked Sendable {
    /// The backend's channel: a `let`, so that a call through it needs no retain;
    /// it outlives `close()`, and every use checks `isClosed` first.
    private let operations: any ConnectionChannelOperations
    /// True after `close()` — set once the destroy call succeeded.
    public private(set) var isClosed = false
    /// The soft context this channel's identifiers use; nil on verbs, where librdmacm picks
    /// the device from the address.
    public let context: Context?
    let children = ChildRegistry()

    /// Creates a channel. Without a context, or with a verbs one, it is librdmacm's; with a
    /// soft context (`Context(soft:)`), the soft engine's connection manager.
    /// The corresponding C function is `rdma_create_event_channel`.
    public init(context: Context? = nil) throws(RDMAError) {
        if let context, let soft = context.softEngine {
            operations = try SoftBackendConnectionChannel(device: soft)
            self.context = context
            context.children.add(self)
        } else {
            if let context { _ = try context.operations("rdma_create_event_channel") }
            operations = try VerbsConnectionChannel()
            self.context = nil
        }
    }

    /// A channel over given operations (tests drive the async layer with a scripted one).
    init(operations: any ConnectionChannelOperations) {
        self.operations = operations
        context = nil
    }

    /// Which implementation this channel runs on.
    public var backend: BackendKind { operations.kind }

    /// The backend's channel, or a `.closed` error naming `operation`.
    func operations(_ operation: StaticString) throws(RDMAError) -> any ConnectionChannelOperations {
        if isClosed { throw RDMAError.closed(operation, "ConnectionEventChannel") }
        return operations
    }

    /// The descriptor to watch for readability; -1 once closed.
    public var fileDescriptor: Int32 { isClosed ? -1 : operations.fileDescriptor }

    /// The next queued event, or nil at once when there is none. Events of identifiers
    /// already closed are dropped. The corresponding C functions are `rdma_get_cm_event`
    /// and `rdma_ack_cm_event` (the event is copied, then acknowledged).
    public func nextEvent() throws(RDMAError) -> ConnectionEvent? {
        let operations = try operations("rdma_get_cm_event")
        while let record = try operations.nextEvent() {
            if let event = publicEvent(record) { return event }
        }
        return nil
    }

    /// Waits up to `timeoutMilliseconds` (negative: forever) for an event; nil on timeout.
    /// Blocks the calling thread: from async code use the async API instead.
    /// The corresponding C function is `rdma_get_cm_event`.
    public func waitForEvent(timeoutMilliseconds: Int32) throws(RDMAError) -> ConnectionEvent? {
        if let event = try nextEvent() { return event }
        var clock = ContinuousClock.now
        let deadline = timeoutMilliseconds < 0 ? nil : clock.advanced(by: .milliseconds(timeoutMilliseconds))
        while true {
            var remaining: Int32 = -1
            if let deadline {
                clock = ContinuousClock.now
                if clock >= deadline { return nil }
                let left = (deadline - clock).components
                remaining = Int32(clamping: left.seconds * 1000 + left.attoseconds / 1_000_000_000_000_000 + 1)
            }
            var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
            _ = try CReturn.minusOneErrno("poll(rdma event channel)") { poll(&descriptor, 1, remaining) }
                .flatMapError { error in error.errno == EINTR ? .success(0) : .failure(error) }.get()
            if let event = try nextEvent() { return event }
        }
    }

    /// Waits up to `timeoutMilliseconds` for an event of `kind` (for blocking code: tools,
    /// tests). A failure event, or a disconnection, throws its error naming `operation`;
    /// other events are skipped; none in time throws ETIMEDOUT.
    ///
    /// ```swift
    /// try identifier.resolveAddress(to: server)
    /// _ = try channel.waitForEvent(.addressResolved, timeoutMilliseconds: 2000, operation: "resolve \(server)")
    /// ```
    public func waitForEvent(_ kind: ConnectionEventKind, timeoutMilliseconds: Int32, operation: String) throws(RDMAError) -> ConnectionEvent {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(max(0, timeoutMilliseconds)))
        while true {
            let left = (deadline - ContinuousClock.now).components
            let remaining = Int32(clamping: max(0, left.seconds * 1000 + left.attoseconds / 1_000_000_000_000_000))
            guard remaining > 0, let event = try waitForEvent(timeoutMilliseconds: remaining) else {
                throw RDMAError(operation: operation, kind: .system(errno: ETIMEDOUT), hint: "no \(kind) within \(timeoutMilliseconds) ms")
            }
            if event.kind == kind { return event }
            if let error = event.error(operation: operation) { throw error }
        }
    }

    /// A backend record as the public event; nil when its identifier is gone.
    private func publicEvent(_ record: ConnectionEventRecord) -> ConnectionEvent? {
        let identifier: ConnectionIdentifier
        if let owner = record.identifier.owner {
            identifier = owner
        } else if record.kind == .connectRequest, let listener = record.listener?.owner {
            identifier = ConnectionIdentifier(adopting: record.identifier, channel: self, portSpace: listener.portSpace)
        } else {
            if record.kind == .connectRequest {
                // Its listener is gone: refuse the request rather than leak its identifier.
                try? record.identifier.reject(privateData: [])
                try? record.identifier.destroy()
            }
            return nil
        }
        return ConnectionEvent(kind: record.kind, status: record.status, identifier: identifier,
                               listener: record.listener?.owner, privateData: record.privateData,
                               parameters: record.parameters, datagram: record.datagram)
    }

    /// Closes the identifiers on this channel, then the channel. Idempotent; after a
    /// failure the channel stays open and `close()` may be retried.
    /// The corresponding C function is `rdma_destroy_event_channel`.
    public func close() throws(RDMAError) {
        if isClosed { return }
        try children.closeAll()
        try operations.destroy()
        isClosed = true
    }

    deinit {
        LeakCheck.objectDeinitialized("ConnectionEventChannel", isOpen: !isClosed, detail: "descriptor \(fileDescriptor)")
        try? close()
    }
}
