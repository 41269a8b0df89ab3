#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import SoftRoCE

// The soft backend's connection-manager table (see ConnectionManagerBackend.swift): a thin
// translation onto the engine's `SoftConnectionManager` (one per `SoftDevice`, in
// SoftRoCE/ConnectionManager/), which speaks the IB CM on QP 1 — so a soft identifier
// connects to kernel rdma_cm peers (rping, ucmatose, perftest -R) and they to it.
//
// How the steps map:
// - a channel is one of the manager's event queues (its descriptor, its `nextEvent`); the
//   engine's background progress runs while a channel is open, so events arrive by themselves;
// - an identifier is an idle manager id made on its channel's queue (rdma_create_id);
//   `bind` records the address, `listen` calls `listen(id:address:port:backlog:)`;
// - `resolveAddress` records the destination and queues `.addressResolved`, `resolveRoute`
//   queues `.routeResolved` (the engine routes by IP itself);
// - `attach` moves the queue pair to INIT (receives can be posted), `connect` calls
//   `connect(id:queuePair:to:port:…)`, which drives it to RTS on the peer's REP;
//   `accept`/`reject`/`disconnect`/`destroy` map one to one; `migrate` moves the id to the
//   other channel's queue;
// - a connect request's new manager id becomes a new `SoftBackendConnectionIdentifier`.

final class SoftBackendConnectionChannel: ConnectionChannelOperations, @unchecked Sendable {
    let device: SoftDevice
    let manager: SoftConnectionManager
    let queue: SoftConnectionEventQueue
    /// This channel's identifiers by manager id, so an event finds its identifier.
    let identifiers = Mutex<[UInt32: SoftBackendConnectionIdentifier]>([:])

    init(device: SoftDevice) throws(RDMAError) {
        self.device = device
        do throws(SoftRoCEError) {
            manager = try SoftConnectionManager(device: device)
            queue = try manager.makeEventQueue()
        } catch {
            throw RDMAError(soft: error)
        }
        // CM timers and MADs need rounds even while nobody polls a completion queue.
        device.startBackgroundProgress()
    }

    var kind: BackendKind { .soft }
    var fileDescriptor: Int32 { queue.fileDescriptor }

    func createIdentifier(portSpace: ConnectionPortSpace) throws(RDMAError) -> any ConnectionIdentifierOperations {
        guard portSpace == .tcp else {
            throw RDMAError(operation: "rdma_create_id", kind: .unsupported,
                            hint: "the soft engine's CM connects RC queue pairs (RDMA_PS_TCP); SIDR (RDMA_PS_UDP) is not implemented")
        }
        let identifier = SoftBackendConnectionIdentifier(channel: self, managerID: manager.createIdentifier(events: queue))
        register(identifier)
        return identifier
    }

    func register(_ identifier: SoftBackendConnectionIdentifier) {
        identifiers.withLock { $0[identifier.managerID] = identifier }
    }

    func unregister(_ identifier: SoftBackendConnectionIdentifier) {
        identifiers.withLock { if $0[identifier.managerID] === identifier { $0[identifier.managerID] = nil } }
    }

    func nextEvent() throws(RDMAError) -> ConnectionEventRecord? {
        while let event = manager.nextEvent(from: queue) {
            if let record = record(for: event) { return record }
        }
        return nil
    }

    /// The event as the public layer wants it; nil when its identifier is gone.
    private func record(for event: SoftConnectionEvent) -> ConnectionEventRecord? {
        guard let kind = ConnectionEventKind(rawValue: UInt32(event.kind.rawValue)) else { return nil }
        let identifier: SoftBackendConnectionIdentifier
        var listener: SoftBackendConnectionIdentifier?
        if event.kind == .connectRequest {
            listener = event.listenerID.flatMap { id in identifiers.withLock { $0[id] } }
            guard listener != nil else { manager.destroy(event.id); return nil }
            identifier = SoftBackendConnectionIdentifier(channel: self, managerID: event.id, bound: listener?.bound)
            register(identifier)
        } else {
            guard let known = identifiers.withLock({ $0[event.id] }) else { return nil }
            identifier = known
        }
        if let peer = event.peer { identifier.peer = ConnectionAddress(soft: peer, port: event.peerPort) }
        let parameters = event.parameters.map {
            ConnectionParameters(privateData: event.privateData, responderResources: $0.responderResources, initiatorDepth: $0.initiatorDepth,
                                 retryCount: $0.retryCount, rnrRetryCount: $0.rnrRetryCount)
        }
        return ConnectionEventRecord(kind: kind, status: event.status, identifier: identifier, listener: listener,
                                     privateData: event.privateData, parameters: parameters, datagram: nil)
    }

