#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CIBVerbs

// The verbs backend's connection-manager table (see ConnectionManagerBackend.swift): a
// pass-through to librdmacm. Every librdmacm call returns 0, or −1 with errno set (its
// `ERR()` macro), and goes through `CReturn.minusOneErrno`; rdma_create_event_channel is
// NULL + errno (`CReturn.nonNull`).
//
// The queue pair is ours, not librdmacm's: it was created on the caller's `Context`
// (libibverbs hands every `ibv_open_device` its own `ibv_context`, so a PD of ours can
// never be the `id->verbs` that `rdma_create_qp` insists on). So the identifier never has
// an `id->qp`, and this file does what librdmacm does for one (`ucma_modify_qp_rtr/rts`,
// `ucma_process_conn_resp`, `ucma_shutdown`): ask the kernel CM for the attributes of each
// state (`rdma_init_qp_attr`) and apply them with `ibv_modify_qp`. The kernel only needs
// the QP number in the REQ/REP, and the QP must be on the identifier's device — checked.

final class VerbsConnectionChannel: ConnectionChannelOperations, @unchecked Sendable {
    let pointer: UnsafeMutablePointer<rdma_event_channel>

    /// `rdma_create_event_channel`, with its descriptor made non-blocking so that
    /// `rdma_get_cm_event` returns EAGAIN instead of waiting (librdmacm documents this use).
    init() throws(RDMAError) {
        pointer = try CReturn.nonNull("rdma_create_event_channel") { rdma_create_event_channel() }.get()
        let descriptor = pointer.pointee.fd
        let flags = fcntl(descriptor, F_GETFL)
        if flags < 0 || fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) < 0 {
            let code = errno
            rdma_destroy_event_channel(pointer)
            throw CReturn.failure("fcntl(rdma event channel, O_NONBLOCK)", code)
        }
    }

    var kind: BackendKind { .verbs }
    var fileDescriptor: Int32 { pointer.pointee.fd }

    func createIdentifier(portSpace: ConnectionPortSpace) throws(RDMAError) -> any ConnectionIdentifierOperations {
        var identifier: UnsafeMutablePointer<rdma_cm_id>?
        _ = try CReturn.minusOneErrno("rdma_create_id") { rdma_create_id(pointer, &identifier, nil, portSpace.verbs) }.get()
        return VerbsConnectionIdentifier(pointer: identifier!, portSpace: portSpace)
    }

    func nextEvent() throws(RDMAError) -> ConnectionEventRecord? {
        while true {
            var raw: UnsafeMutablePointer<rdma_cm_event>?
            let result = CReturn.minusOneErrno("rdma_get_cm_event") { rdma_get_cm_event(pointer, &raw) }
            if case .failure(let error) = result {
                if error.errno == EAGAIN || error.errno == EWOULDBLOCK { return nil }
                if error.errno == EINTR { continue }
                throw error
            }
            guard let raw else { return nil }
            let record = copy(raw.pointee)
            // Acknowledged at once: rdma_destroy_id and rdma_migrate_id wait for every
            // event of their identifier to be acknowledged.
            rdma_ack_cm_event(raw)
            guard var record else { continue }
            if let identifier = record.identifier as? VerbsConnectionIdentifier {
                identifier.process(&record)
            }
            return record
        }
    }

    /// The event's fields, copied out of librdmacm's storage; nil for an event type this
    /// library does not know or one whose identifier is not ours.
    private func copy(_ event: rdma_cm_event) -> ConnectionEventRecord? {
        guard let kind = ConnectionEventKind(verbs: event.event), let id = event.id else { return nil }
        let identifier: VerbsConnectionIdentifier
        var listener: VerbsConnectionIdentifier?
        if kind == .connectRequest {
            // librdmacm made a new id for the request, with the listener's context.
            guard let listenID = event.listen_id, let context = listenID.pointee.context else { return nil }
            let listening = Unmanaged<VerbsConnectionIdentifier>.fromOpaque(context).takeUnretainedValue()
            identifier = VerbsConnectionIdentifier(pointer: id, portSpace: listening.portSpace)
            listener = listening
        } else {
            guard let context = id.pointee.context else { return nil }
            identifier = Unmanaged<VerbsConnectionIdentifier>.fromOpaque(context).takeUnretainedValue()
        }
        var record = ConnectionEventRecord(kind: kind, status: event.status, identifier: identifier, listener: listener,
                                           privateData: [], parameters: nil, datagram: nil)
        if identifier.portSpace == .udp {
            let ud = event.param.ud
            record.privateData = Self.bytes(ud.private_data, count: Int(ud.private_data_len))
            if kind == .established {
                record.datagram = DatagramParameters(remoteQueuePairNumber: ud.qp_num, remoteQKey: ud.qkey,
                                                     addressVector: AddressVector(verbs: ud.ah_attr))
            }
        } else {
            let conn = event.param.conn
            record.privateData = Self.bytes(conn.private_data, count: Int(conn.private_data_len))
            if kind == .connectRequest || kind == .connectResponse || kind == .established {
                record.parameters = ConnectionParameters(privateData: record.privateData,
                                                         responderResources: conn.responder_resources,
                                                         initiatorDepth: conn.initiator_depth,
                                                         flowControl: conn.flow_control != 0,
                                                         retryCount: conn.retry_count, rnrRetryCount: conn.rnr_retry_count)
            }
        }
        return record
    }

    private static func bytes(_ pointer: UnsafeRawPointer?, count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    func destroy() throws(RDMAError) {
        // rdma_destroy_event_channel returns nothing: it closes the descriptor.
        rdma_destroy_event_channel(pointer)
    }
}

