#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import RoCEWire

// The connection handshake (IBTA 12.9, the kernel's cm.c + cma.c): the active side sends a
// REQ (rdma_cm's service ID and cma_hdr in it), the passive side delivers a CONNECT_REQUEST
// and answers REP or REJ, the active side answers the REP with RTU. The CM moves each side's
// QP INIT → RTR → RTS itself, as rdma_cm does for a QP made with rdma_create_qp.

extension SoftDevice {
    func connectLocked(queuePair qp: SoftQueuePair, to peer: SoftAddress, port: UInt16, privateData: [UInt8],
                       parameters: SoftConnectionParameters, timeoutNanoseconds: UInt64?, id reserved: UInt32?,
                       _ management: ConnectionManagerCore) throws(SoftRoCEError) -> UInt32 {
        try checkConnectable(qp, "connect")
        guard privateData.count <= RDMAConnectionManagerHeader.userPrivateDataCapacity else {
            throw SoftRoCEError("connect", errno: EINVAL, "private data of \(privateData.count) bytes exceeds the REQ's \(RDMAConnectionManagerHeader.userPrivateDataCapacity)")
        }
        let now = clock.now()
        let events = try management.takeIdle(reserved, "connect")
        let id = reserved ?? management.allocateIdentifier()
        let connection = ConnectionRecord(id: id, isActive: true, state: .requestSent, peer: peer, peerPort: port,
                                          localPort: management.allocatePort(), transactionID: management.nextRandom(),
                                          parameters: parameters, pathMTU: management.configuration.pathMTU, events: events)
        connection.localStartingPSN = UInt32(truncatingIfNeeded: management.nextRandom()) & QueuePairNumber.mask
        do { try initialize(qp, parameters: parameters) } catch {
            if let reserved { management.idleIdentifiers[reserved] = events }
            throw error
        }
        connection.queuePair = qp
        var request = ConnectRequest()
        request.localCommunicationID = id
        request.serviceID = RDMAServiceID(port: port).rawValue
        request.localCAGUID = management.caGUID
        request.localQueuePairNumber = qp.queuePairNumber
        request.responderResources = parameters.responderResources
        request.initiatorDepth = parameters.initiatorDepth
        request.remoteCMResponseTimeout = min(management.configuration.responseTimeout, 31)
        request.localCMResponseTimeout = min(management.configuration.responseTimeout, 31)
        request.startingPSN = PacketSequenceNumber(truncating: connection.localStartingPSN)
        request.retryCount = parameters.retryCount
        request.rnrRetryCount = parameters.rnrRetryCount
        request.pathMTU = connection.pathMTU
        request.maxCMRetries = min(management.configuration.maxRetries, 15)
        request.primaryLocalGID = address.ipv6Value
        request.primaryRemoteGID = peer.ipv6Value
        request.primaryLocalACKTimeout = min(management.configuration.ackTimeout, 31)
        let header = RDMAConnectionManagerHeader(source: address.connectionManagerAddress, sourcePort: connection.localPort,
                                                 destination: peer.connectionManagerAddress)
        request.privateData = header.bytes + privateData
        management.connections[id] = connection
        connection.lastMessage = sendManagement(.request(request), transactionID: connection.transactionID, to: peer, management)
        connection.retriesLeft = Int(management.configuration.maxRetries)
        if let timeoutNanoseconds { connection.handshakeDeadline = now + timeoutNanoseconds }
        management.arm(connection, at: min(now + management.responseNanoseconds, connection.handshakeDeadline == 0 ? .max : connection.handshakeDeadline))
        return id
    }

