import SoftRoCE

// The soft backend's connection-manager table (see ConnectionManagerBackend.swift): a thin
// translation onto the engine's `SoftConnectionManager` (one per `SoftDevice`, in
// SoftRoCE/ConnectionManager/), which speaks the IB CM on QP1. Until that is wired, every
// entry answers "not supported on the soft backend yet".
//
// How the steps map (for whoever wires it):
// - the channel's descriptor and `nextEvent()` are the manager's `eventFileDescriptor`
//   and `nextEvent()`, events translated to `ConnectionEventRecord` (an id the manager
//   made for a REQ becomes a new `SoftBackendConnectionIdentifier`);
// - `bind` records the address, `listen` calls `listen(address:port:backlog:)`;
// - `resolveAddress` records the destination and queues `.addressResolved`,
//   `resolveRoute` queues `.routeResolved` (the engine routes by IP itself);
// - `attach` records the queue pair (`SoftBackendQueuePair`), `connect` calls
//   `connect(queuePair:to:port:privateData:parameters:timeout:)`, `accept`/`reject`/
//   `disconnect`/`destroy` map one to one; `migrate` moves the id to the other channel's
//   queue.

final class SoftBackendConnectionChannel: ConnectionChannelOperations, @unchecked Sendable {
    let device: SoftDevice

    init(device: SoftDevice) throws(RDMAError) {
        self.device = device
        throw RDMAError.connectionManagerUnsupported("rdma_create_event_channel", backend: .soft)
    }

    var kind: BackendKind { .soft }
    var fileDescriptor: Int32 { -1 }

    func createIdentifier(portSpace: ConnectionPortSpace) throws(RDMAError) -> any ConnectionIdentifierOperations {
        throw RDMAError.connectionManagerUnsupported("rdma_create_id", backend: .soft)
    }

    func nextEvent() throws(RDMAError) -> ConnectionEventRecord? { nil }
    func destroy() throws(RDMAError) {}
}

final class SoftBackendConnectionIdentifier: ConnectionIdentifierOperations, @unchecked Sendable {
    weak var owner: ConnectionIdentifier?

    func bind(_ address: ConnectionAddress) throws(RDMAError) { throw .connectionManagerUnsupported("rdma_bind_addr", backend: .soft) }
    func listen(backlog: Int32) throws(RDMAError) { throw .connectionManagerUnsupported("rdma_listen", backend: .soft) }
    func resolveAddress(source: ConnectionAddress?, destination: ConnectionAddress, timeoutMilliseconds: Int32) throws(RDMAError) {
        throw .connectionManagerUnsupported("rdma_resolve_addr", backend: .soft)
    }
    func resolveRoute(timeoutMilliseconds: Int32) throws(RDMAError) { throw .connectionManagerUnsupported("rdma_resolve_route", backend: .soft) }
    func attach(queuePair: QueuePair) throws(RDMAError) { throw .connectionManagerUnsupported("rdma_create_qp", backend: .soft) }
    func connect(_ parameters: ConnectionParameters) throws(RDMAError) { throw .connectionManagerUnsupported("rdma_connect", backend: .soft) }
    func establish() throws(RDMAError) { throw .connectionManagerUnsupported("rdma_establish", backend: .soft) }
    func accept(_ parameters: ConnectionParameters) throws(RDMAError) { throw .connectionManagerUnsupported("rdma_accept", backend: .soft) }
    func reject(privateData: [UInt8]) throws(RDMAError) { throw .connectionManagerUnsupported("rdma_reject", backend: .soft) }
    func disconnect() throws(RDMAError) { throw .connectionManagerUnsupported("rdma_disconnect", backend: .soft) }
    func migrate(to channel: any ConnectionChannelOperations) throws(RDMAError) {
        throw .connectionManagerUnsupported("rdma_migrate_id", backend: .soft)
    }
    var localAddress: ConnectionAddress? { nil }
    var peerAddress: ConnectionAddress? { nil }
    var deviceName: String? { nil }
    var portNumber: UInt8? { nil }
    func destroy() throws(RDMAError) {}
}
