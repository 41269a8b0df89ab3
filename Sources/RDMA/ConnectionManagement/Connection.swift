#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Synchronization

/// A connected RC queue pair and the rdma_cm identifier that connected it, with its own
/// event channel: its events (a disconnection above all) reach this connection and no
/// other.
///
/// ```swift
/// let connection = try await Connection.connect(to: "10.0.0.2", port: 7471, timeout: .seconds(5)) { identifier in
///     let context = try Context(deviceNamed: identifier.deviceName!)
///     let pd = try ProtectionDomain(context: context)
///     let cq = try CompletionQueue(context: context, minimumEntries: 16)
///     return try identifier.createQueuePair(protectionDomain: pd, sendCompletionQueue: cq, receiveCompletionQueue: cq)
/// }
/// // connection.queuePair is in RTS: post sends and receives.
/// try await connection.disconnect()
/// try connection.close()
/// ```
/// When the peer disconnects, the queue pair moves to ERROR (outstanding work completes
/// with a flush error) and `disconnection` says why.
public final class Connection: @unchecked Sendable {
    public let identifier: ConnectionIdentifier
    public let queuePair: QueuePair
    /// The peer's private data from its accept (active side) or connect request (passive).
    public let peerPrivateData: [UInt8]
    /// The peer's offer (READ depths, retries).
    public let peerParameters: ConnectionParameters?
    let watcher: ConnectionEventWatcher
    private let ended: Disconnection
    private let closed = Mutex(false)

    init(identifier: ConnectionIdentifier, queuePair: QueuePair, watcher: ConnectionEventWatcher, ended: Disconnection,
         peerPrivateData: [UInt8], peerParameters: ConnectionParameters?) {
        self.identifier = identifier
        self.queuePair = queuePair
        self.watcher = watcher
        self.ended = ended
        self.peerPrivateData = peerPrivateData
        self.peerParameters = peerParameters
    }

    /// Connects to `host` (an address, or a name looked up off the cooperative pool) on
    /// `port`: resolves the address and route, calls `queuePair` with the resolved
    /// identifier (open the `Context` on its `deviceName`; create the QP with
    /// `identifier.createQueuePair`, or return a RESET RC QP to be attached), sends the
    /// request with `parameters`, and returns once established. Everything is bounded by
    /// `timeout`; a refusal throws `.rejected(reason)`, no answer ETIMEDOUT/`.unreachable`,
    /// an unknown address the resolution error. Cancelling the task tears everything down; on any failure the queue pair is closed too.
    /// `context` chooses the soft backend (`Context(soft:)`); verbs otherwise.
    /// The corresponding C functions are `rdma_resolve_addr`, `rdma_resolve_route`,
    /// `rdma_create_qp` and `rdma_connect`.
    public static func connect(to host: String, port: UInt16, timeout: Duration = .seconds(10),
                               parameters: ConnectionParameters = ConnectionParameters(), context: Context? = nil,
                               queuePair makeQueuePair: (ConnectionIdentifier) throws -> QueuePair) async throws -> Connection {
        let address = try await resolve(host, port: port)
        return try await connect(to: address, timeout: timeout, parameters: parameters, context: context, queuePair: makeQueuePair)
    }

    /// `connect(to:port:…)` with an address already resolved.
    public static func connect(to address: ConnectionAddress, timeout: Duration = .seconds(10),
                               parameters: ConnectionParameters = ConnectionParameters(), context: Context? = nil,
                               queuePair makeQueuePair: (ConnectionIdentifier) throws -> QueuePair) async throws -> Connection {
        try ConnectionParameters.validate(privateData: parameters.privateData, limit: PrivateDataLimit.connect, operation: "connect to \(address)")
        return try await connect(to: address, timeout: timeout, context: context) { identifier in
            (try makeQueuePair(identifier), parameters)
        }
    }