    func receiveRequest(_ request: ConnectRequest, transactionID: UInt64, from source: SoftAddress, _ management: ConnectionManagerCore, now: UInt64) {
        let header: RDMAConnectionManagerHeader
        do { header = try RDMAConnectionManagerHeader(parsing: request.privateData) } catch { counters.managementMalformed += 1; return }
        func refuse(_ reason: ConnectRejectReason) {
            sendManagement(.reject(ConnectReject(remoteCommunicationID: request.localCommunicationID, rejectedMessage: .request, reason: reason)),
                           transactionID: transactionID, to: source, management)
        }
        if let existing = management.connection(peer: source, remoteCommunicationID: request.localCommunicationID, remoteCAGUID: request.localCAGUID) {
            // A duplicate REQ (our REP or their wait was lost): answer what we answered before.
            counters.managementDuplicates += 1
            switch existing.state {
            case .replySent: resendManagement(existing.lastMessage, to: source, management)
            case .timewait: refuse(.staleConnection)
            default: break
            }
            return
        }
        if management.connections.values.contains(where: { $0.peer == source && $0.remoteCAGUID == request.localCAGUID
                                                          && $0.remoteQueuePairNumber == request.localQueuePairNumber.rawValue && !$0.isActive }) {
            refuse(.staleConnection)   // that QP is still connected to us, or in timewait
            return
        }
        guard request.transportServiceType == 0 else { refuse(.invalidTransportType); return }
        guard let service = try? RDMAServiceID(rawValue: request.serviceID), service.portSpace == .tcp,
              let listener = management.listeners.values.first(where: { $0.port == service.port
                  && ($0.address == nil || $0.address?.connectionManagerAddress == header.destination) }) else {
            refuse(.invalidServiceID)
            return
        }
        let waiting = management.connections.values.count { $0.listenerID == listener.id && $0.state == .requestReceived }
        guard waiting < listener.backlog else { refuse(.noResources); return }
        let parameters = SoftConnectionParameters(responderResources: request.responderResources, initiatorDepth: request.initiatorDepth,
                                                  retryCount: request.retryCount, rnrRetryCount: request.rnrRetryCount)
        let mtu = PathMTU(rawValue: min(request.pathMTU.rawValue, management.configuration.pathMTU.rawValue)) ?? .bytes1024
        let connection = ConnectionRecord(id: management.allocateIdentifier(), isActive: false, state: .requestReceived, peer: source,
                                          peerPort: header.sourcePort, localPort: listener.port, transactionID: transactionID,
                                          parameters: parameters, pathMTU: mtu, events: listener.events)
        connection.listenerID = listener.id
        connection.remoteCommunicationID = request.localCommunicationID
        connection.remoteCAGUID = request.localCAGUID
        connection.remoteQueuePairNumber = request.localQueuePairNumber.rawValue
        connection.remoteStartingPSN = request.startingPSN.rawValue
        management.connections[connection.id] = connection
        management.post(SoftConnectionEvent(.connectRequest, id: connection.id, peer: source, peerPort: header.sourcePort,
                                            privateData: Array(request.privateData[RDMAConnectionManagerHeader.byteCount...]),
                                            parameters: parameters, listenerID: listener.id), to: listener.events)
    }

    func acceptLocked(_ id: UInt32, queuePair qp: SoftQueuePair, privateData: [UInt8], parameters: SoftConnectionParameters,
                      _ management: ConnectionManagerCore) throws(SoftRoCEError) {
        guard let connection = management.connections[id], !connection.destroyed, connection.state == .requestReceived else {
            throw SoftRoCEError("accept", errno: EINVAL, "id \(id) is not a connection request waiting for an answer")
        }
        try checkConnectable(qp, "accept")
        guard privateData.count <= ConnectReply.privateDataCapacity else {
            throw SoftRoCEError("accept", errno: EINVAL, "private data of \(privateData.count) bytes exceeds the REP's \(ConnectReply.privateDataCapacity)")
        }
        connection.localStartingPSN = UInt32(truncatingIfNeeded: management.nextRandom()) & QueuePairNumber.mask
        try initialize(qp, parameters: parameters)
        try makeReadyToSend(qp, connection, retryCount: connection.parameters.retryCount, rnrRetryCount: parameters.rnrRetryCount, management)
        connection.queuePair = qp
        var reply = ConnectReply()
        reply.localCommunicationID = connection.id
        reply.remoteCommunicationID = connection.remoteCommunicationID
        reply.localQueuePairNumber = qp.queuePairNumber
        reply.startingPSN = PacketSequenceNumber(truncating: connection.localStartingPSN)
        reply.responderResources = parameters.responderResources
        reply.initiatorDepth = parameters.initiatorDepth
        reply.rnrRetryCount = parameters.rnrRetryCount
        reply.localCAGUID = management.caGUID
        reply.privateData = privateData
        connection.state = .replySent
        connection.lastMessage = sendManagement(.reply(reply), transactionID: connection.transactionID, to: connection.peer, management)
        connection.retriesLeft = Int(management.configuration.maxRetries)
        management.arm(connection, at: clock.now() + management.responseNanoseconds)
    }