final class VerbsConnectionIdentifier: ConnectionIdentifierOperations, @unchecked Sendable {
    let pointer: UnsafeMutablePointer<rdma_cm_id>
    let portSpace: ConnectionPortSpace
    weak var owner: ConnectionIdentifier?
    /// The queue pair whose states this identifier drives (`attach`); weak because the
    /// queue pair keeps its identifier alive, not the other way round.
    private weak var queuePair: QueuePair?
    /// What `connect`/`accept` agreed to, applied at RTR (responder) and RTS (initiator).
    private var responderResources: UInt8 = 1
    private var initiatorDepth: UInt8 = 1

    /// Takes over `pointer` (from `rdma_create_id` or a connect request) and points its
    /// `context` at this object, unretained: the id is destroyed before this object goes.
    init(pointer: UnsafeMutablePointer<rdma_cm_id>, portSpace: ConnectionPortSpace) {
        self.pointer = pointer
        self.portSpace = portSpace
        pointer.pointee.context = Unmanaged.passUnretained(self).toOpaque()
    }

    func bind(_ address: ConnectionAddress) throws(RDMAError) {
        _ = try CReturn.minusOneErrno("rdma_bind_addr") { address.withSocketAddress { rdma_bind_addr(pointer, $0) } }.get()
    }

    func listen(backlog: Int32) throws(RDMAError) {
        _ = try CReturn.minusOneErrno("rdma_listen") { rdma_listen(pointer, backlog) }.get()
    }

    func resolveAddress(source: ConnectionAddress?, destination: ConnectionAddress, timeoutMilliseconds: Int32) throws(RDMAError) {
        _ = try CReturn.minusOneErrno("rdma_resolve_addr") {
            destination.withSocketAddress { destinationPointer in
                if let source {
                    return source.withSocketAddress { rdma_resolve_addr(pointer, $0, destinationPointer, timeoutMilliseconds) }
                }
                return rdma_resolve_addr(pointer, nil, destinationPointer, timeoutMilliseconds)
            }
        }.get()
    }

    func resolveRoute(timeoutMilliseconds: Int32) throws(RDMAError) {
        _ = try CReturn.minusOneErrno("rdma_resolve_route") { rdma_resolve_route(pointer, timeoutMilliseconds) }.get()
    }

    func attach(queuePair: QueuePair) throws(RDMAError) {
        guard let verbs = pointer.pointee.verbs else {
            throw RDMAError(operation: "rdma_create_qp", kind: .invalidArgument,
                            hint: "the identifier has no device yet: resolve the address first (or take the identifier of a connect request)")
        }
        let device = queuePair.protectionDomain.context.device
        let ourGUID = UInt64(bigEndian: ibv_get_device_guid(verbs.pointee.device))
        guard device.soft == nil, device.guid == ourGUID else {
            let name = String(cString: ibv_get_device_name(verbs.pointee.device))
            throw RDMAError(operation: "rdma_create_qp", kind: .invalidArgument,
                            hint: "the address resolved to device \(name), but the queue pair was created on \(device.name): open the Context on \(name)")
        }
        self.queuePair = queuePair
        try moveQueuePair(to: IBV_QPS_INIT, "rdma_create_qp(INIT)")
        if portSpace == .udp {
            // A datagram QP is ready as soon as it exists (librdmacm's ucma_init_ud_qp).
            try moveQueuePair(to: IBV_QPS_RTR, "rdma_create_qp(RTR)")
            try moveQueuePair(to: IBV_QPS_RTS, "rdma_create_qp(RTS)")
        }
    }