    func destroy() throws(RDMAError) {
        identifiers.withLock { $0.removeAll() }
        manager.closeEventQueue(queue)
    }
}

final class SoftBackendConnectionIdentifier: ConnectionIdentifierOperations, @unchecked Sendable {
    weak var owner: ConnectionIdentifier?
    let managerID: UInt32

    /// What the user's thread and the event thread both touch, under one lock.
    private struct State {
        /// The channel whose queue gets this identifier's events (changes on `migrate`).
        var channel: SoftBackendConnectionChannel
        var bound: ConnectionAddress?
        var peer: ConnectionAddress?
        var queuePair: SoftQueuePair?
    }
    private let state: Mutex<State>

    init(channel: SoftBackendConnectionChannel, managerID: UInt32, bound: ConnectionAddress? = nil) {
        state = Mutex(State(channel: channel, bound: bound))
        self.managerID = managerID
    }

    private var channel: SoftBackendConnectionChannel { state.withLock { $0.channel } }
    private var manager: SoftConnectionManager { channel.manager }
    private var device: SoftDevice { channel.device }
    var bound: ConnectionAddress? { state.withLock { $0.bound } }
    var peer: ConnectionAddress? {
        get { state.withLock { $0.peer } }
        set { state.withLock { $0.peer = newValue } }
    }
    private var queuePair: SoftQueuePair? { state.withLock { $0.queuePair } }

    /// A manager call, its error as the public one naming `operation`.
    private func call(_ operation: String, _ body: () throws(SoftRoCEError) -> Void) throws(RDMAError) {
        do throws(SoftRoCEError) { try body() } catch {
            throw RDMAError(soft: SoftRoCEError(operation, errno: error.errno, error.message))
        }
    }

    func bind(_ address: ConnectionAddress) throws(RDMAError) {
        if let soft = address.softAddress, soft != device.address {
            throw RDMAError(operation: "rdma_bind_addr", kind: .system(errno: EADDRNOTAVAIL),
                            hint: "\(address) is not the soft device's address (\(device.address))")
        }
        state.withLock { $0.bound = address }
    }

    func listen(backlog: Int32) throws(RDMAError) {
        guard let bound else {
            throw RDMAError(operation: "rdma_listen", kind: .invalidArgument, hint: "bind the identifier to an address and port first")
        }
        try call("rdma_listen") { () throws(SoftRoCEError) in
            let id = try manager.listen(id: managerID, address: bound.softAddress, port: bound.port, backlog: Int(backlog))
            if bound.port == 0, let port = manager.port(of: id) { state.withLock { $0.bound?.port = port } }
        }
    }

    func resolveAddress(source: ConnectionAddress?, destination: ConnectionAddress, timeoutMilliseconds: Int32) throws(RDMAError) {
        guard let soft = destination.softAddress else {
            throw RDMAError(operation: "rdma_resolve_addr", kind: .invalidArgument, hint: "\(destination) is a wildcard address")
        }
        if let source, let local = source.softAddress, local != device.address {
            throw RDMAError(operation: "rdma_resolve_addr", kind: .system(errno: EADDRNOTAVAIL),
                            hint: "\(source) is not the soft device's address (\(device.address))")
        }
        peer = ConnectionAddress(soft: soft, port: destination.port)
        manager.post(.addressResolved, for: managerID)
    }

    func resolveRoute(timeoutMilliseconds: Int32) throws(RDMAError) {
        guard peer != nil else { throw RDMAError(operation: "rdma_resolve_route", kind: .invalidArgument, hint: "resolve the address first") }
        manager.post(.routeResolved, for: managerID)
    }