    func rejectLocked(_ id: UInt32, privateData: [UInt8], reason: ConnectRejectReason, _ management: ConnectionManagerCore) throws(SoftRoCEError) {
        guard let connection = management.connections[id], !connection.destroyed, connection.state == .requestReceived else {
            throw SoftRoCEError("reject", errno: EINVAL, "id \(id) is not a connection request waiting for an answer")
        }
        guard privateData.count <= ConnectReject.privateDataCapacity else {
            throw SoftRoCEError("reject", errno: EINVAL, "private data of \(privateData.count) bytes exceeds the REJ's \(ConnectReject.privateDataCapacity)")
        }
        sendReject(connection, reason: reason, privateData: privateData, management)
        management.connections[id] = nil
    }

    func sendReject(_ connection: ConnectionRecord, reason: ConnectRejectReason, privateData: [UInt8] = [], _ management: ConnectionManagerCore) {
        // What is refused: the peer's REQ (passive side), its REP (active side, once one came).
        let kind: ConnectionManagementMessageKind = !connection.isActive ? .request : connection.remoteCommunicationID != 0 ? .reply : .other
        sendManagement(.reject(ConnectReject(localCommunicationID: connection.id, remoteCommunicationID: connection.remoteCommunicationID,
                                             rejectedMessage: kind, reason: reason, privateData: privateData)),
                       transactionID: connection.transactionID, to: connection.peer, management)
    }

    func receiveReply(_ reply: ConnectReply, from source: SoftAddress, _ management: ConnectionManagerCore, now: UInt64) {
        guard let connection = management.connections[reply.remoteCommunicationID], connection.isActive, connection.peer == source else {
            counters.managementUnmatched += 1
            return
        }
        switch connection.state {
        case .requestSent: break
        case .established where reply.localCommunicationID == connection.remoteCommunicationID:
            counters.managementDuplicates += 1   // our RTU was lost: send it again
            resendManagement(connection.lastMessage, to: source, management)
            return
        default:
            counters.managementUnmatched += 1
            return
        }
        connection.remoteCommunicationID = reply.localCommunicationID
        connection.remoteQueuePairNumber = reply.localQueuePairNumber.rawValue
        connection.remoteStartingPSN = reply.startingPSN.rawValue
        connection.remoteCAGUID = reply.localCAGUID
        connection.deadline = 0
        guard let qp = connection.queuePair,
              (try? makeReadyToSend(qp, connection, retryCount: connection.parameters.retryCount,
                                    rnrRetryCount: connection.parameters.rnrRetryCount, management)) != nil else {
            sendReject(connection, reason: .noQueuePair, management)
            fail(connection, .connectError, status: -EINVAL, management)
            return
        }
        connection.state = .established
        connection.lastMessage = sendManagement(.readyToUse(ConnectionManagementNotice(localCommunicationID: connection.id,
                                                                                       remoteCommunicationID: connection.remoteCommunicationID)),
                                                transactionID: connection.transactionID, to: source, management)
        management.recomputeDeadline()
        if !connection.destroyed {
            let parameters = SoftConnectionParameters(responderResources: reply.responderResources, initiatorDepth: reply.initiatorDepth,
                                                      retryCount: connection.parameters.retryCount, rnrRetryCount: reply.rnrRetryCount)
            management.post(SoftConnectionEvent(.established, id: connection.id, peer: source, peerPort: connection.peerPort,
                                                privateData: reply.privateData, parameters: parameters), to: connection.events)
        }
    }

    func receiveReadyToUse(_ notice: ConnectionManagementNotice, from source: SoftAddress, _ management: ConnectionManagerCore) {
        guard let connection = management.connections[notice.remoteCommunicationID], !connection.isActive, connection.peer == source,
              connection.remoteCommunicationID == notice.localCommunicationID else {
            counters.managementUnmatched += 1
            return
        }
        guard connection.state == .replySent else { counters.managementDuplicates += 1; return }
        connection.state = .established
        connection.deadline = 0
        management.recomputeDeadline()
        if !connection.destroyed {
            management.post(SoftConnectionEvent(.established, id: connection.id, peer: source, peerPort: connection.peerPort,
                                                parameters: connection.parameters), to: connection.events)
        }
    }

    func receiveReject(_ reject: ConnectReject, from source: SoftAddress, _ management: ConnectionManagerCore) {
        guard let connection = management.connections[reject.remoteCommunicationID], connection.peer == source,
              connection.state == .requestSent || connection.state == .replySent else {
            counters.managementUnmatched += 1
            return
        }
        fail(connection, .rejected, status: Int32(reject.reason.rawValue), reason: reject.reason, privateData: reject.privateData, management)
    }