    func connect(_ parameters: ConnectionParameters) throws(RDMAError) {
        try clamp(parameters)
        _ = try CReturn.minusOneErrno("rdma_connect") {
            withConnectionParameters(parameters) { rdma_connect(pointer, $0) }
        }.get()
    }

    func establish() throws(RDMAError) {
        _ = try CReturn.minusOneErrno("rdma_establish") { rdma_establish(pointer) }.get()
    }

    func accept(_ parameters: ConnectionParameters) throws(RDMAError) {
        try clamp(parameters)
        if portSpace == .tcp, queuePair != nil {
            do throws(RDMAError) {
                try moveQueuePair(to: IBV_QPS_INIT, "rdma_accept(INIT)")
                try moveQueuePair(to: IBV_QPS_RTR, "rdma_accept(RTR)", agreedDepths: true)
                try moveQueuePair(to: IBV_QPS_RTS, "rdma_accept(RTS)", agreedDepths: true)
            } catch {
                try? moveQueuePair(to: IBV_QPS_ERR, "rdma_accept(ERR)")
                throw error
            }
        }
        _ = try CReturn.minusOneErrno("rdma_accept") {
            withConnectionParameters(parameters) { rdma_accept(pointer, $0) }
        }.get()
    }

    func reject(privateData: [UInt8]) throws(RDMAError) {
        _ = try CReturn.minusOneErrno("rdma_reject") {
            privateData.withUnsafeBytes { rdma_reject(pointer, $0.baseAddress, UInt8(privateData.count)) }
        }.get()
    }

    func disconnect() throws(RDMAError) {
        // As librdmacm does for its own QP (ucma_shutdown): flush before the DREQ leaves.
        try? moveQueuePair(to: IBV_QPS_ERR, "rdma_disconnect(ERR)")
        _ = try CReturn.minusOneErrno("rdma_disconnect") { rdma_disconnect(pointer) }.get()
    }

    func migrate(to channel: any ConnectionChannelOperations) throws(RDMAError) {
        guard let verbs = channel as? VerbsConnectionChannel else {
            throw RDMAError(operation: "rdma_migrate_id", kind: .invalidArgument, hint: "the channel belongs to another backend")
        }
        _ = try CReturn.minusOneErrno("rdma_migrate_id") { rdma_migrate_id(pointer, verbs.pointer) }.get()
    }

    var localAddress: ConnectionAddress? {
        guard let address = rdma_get_local_addr(pointer) else { return nil }
        return ConnectionAddress(socketAddress: address)
    }

    var peerAddress: ConnectionAddress? {
        guard let address = rdma_get_peer_addr(pointer) else { return nil }
        return ConnectionAddress(socketAddress: address)
    }

    var deviceName: String? {
        guard let verbs = pointer.pointee.verbs else { return nil }
        return String(cString: ibv_get_device_name(verbs.pointee.device))
    }

    var portNumber: UInt8? { pointer.pointee.verbs == nil ? nil : pointer.pointee.port_num }

    func destroy() throws(RDMAError) {
        _ = try CReturn.minusOneErrno("rdma_destroy_id") { rdma_destroy_id(pointer) }.get()
    }