    func attach(queuePair: QueuePair) throws(RDMAError) {
        guard let soft = queuePair.currentOperations as? SoftBackendQueuePair, soft.device === device else {
            throw RDMAError(operation: "rdma_create_qp", kind: .invalidArgument,
                            hint: "the queue pair belongs to another device: create it on the channel's soft Context")
        }
        // INIT now, so receives can be posted before the peer's first SEND (the CM sets
        // the access flags again from the agreed READ depths at connect/accept).
        var initial = SoftQueuePairAttributes(state: .initialized)
        initial.access = [.localWrite, .remoteWrite, .remoteRead, .remoteAtomic]
        try call("rdma_create_qp(INIT)") { () throws(SoftRoCEError) in try device.modify(soft.queuePair, initial) }
        state.withLock { $0.queuePair = soft.queuePair }
    }

    func connect(_ parameters: ConnectionParameters) throws(RDMAError) {
        guard let peer, let address = peer.softAddress else {
            throw RDMAError(operation: "rdma_connect", kind: .invalidArgument, hint: "resolve the address and route first")
        }
        guard let queuePair else {
            throw RDMAError(operation: "rdma_connect", kind: .unsupported,
                            hint: "the soft CM drives the queue pair itself: create it with createQueuePair or attach one first")
        }
        try call("rdma_connect") { () throws(SoftRoCEError) in
            _ = try manager.connect(id: managerID, queuePair: queuePair, to: address, port: peer.port, privateData: parameters.privateData,
                                    parameters: SoftConnectionParameters(parameters), timeout: nil)
        }
    }

    func establish() throws(RDMAError) {
        throw RDMAError(operation: "rdma_establish", kind: .unsupported, hint: "the soft CM establishes by itself (no .connectResponse step)")
    }

    func accept(_ parameters: ConnectionParameters) throws(RDMAError) {
        guard let queuePair else {
            throw RDMAError(operation: "rdma_accept", kind: .unsupported, hint: "the soft CM needs the queue pair: attach one first")
        }
        try call("rdma_accept") { () throws(SoftRoCEError) in
            try manager.accept(managerID, queuePair: queuePair, privateData: parameters.privateData, parameters: SoftConnectionParameters(parameters))
        }
    }

    func reject(privateData: [UInt8]) throws(RDMAError) {
        try call("rdma_reject") { () throws(SoftRoCEError) in try manager.reject(managerID, privateData: privateData) }
    }

    func disconnect() throws(RDMAError) {
        try call("rdma_disconnect") { () throws(SoftRoCEError) in try manager.disconnect(managerID) }
    }

    func migrate(to channel: any ConnectionChannelOperations) throws(RDMAError) {
        guard let target = channel as? SoftBackendConnectionChannel, target.device === device else {
            throw RDMAError(operation: "rdma_migrate_id", kind: .invalidArgument, hint: "the channel belongs to another backend or device")
        }
        try call("rdma_migrate_id") { () throws(SoftRoCEError) in try manager.migrate(managerID, to: target.queue) }
        let previous = state.withLock { current in
            defer { current.channel = target }
            return current.channel
        }
        previous.unregister(self)
        target.register(self)
    }

    var localAddress: ConnectionAddress? {
        let port = manager.port(of: managerID) ?? bound?.port ?? 0
        return ConnectionAddress(soft: device.address, port: port)
    }

    var peerAddress: ConnectionAddress? { peer }
    var deviceName: String? { device.name }
    var portNumber: UInt8? { 1 }

    func destroy() throws(RDMAError) {
        manager.destroy(managerID)
        channel.unregister(self)
        state.withLock { $0.queuePair = nil }
    }
}

extension ConnectionAddress {
    /// The engine's form of this address; nil for a wildcard.
    var softAddress: SoftAddress? {
        guard bytes.contains(where: { $0 != 0 }) else { return nil }
        switch family {
        case .ipv4: return .ipv4(bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        case .ipv6: return SoftAddress(gid: bytes)
        }
    }

    init(soft address: SoftAddress, port: UInt16) {
        switch address {
        case .ipv4(let value): self.init(family: .ipv4, bytes: (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }, port: port)
        case .ipv6: self.init(family: .ipv6, bytes: address.gid, port: port)
        }
    }
}

extension SoftConnectionParameters {
    init(_ parameters: ConnectionParameters) {
        self.init(responderResources: parameters.responderResources, initiatorDepth: parameters.initiatorDepth,
                  retryCount: parameters.retryCount, rnrRetryCount: parameters.rnrRetryCount)
    }
}
