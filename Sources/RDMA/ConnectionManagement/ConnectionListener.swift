import Synchronization

/// Listens on an address and port and yields each connect request, to accept or reject.
///
/// ```swift
/// let listener = try ConnectionListener(address: .any(port: 7471))
/// for try await request in listener {
///     guard request.privateData.starts(with: Array("hello".utf8)) else {
///         try request.reject(privateData: Array("who are you?".utf8))
///         continue
///     }
///     let context = try Context(deviceNamed: request.identifier.deviceName!)
///     // … protection domain, completion queue …
///     let queuePair = try request.identifier.createQueuePair(protectionDomain: pd, sendCompletionQueue: cq, receiveCompletionQueue: cq)
///     let connection = try await request.accept(queuePair: queuePair)
/// }
/// ```
/// Each request's identifier is moved to an event channel of its own
/// (`rdma_migrate_id`), so that its events reach its `Connection`, not the listener.
/// Requests not taken from the sequence are held up to `backlog`; more are rejected.
public final class ConnectionListener: AsyncSequence, @unchecked Sendable {
    public typealias Element = ConnectionRequest

    public let identifier: ConnectionIdentifier
    private let channel: ConnectionEventChannel
    private let watcher: ConnectionEventWatcher

    /// Binds to `address` (`.any(port:)` for every device) and listens.
    /// `context` chooses the soft backend (`Context(soft:)`); verbs otherwise.
    /// The corresponding C functions are `rdma_bind_addr` and `rdma_listen`.
    public init(address: ConnectionAddress, backlog: Int = 64, context: Context? = nil) throws(RDMAError) {
        channel = try ConnectionEventChannel(context: context)
        do throws(RDMAError) {
            identifier = try ConnectionIdentifier(channel: channel)
            try identifier.bind(to: address)
            try identifier.listen(backlog: backlog)
            watcher = try ConnectionEventWatcher(channel: channel, label: "listen \(address)", pendingLimit: backlog,
                                                 accept: ConnectionListener.separate(context: context),
                                                 overflow: { event in ConnectionRequest(event: event).refuse() })
        } catch {
            try? channel.close()
            throw error
        }
    }

    /// On the watcher's queue: gives each request's identifier its own channel before
    /// anyone sees it; drops events that are not requests unless they end the listener.
    private static func separate(context: Context?) -> (ConnectionEvent) -> Bool {
        { event in
            guard event.kind == .connectRequest else { return event.kind == .deviceRemoval }
            do throws(RDMAError) {
                let own = try ConnectionEventChannel(context: context)
                do throws(RDMAError) {
                    try event.identifier.migrate(to: own)
                } catch {
                    try? own.close()
                    throw error
                }
                return true
            } catch {
                try? event.identifier.reject()
                try? event.identifier.close()
                return false
            }
        }
    }

    /// The bound address (with the port the kernel chose for port 0).
    public var localAddress: ConnectionAddress? { identifier.localAddress }

    /// The next connect request, waiting at most `timeout` (nil: until one comes, the
    /// listener is closed, or the task is cancelled).
    public func nextRequest(timeout: Duration? = nil) async throws -> ConnectionRequest {
        let event = try await watcher.next(timeout: timeout, operation: "wait for a connect request")
        if let error = event.error(operation: "listen on \(localAddress.map(String.init(describing:)) ?? "?")") { throw error }
        return ConnectionRequest(event: event)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let listener: ConnectionListener
        /// The next request; nil once the listener is closed.
        public mutating func next() async throws -> ConnectionRequest? {
            do { return try await listener.nextRequest() } catch let error as RDMAError where error.kind == .closed { return nil }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(listener: self) }

    /// Stops listening: ends the sequence, rejects the requests not taken, closes the
    /// identifier and channel. Idempotent.
    /// The corresponding C functions are `rdma_destroy_id` and `rdma_destroy_event_channel`.
    public func close() throws(RDMAError) {
        watcher.stop()
        for event in watcher.takePending() where event.kind == .connectRequest {
            ConnectionRequest(event: event).refuse()
        }
        try identifier.close()
        try channel.close()
    }

    deinit { try? close() }
}

/// One peer's connect request: its address, private data and offer; accept it with a
/// queue pair or reject it.
///
/// ```swift
/// let request = try await listener.nextRequest(timeout: .seconds(30))
/// try request.reject(privateData: Array("full".utf8))
/// ```
public final class ConnectionRequest: @unchecked Sendable {
    /// The request's own identifier (on its own channel): create the queue pair on it.
    public let identifier: ConnectionIdentifier
    /// The peer's private data (user bytes, zero-padded to 56 on InfiniBand/RoCE).
    public let privateData: [UInt8]
    /// The peer's offer: READ depths, retries.
    public let parameters: ConnectionParameters?

    /// Set once the request is accepted (the `Connection` owns the identifier then),
    /// refused or closed.
    private let settled = Mutex(false)

    init(event: ConnectionEvent) {
        identifier = event.identifier
        privateData = event.privateData
        parameters = event.parameters
    }

    /// Rejects without private data and closes (a listener closing with requests not taken).
    func refuse() {
        try? identifier.reject()
        close()
    }

    /// The peer's address and port.
    public var peerAddress: ConnectionAddress? { identifier.peerAddress }

    /// Accepts with `queuePair` (created by `identifier.createQueuePair`, or a RESET RC QP
    /// on `identifier.deviceName` to attach) and `parameters` (what we offer; up to 196
    /// bytes of private data), and waits at most `timeout` for establishment.
    /// The corresponding C function is `rdma_accept`.
    public func accept(queuePair: QueuePair, parameters: ConnectionParameters = ConnectionParameters(),
                       timeout: Duration = .seconds(10)) async throws -> Connection {
        let channel = identifier.channel
        let ended = Disconnection()
        let watcher: ConnectionEventWatcher
        do throws(RDMAError) {
            watcher = try Connection.watch(channel, label: "accept", recording: ended)
        } catch {
            close()
            throw error
        }
        do {
            if queuePair.connectionIdentifier !== identifier { try identifier.attach(queuePair) }
            try identifier.accept(parameters)
            let step = "accept from \(peerAddress.map(String.init(describing:)) ?? "peer")"
            _ = try await Connection.expect(.established, from: watcher, until: ContinuousClock.now + timeout, operation: step)
            settled.withLock { $0 = true }
            return Connection(identifier: identifier, queuePair: queuePair, watcher: watcher, ended: ended,
                              peerPrivateData: privateData, peerParameters: self.parameters)
        } catch {
            watcher.stop()
            close()
            throw error
        }
    }

    /// Refuses: the peer sees `.rejected` (`consumerDefined`) with `privateData` (up to
    /// 148 bytes); the request's identifier and channel are closed.
    /// The corresponding C function is `rdma_reject`.
    public func reject(privateData: [UInt8] = []) throws(RDMAError) {
        try ConnectionParameters.validate(privateData: privateData, limit: PrivateDataLimit.reject, operation: "rdma_reject")
        defer { close() }
        try identifier.reject(privateData: privateData)
    }

    /// Closes the identifier (and its queue pair) and the request's channel; a request not
    /// accepted is refused by the kernel. Idempotent.
    public func close() {
        settled.withLock { $0 = true }
        let channel = identifier.channel
        try? identifier.close()
        try? channel.close()
    }

    /// A request dropped without an answer is closed (the kernel refuses it).
    deinit {
        if !settled.withLock({ $0 }) { close() }
    }
}