    /// What this identifier does to its queue pair on an event, before the caller sees it.
    func process(_ record: inout ConnectionEventRecord) {
        switch record.kind {
        case .connectResponse where queuePair != nil:
            // The peer's REP: RTR, RTS, then the RTU (librdmacm's ucma_process_conn_resp),
            // with the READ depths the kernel CM negotiated from the REP.
            // INIT again first, as librdmacm does: only now does the kernel CM know the
            // negotiated READ depths, and with them the remote access flags.
            do throws(RDMAError) {
                try moveQueuePair(to: IBV_QPS_INIT, "connect(INIT)")
                try moveQueuePair(to: IBV_QPS_RTR, "connect(RTR)")
                try moveQueuePair(to: IBV_QPS_RTS, "connect(RTS)")
                try establish()
                record.kind = .established
            } catch {
                try? moveQueuePair(to: IBV_QPS_ERR, "connect(ERR)")
                record.kind = .connectError
                record.status = -(error.errno ?? EINVAL)
            }
        case .disconnected, .rejected, .unreachable, .connectError, .deviceRemoval:
            // Outstanding work completes with a flush error rather than waiting forever.
            try? moveQueuePair(to: IBV_QPS_ERR, "ibv_modify_qp(ERR) on a failure event")
        default:
            break
        }
    }

    /// One state of the attached queue pair, with the attributes the kernel CM gives for
    /// it; with `agreedDepths` (accepting) the READ depths this side chose, as
    /// `rdma_accept` applies them. No-op without a queue pair (or once it is closed).
    private func moveQueuePair(to state: ibv_qp_state, _ operation: StaticString, agreedDepths: Bool = false) throws(RDMAError) {
        guard let queuePair, let verbs = queuePair.currentOperations as? VerbsQueuePair else { return }
        var attributes = ibv_qp_attr()
        attributes.qp_state = state
        var mask: Int32 = 0
        if state != IBV_QPS_ERR {
            _ = try CReturn.minusOneErrno("rdma_init_qp_attr") { rdma_init_qp_attr(pointer, &attributes, &mask) }.get()
        } else {
            mask = Int32(IBV_QP_STATE.rawValue)
        }
        if agreedDepths && state == IBV_QPS_RTR { attributes.max_dest_rd_atomic = responderResources }
        if agreedDepths && state == IBV_QPS_RTS { attributes.max_rd_atomic = initiatorDepth }
        try CReturn.returnedErrno(operation) { ibv_modify_qp(verbs.pointer, &attributes, mask) }.get()
    }

    /// Keeps the READ depths within what the device allows (librdmacm refuses more with
    /// EINVAL) and records them for RTR/RTS.
    private func clamp(_ parameters: ConnectionParameters) throws(RDMAError) {
        responderResources = parameters.responderResources
        initiatorDepth = parameters.initiatorDepth
        guard let verbs = pointer.pointee.verbs else { return }
        var attributes = ibv_device_attr()
        try CReturn.returnedErrno("ibv_query_device") { ibv_query_device(verbs, &attributes) }.get()
        responderResources = UInt8(clamping: min(Int32(responderResources), attributes.max_qp_rd_atom))
        initiatorDepth = UInt8(clamping: min(Int32(initiatorDepth), attributes.max_qp_init_rd_atom))
    }

    /// `parameters` as a C `rdma_conn_param`, with the attached QP's number.
    private func withConnectionParameters(_ parameters: ConnectionParameters,
                                          _ body: (UnsafeMutablePointer<rdma_conn_param>) -> Int32) -> Int32 {
        parameters.privateData.withUnsafeBytes { bytes in
            var raw = rdma_conn_param()
            raw.private_data = bytes.baseAddress
            raw.private_data_len = UInt8(bytes.count)
            raw.responder_resources = responderResources
            raw.initiator_depth = initiatorDepth
            raw.flow_control = parameters.flowControl ? 1 : 0
            raw.retry_count = parameters.retryCount
            raw.rnr_retry_count = parameters.rnrRetryCount
            if let queuePair {
                raw.qp_num = queuePair.number
                raw.srq = queuePair.sharedReceiveQueue != nil ? 1 : 0
            }
            return body(&raw)
        }
    }
}

extension AddressVector {
    /// From the `ibv_ah_attr` of a datagram event.
    init(verbs attributes: ibv_ah_attr) {
        let gid = withUnsafeBytes(of: attributes.grh.dgid.raw) { GID(byteArray: $0)! }
        self.init(destinationGID: gid, sourceGIDIndex: attributes.grh.sgid_index, port: attributes.port_num,
                  destinationLID: attributes.dlid, serviceLevel: attributes.sl, hopLimit: attributes.grh.hop_limit,
                  trafficClass: attributes.grh.traffic_class, flowLabel: attributes.grh.flow_label)
    }
}