    /// `connect(to:port:…)` for a request whose private data depends on the queue pair:
    /// `offer` creates the queue pair on the resolved identifier and returns it with the
    /// parameters to send — e.g. the rkeys and addresses of memory registered for it.
    ///
    /// ```swift
    /// let connection = try await Connection.connect(to: "10.0.0.2", port: 7471) { identifier in
    ///     let queuePair = try identifier.createQueuePair(protectionDomain: pd, sendCompletionQueue: cq, receiveCompletionQueue: cq)
    ///     let region = try MemoryRegion(protectionDomain: pd, length: 4096, access: [.localWrite, .remoteWrite])
    ///     return (queuePair, ConnectionParameters(privateData: region.remoteDescriptor.serialized))
    /// }
    /// ```
    /// The corresponding C functions are `rdma_resolve_addr`, `rdma_resolve_route`,
    /// `rdma_create_qp` and `rdma_connect`.
    public static func connect(to host: String, port: UInt16, timeout: Duration = .seconds(10), context: Context? = nil,
                               offer: (ConnectionIdentifier) throws -> (queuePair: QueuePair, parameters: ConnectionParameters)) async throws -> Connection {
        try await connect(to: resolve(host, port: port), timeout: timeout, context: context, offer: offer)
    }

    /// `connect(to:port:offer:)` with an address already resolved.
    public static func connect(to address: ConnectionAddress, timeout: Duration = .seconds(10), context: Context? = nil,
                               offer: (ConnectionIdentifier) throws -> (queuePair: QueuePair, parameters: ConnectionParameters)) async throws -> Connection {
        guard timeout > .zero else {
            throw RDMAError(operation: "connect to \(address)", kind: .invalidArgument, hint: "timeout must be positive; got \(timeout)")
        }
        let deadline = ContinuousClock.now + timeout
        let channel = try ConnectionEventChannel(context: context)
        let ended = Disconnection()
        let watcher: ConnectionEventWatcher
        do throws(RDMAError) {
            watcher = try watch(channel, label: "connect \(address)", recording: ended)
        } catch {
            try? channel.close()
            throw error
        }
        var identifier: ConnectionIdentifier?
        var offered: QueuePair?
        do {
            let client = try ConnectionIdentifier(channel: channel)
            identifier = client
            let step = "connect to \(address)"
            try client.resolveAddress(to: address, timeoutMilliseconds: milliseconds(until: deadline))
            _ = try await expect(.addressResolved, from: watcher, until: deadline, operation: "\(step): rdma_resolve_addr")
            try client.resolveRoute(timeoutMilliseconds: milliseconds(until: deadline))
            _ = try await expect(.routeResolved, from: watcher, until: deadline, operation: "\(step): rdma_resolve_route")
            let (queuePair, parameters) = try offer(client)
            offered = queuePair
            if queuePair.connectionIdentifier !== client { try client.attach(queuePair) }
            try ConnectionParameters.validate(privateData: parameters.privateData, limit: PrivateDataLimit.connect, operation: step)
            try client.connect(parameters)
            let established = try await expect(.established, from: watcher, until: deadline, operation: "\(step): rdma_connect")
            return Connection(identifier: client, queuePair: queuePair, watcher: watcher, ended: ended,
                              peerPrivateData: established.privateData, peerParameters: established.parameters)
        } catch {
            // The queue pair is bound to the identifier (rdma_destroy_qp before rdma_destroy_id)
            // and useless without the connection: closed with it (close is idempotent).
            watcher.stop()
            try? offered?.close()
            try? identifier?.close()
            try? channel.close()
            throw error
        }
    }