    func receiveMessageReceiptAcknowledgement(_ acknowledgement: MessageReceiptAcknowledgement, from source: SoftAddress,
                                              _ management: ConnectionManagerCore, now: UInt64) {
        guard let connection = management.connections[acknowledgement.remoteCommunicationID], connection.peer == source,
              (connection.state == .requestSent && acknowledgement.acknowledgedMessage == .request)
                || (connection.state == .replySent && acknowledgement.acknowledgedMessage == .reply) else {
            counters.managementUnmatched += 1
            return
        }
        // The peer needs longer: wait its service timeout on top of ours, without using a retry.
        let extra: UInt64 = 4096 << UInt64(acknowledgement.serviceTimeout)
        var deadline = now + extra + management.responseNanoseconds
        if connection.handshakeDeadline != 0 { deadline = min(deadline, connection.handshakeDeadline) }
        connection.deadline = 0
        management.recomputeDeadline()
        management.arm(connection, at: deadline)
    }

    /// Ends a handshake that failed: the QP to error (rdma_cm's cma_modify_qp_err), one event,
    /// the record gone.
    func fail(_ connection: ConnectionRecord, _ kind: SoftConnectionEventKind, status: Int32, reason: ConnectRejectReason? = nil,
              privateData: [UInt8] = [], _ management: ConnectionManagerCore) {
        if let qp = connection.queuePair, qp.state != .error, qp.state != .reset { enterError(qp) }
        connection.queuePair = nil
        management.connections[connection.id] = nil
        management.recomputeDeadline()
        if !connection.destroyed {
            management.post(SoftConnectionEvent(kind, id: connection.id, peer: connection.peer, peerPort: connection.peerPort,
                                                privateData: privateData, rejectReason: reason, status: status), to: connection.events)
        }
    }

    // MARK: - Queue pair transitions

    private func checkConnectable(_ qp: SoftQueuePair, _ operation: String) throws(SoftRoCEError) {
        guard !closed else { throw SoftRoCEError(operation, errno: ENODEV, "the device is closed") }
        guard queuePairs[qp.number] === qp else { throw SoftRoCEError(operation, errno: EINVAL, "the queue pair is not one of this device's") }
        guard qp.type == .reliableConnected else { throw SoftRoCEError(operation, errno: EINVAL, "the CM connects RC queue pairs only") }
        guard qp.state == .reset || qp.state == .initialized else {
            throw SoftRoCEError(operation, errno: EINVAL, "the queue pair is \(qp.state), expected RESET or INIT (the CM moves it)")
        }
    }

    /// RESET/INIT → INIT with the access rdma_cm gives (ib_cm_init_qp_attr): remote write, and
    /// remote read and atomics when the peer may have any outstanding.
    private func initialize(_ qp: SoftQueuePair, parameters: SoftConnectionParameters) throws(SoftRoCEError) {
        var initial = SoftQueuePairAttributes(state: .initialized)
        initial.access = parameters.responderResources > 0 ? [.localWrite, .remoteWrite, .remoteRead, .remoteAtomic] : [.localWrite, .remoteWrite]
        initial.pkeyIndex = 0
        try modifyLocked(qp, initial)
    }

    /// INIT → RTR → RTS towards the connection's peer. A REQ's or REP's starting PSN is the
    /// PSN its *sender* will receive from (cm.c: `rq_psn` is the REQ's starting PSN on the
    /// active side and the REP's on the passive side): we receive from the PSN we sent and
    /// send from the one the peer sent.
    private func makeReadyToSend(_ qp: SoftQueuePair, _ connection: ConnectionRecord, retryCount: UInt8, rnrRetryCount: UInt8,
                                 _ management: ConnectionManagerCore) throws(SoftRoCEError) {
        var ready = SoftQueuePairAttributes(state: .readyToReceive)
        ready.pathMTU = connection.pathMTU.byteCount
        ready.destination = connection.peer
        ready.destinationQueuePairNumber = connection.remoteQueuePairNumber
        ready.receivePSN = connection.localStartingPSN
        ready.minRNRTimer = 12
        try modifyLocked(qp, ready)
        var send = SoftQueuePairAttributes(state: .readyToSend)
        send.sendPSN = connection.remoteStartingPSN
        send.timeout = management.configuration.ackTimeout
        send.retryCount = retryCount
        send.rnrRetry = rnrRetryCount
        try modifyLocked(qp, send)
    }
}

extension SoftAddress {
    /// The form cma_hdr carries.
    var connectionManagerAddress: RDMAConnectionManagerHeader.Address {
        switch self {
        case .ipv4(let value): .ipv4(value)
        case .ipv6(let high, let low): .ipv6(GlobalIdentifier(high: high, low: low))
        }
    }
}
