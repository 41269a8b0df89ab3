#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import RoCEWire

/// The IB connection manager of a `SoftDevice`: rdma_cm's connection setup spoken on the
/// wire (CM MADs on QP 1 over RoCEv2, rdma_cm's IP service IDs and `cma_hdr`), so kernel
/// rdma_cm peers (rping, ucmatose, perftest `-R`) connect to the engine and it to them.
///
/// Ids name listeners and connections; events arrive in order through `nextEvent()` and
/// `eventFileDescriptor` (a pipe, readable while an event waits — poll it, never block).
/// The engine must make progress for anything to happen: `device.poll`/`progress()`, or
/// `startBackgroundProgress()`. The CM moves the RC queue pair it is given through INIT →
/// RTR → RTS (rdma_create_qp semantics) and to ERROR on disconnect or failure.
///
/// ```swift
/// let server = try SoftConnectionManager(device: serverDevice)
/// let listener = try server.listen(address: nil, port: 7174, backlog: 8)
/// // … a .connectRequest event arrives with a new id:
/// try server.accept(event.id, queuePair: qp, privateData: [], parameters: SoftConnectionParameters())
///
/// let client = try SoftConnectionManager(device: clientDevice)
/// let id = try client.connect(queuePair: clientQP, to: .ipv4(0x0A00_0002), port: 7174, privateData: [1, 2, 3],
///                             parameters: SoftConnectionParameters(), timeout: .seconds(10))
/// ```
package final class SoftConnectionManager: @unchecked Sendable {
    /// The device this manager belongs to (kept alive by it).
    package let device: SoftDevice
    let core: ConnectionManagerCore

    /// Opens the device's connection manager; a second one on the same device shares the
    /// first one's state (and configuration).
    package init(device: SoftDevice, configuration: SoftConnectionManagerConfiguration = SoftConnectionManagerConfiguration()) throws(SoftRoCEError) {
        self.device = device
        core = try device.locked { () throws(SoftRoCEError) -> ConnectionManagerCore in
            guard !device.closed else { throw SoftRoCEError("connection manager", errno: ENODEV, "the device is closed") }
            if let existing = device.connectionManagement { return existing }
            let core = try ConnectionManagerCore(configuration: configuration, address: device.address,
                                                 seed: configuration.seed ?? device.defaultConnectionManagementSeed)
            device.connectionManagement = core
            return core
        }
    }

    /// Readable while `nextEvent()` has an event (a pipe's read end; closed with the device).
    package var eventFileDescriptor: Int32 { core.defaultQueue.fileDescriptor }

    /// The oldest waiting event of the default queue, or nil. Never blocks.
    package func nextEvent() -> SoftConnectionEvent? {
        device.locked { core.defaultQueue.take() }
    }

    // MARK: - Event queues and idle ids (rdma_create_event_channel, rdma_create_id, rdma_migrate_id)

    /// A queue of its own for the events of the ids given to it (its `fileDescriptor` is
    /// readable while one waits). Close it with `closeEventQueue`.
    package func makeEventQueue() throws(SoftRoCEError) -> SoftConnectionEventQueue {
        try SoftConnectionEventQueue()
    }

    /// The oldest waiting event of `queue`, or nil. Never blocks.
    package func nextEvent(from queue: SoftConnectionEventQueue) -> SoftConnectionEvent? {
        device.locked { queue.take() }
    }

    /// Closes `queue`'s descriptors; events still meant for it are dropped. Idempotent.
    package func closeEventQueue(_ queue: SoftConnectionEventQueue) {
        device.locked { queue.close() }
    }

    /// An idle id whose events will go to `queue` (default: the manager's): pass it to
    /// `listen(id:…)` or `connect(id:…)`.
    package func createIdentifier(events queue: SoftConnectionEventQueue? = nil) -> UInt32 {
        device.locked {
            let id = core.allocateIdentifier()
            core.idleIdentifiers[id] = queue ?? core.defaultQueue
            return id
        }
    }

    /// Later events of `id` (and, for a listener, of the requests it receives) go to `queue`.
    package func migrate(_ id: UInt32, to queue: SoftConnectionEventQueue) throws(SoftRoCEError) {
        try device.locked { () throws(SoftRoCEError) in
            if let connection = core.connections[id], !connection.destroyed { connection.events = queue }
            else if core.listeners[id] != nil { core.listeners[id]!.events = queue }
            else if core.idleIdentifiers[id] != nil { core.idleIdentifiers[id] = queue }
            else { throw SoftRoCEError("migrate", errno: EINVAL, "id \(id) is not a live id") }
        }
    }

    /// Queues an event the caller produced itself for `id` (a backend that resolves
    /// addresses without the wire reports `.addressResolved` this way).
    package func post(_ kind: SoftConnectionEventKind, for id: UInt32, status: Int32 = 0) {
        device.locked {
            guard let queue = core.queue(of: id) else { return }
            core.post(SoftConnectionEvent(kind, id: id, status: status), to: queue)
        }
    }

    /// Listens on `port` (0: any free port, see the returned id's `port(of:)`) for REQs to
    /// rdma_cm's TCP port space; `address` nil listens on the device's address.
    package func listen(id reserved: UInt32? = nil, address: SoftAddress?, port: UInt16, backlog: Int) throws(SoftRoCEError) -> UInt32 {
        try device.locked { () throws(SoftRoCEError) -> UInt32 in
            guard !device.closed else { throw SoftRoCEError("listen", errno: ENODEV, "the device is closed") }
            if let address, address != device.address {
                throw SoftRoCEError("listen", errno: EADDRNOTAVAIL, "\(address) is not this device's address (\(device.address))")
            }
            var chosen = port
            if chosen == 0 {
                repeat { chosen = core.allocatePort() } while core.listeners.values.contains { $0.port == chosen }
            } else if core.listeners.values.contains(where: { $0.port == chosen }) {
                throw SoftRoCEError("listen", errno: EADDRINUSE, "port \(port) already has a listener")
            }
            let events = try core.takeIdle(reserved, "listen")
            let id = reserved ?? core.allocateIdentifier()
            core.listeners[id] = ListenerRecord(id: id, address: address, port: chosen, backlog: max(backlog, 1), events: events)
            return id
        }
    }

    /// The port a listener or connection is bound to (nil for an unknown id).
    package func port(of id: UInt32) -> UInt16? {
        device.locked { core.listeners[id]?.port ?? core.connections[id]?.localPort }
    }

    /// Sends a REQ for `port` at `to` and returns the connection's id; `.established`,
    /// `.rejected` (with the IB reject reason) or `.unreachable` (no answer within the
    /// retries or `timeout`) follows. `queuePair` must be a RESET or INIT RC QP.
    package func connect(id reserved: UInt32? = nil, queuePair: SoftQueuePair, to peer: SoftAddress, port: UInt16, privateData: [UInt8],
                         parameters: SoftConnectionParameters, timeout: Duration?) throws(SoftRoCEError) -> UInt32 {
        let nanoseconds = timeout.map { UInt64(max($0.components.seconds, 0)) * 1_000_000_000 + UInt64(max($0.components.attoseconds, 0) / 1_000_000_000) }
        return try device.locked { () throws(SoftRoCEError) -> UInt32 in
            try device.connectLocked(queuePair: queuePair, to: peer, port: port, privateData: privateData, parameters: parameters,
                                     timeoutNanoseconds: nanoseconds, id: reserved, core)
        }
    }

    /// Accepts a `.connectRequest`: `queuePair` goes to RTS towards the peer, a REP is sent,
    /// `.established` follows the peer's RTU.
    package func accept(_ id: UInt32, queuePair: SoftQueuePair, privateData: [UInt8], parameters: SoftConnectionParameters) throws(SoftRoCEError) {
        try device.locked { () throws(SoftRoCEError) in
            try device.acceptLocked(id, queuePair: queuePair, privateData: privateData, parameters: parameters, core)
        }
    }

    /// Refuses a `.connectRequest` with a REJ (reason 28, consumer defined, unless told).
    package func reject(_ id: UInt32, privateData: [UInt8], reason: ConnectRejectReason = .consumerDefined) throws(SoftRoCEError) {
        try device.locked { () throws(SoftRoCEError) in try device.rejectLocked(id, privateData: privateData, reason: reason, core) }
    }

    /// Sends a DREQ (the QP goes to ERROR: outstanding work completes flushed); `.disconnected`
    /// follows the DREP (or its timeout), `.timewaitExit` later.
    package func disconnect(_ id: UInt32) throws(SoftRoCEError) {
        try device.locked { () throws(SoftRoCEError) in try device.disconnectLocked(id, core) }
    }

    /// Releases an id: a listener stops (its unanswered requests are rejected), a handshake is
    /// abandoned with a REJ, a connection is disconnected. No event follows. Idempotent.
    package func destroy(_ id: UInt32) {
        device.locked { device.destroyLocked(id, core) }
    }

    /// Connection records (including those in timewait) and listeners: for leak checks.
    package var recordCount: (connections: Int, listeners: Int, events: Int) {
        device.locked { (core.connections.count + core.idleIdentifiers.count, core.listeners.count, core.defaultQueue.pending) }
    }
}