    /// `host` as an address: a numeric one at once, a name looked up off the cooperative pool.
    static func resolve(_ host: String, port: UInt16) async throws -> ConnectionAddress {
        if let numeric = ConnectionAddress(host, port: port) { return numeric }
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { () throws(RDMAError) in try ConnectionAddress(host: host, port: port) })
            }
        }
    }

    /// A watcher for one connection's channel: it records a disconnection as it arrives
    /// (`disconnection` needs no waiting task) and answers the peer's disconnect request
    /// at once — rdma_cm leaves that to the application, and until it is answered the
    /// peer's `disconnect()` waits for the CM's timeout.
    static func watch(_ channel: ConnectionEventChannel, label: String, recording ended: Disconnection) throws(RDMAError) -> ConnectionEventWatcher {
        try ConnectionEventWatcher(channel: channel, label: label, accept: { event in
            guard event.kind == .disconnected || event.kind == .deviceRemoval else { return true }
            ended.record(event)
            if event.kind == .disconnected { try? event.identifier.disconnect() }
            return true
        })
    }

    /// Waits for `kind`; a failure event (or a disconnection) throws its error.
    static func expect(_ kind: ConnectionEventKind, from watcher: ConnectionEventWatcher, until deadline: ContinuousClock.Instant,
                       operation: String) async throws -> ConnectionEvent {
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                throw RDMAError(operation: operation, kind: .system(errno: ETIMEDOUT), hint: "no \(kind) before the deadline")
            }
            let event = try await watcher.next(timeout: remaining, operation: operation)
            if event.kind == kind { return event }
            if let error = event.error(operation: operation) { throw error }
            // Anything else (an address change, a timewait exit of an earlier QP) is not
            // an answer to this step.
        }
    }

    static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let (seconds, attoseconds) = (deadline - ContinuousClock.now).components
        return Int32(clamping: max(1, min(60_000, seconds * 1000 + attoseconds / 1_000_000_000_000_000)))
    }

    /// Why the connection ended (the peer disconnected, the device went away), nil while up.
    public var disconnection: RDMAError? { ended.reason }

    /// The next event of this connection (`.disconnected`, `.timewaitExit`,
    /// `.addressChange`, `.deviceRemoval`), waiting at most `timeout` (nil: until one comes
    /// or the connection is closed). One task at a time.
    public func nextEvent(timeout: Duration? = nil) async throws -> ConnectionEvent {
        try await watcher.next(timeout: timeout, operation: "wait for rdma_cm event")
    }

    /// This connection's events as an async sequence; ends when the connection is closed.
    ///
    /// ```swift
    /// for try await event in connection.events where event.kind == .disconnected { break }
    /// ```
    public var events: AsyncThrowingStream<ConnectionEvent, any Error> {
        AsyncThrowingStream { [self] in
            do { return try await nextEvent() } catch let error as RDMAError where error.kind == .closed { return nil }
        }
    }

    /// Waits until the connection ends (either side), at most `timeout`; returns why.
    public func waitForDisconnection(timeout: Duration) async throws -> RDMAError {
        let deadline = ContinuousClock.now + timeout
        while disconnection == nil {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                throw RDMAError(operation: "wait for disconnection", kind: .system(errno: ETIMEDOUT), hint: "still connected after \(timeout)")
            }
            _ = try await nextEvent(timeout: remaining)
        }
        return disconnection!
    }


    /// Disconnects (the queue pair moves to ERROR, flushing its work) and waits for the
    /// disconnection to complete, at most `timeout`. Harmless when already disconnected.
    /// The corresponding C function is `rdma_disconnect`.
    public func disconnect(timeout: Duration = .seconds(5)) async throws {
        if disconnection != nil { return }
        do throws(RDMAError) {
            try identifier.disconnect()
        } catch where error.errno == EINVAL {
            // The peer disconnected first: its DISCONNECTED is on its way or queued.
        }
        _ = try await waitForDisconnection(timeout: timeout)
    }

    /// Stops watching events, closes the queue pair, the identifier and its channel (a
    /// connection still up is torn down by the kernel). Idempotent.
    /// The corresponding C functions are `rdma_destroy_qp`, `rdma_destroy_id` and
    /// `rdma_destroy_event_channel`.
    public func close() throws(RDMAError) {
        if closed.withLock({ $0 }) { return }
        watcher.stop()
        let channel = identifier.channel
        try queuePair.close()
        try identifier.close()
        try channel.close()
        closed.withLock { $0 = true }
    }

    deinit {
        LeakCheck.objectDeinitialized("Connection", isOpen: !closed.withLock { $0 }, detail: "QP 0x\(String(queuePair.number, radix: 16))")
        try? close()
    }
}

/// Why a connection ended, set once by its watcher.
final class Disconnection: Sendable {
    private let first = Mutex<RDMAError?>(nil)

    var reason: RDMAError? { first.withLock { $0 } }

    func record(_ event: ConnectionEvent) {
        let peer = event.identifier.peerAddress.map(String.init(describing:)) ?? "the peer"
        first.withLock { current in
            if current == nil { current = event.error(operation: "connection to \(peer)") }
        }
    }
}
