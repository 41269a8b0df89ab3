#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import RoCEWire

// Disconnection (IBTA 12.9.7), timewait and the CM's timers: DREQ → DREP → timewait on
// both sides, the QP to error first (so outstanding work completes flushed), a DREQ for
// a connection we do not know answered with a DREP (as cm.c's cm_issue_drep), and each
// REQ/REP/DREQ resent on its response timeout until the retries run out.

extension SoftDevice {
    func disconnectLocked(_ id: UInt32, _ management: ConnectionManagerCore) throws(SoftRoCEError) {
        guard let connection = management.connections[id], !connection.destroyed else {
            throw SoftRoCEError("disconnect", errno: EINVAL, "id \(id) is not a connection")
        }
        switch connection.state {
        case .established, .replySent:
            sendDisconnectRequest(connection, management)
        case .disconnectRequestSent, .timewait:
            return
        case .requestSent, .requestReceived:
            throw SoftRoCEError("disconnect", errno: EINVAL, "id \(id) is not connected yet (destroy it to abandon the handshake)")
        }
    }

    private func sendDisconnectRequest(_ connection: ConnectionRecord, _ management: ConnectionManagerCore) {
        if let qp = connection.queuePair, qp.state != .error, qp.state != .reset { enterError(qp) }
        connection.state = .disconnectRequestSent
        let request = ConnectionManagementNotice(localCommunicationID: connection.id, remoteCommunicationID: connection.remoteCommunicationID,
                                                 remoteQueuePairNumber: QueuePairNumber(exactly: connection.remoteQueuePairNumber) ?? 0)
        connection.lastMessage = sendManagement(.disconnectRequest(request), transactionID: connection.transactionID, to: connection.peer, management)
        connection.retriesLeft = Int(management.configuration.maxRetries)
        connection.deadline = 0
        management.recomputeDeadline()
        management.arm(connection, at: clock.now() + management.responseNanoseconds)
    }

    /// Destroys a listener (its unanswered requests are rejected) or a connection (a live one
    /// is disconnected first; the record stays for timewait, silently). Idempotent.
    func destroyLocked(_ id: UInt32, _ management: ConnectionManagerCore) {
        if management.idleIdentifiers.removeValue(forKey: id) != nil { return }
        if management.listeners.removeValue(forKey: id) != nil {
            for connection in management.connections.values where connection.listenerID == id && connection.state == .requestReceived {
                sendReject(connection, reason: .consumerDefined, management)
                management.connections[connection.id] = nil
            }
            return
        }
        guard let connection = management.connections[id], !connection.destroyed else { return }
        connection.destroyed = true
        switch connection.state {
        case .requestSent:
            sendReject(connection, reason: .timeout, management)
            management.connections[id] = nil
        case .requestReceived, .replySent:
            sendReject(connection, reason: .consumerDefined, management)
            if let qp = connection.queuePair, qp.state != .error, qp.state != .reset { enterError(qp) }
            management.connections[id] = nil
        case .established:
            sendDisconnectRequest(connection, management)
        case .disconnectRequestSent, .timewait:
            break
        }
        management.recomputeDeadline()
    }

    func receiveDisconnectRequest(_ request: ConnectionManagementNotice, transactionID: UInt64, from source: SoftAddress,
                                  _ management: ConnectionManagerCore, now: UInt64) {
        guard let connection = management.connections[request.remoteCommunicationID], connection.peer == source,
              connection.remoteCommunicationID == request.localCommunicationID else {
            // Unknown (already gone): a DREP lets the peer finish at once instead of retrying.
            counters.managementUnmatched += 1
            sendManagement(.disconnectReply(ConnectionManagementNotice(localCommunicationID: request.remoteCommunicationID,
                                                                       remoteCommunicationID: request.localCommunicationID)),
                           transactionID: transactionID, to: source, management)
            return
        }
        guard request.remoteQueuePairNumber.rawValue == connection.queuePair?.number || connection.state == .timewait else {
            counters.managementUnmatched += 1
            return
        }
        switch connection.state {
        case .established, .replySent, .disconnectRequestSent:
            if let qp = connection.queuePair, qp.state != .error, qp.state != .reset { enterError(qp) }
            enterTimewait(connection, now: now, management)
            resendManagement(connection.lastMessage, to: source, management)
            if !connection.destroyed {
                management.post(SoftConnectionEvent(.disconnected, id: connection.id, peer: source, peerPort: connection.peerPort), to: connection.events)
            }
        case .timewait:
            counters.managementDuplicates += 1
            resendManagement(connection.lastMessage, to: source, management)
        case .requestSent, .requestReceived:
            counters.managementUnmatched += 1
        }
    }

    func receiveDisconnectReply(_ reply: ConnectionManagementNotice, from source: SoftAddress, _ management: ConnectionManagerCore, now: UInt64) {
        guard let connection = management.connections[reply.remoteCommunicationID], connection.peer == source,
              connection.remoteCommunicationID == reply.localCommunicationID else {
            counters.managementUnmatched += 1
            return
        }
        guard connection.state == .disconnectRequestSent else { counters.managementDuplicates += 1; return }
        enterTimewait(connection, now: now, management)
        if !connection.destroyed {
            management.post(SoftConnectionEvent(.disconnected, id: connection.id, peer: source, peerPort: connection.peerPort), to: connection.events)
        }
    }

    /// Closed: the QP is handed back to its owner; the record remembers the peer's QPN and CA
    /// GUID (stale REQs are refused) and a DREP for duplicate DREQs until timewait ends.
    private func enterTimewait(_ connection: ConnectionRecord, now: UInt64, _ management: ConnectionManagerCore) {
        connection.state = .timewait
        connection.queuePair = nil
        connection.lastMessage = (try? ConnectionManagementDatagram(
            transactionID: connection.transactionID,
            message: .disconnectReply(ConnectionManagementNotice(localCommunicationID: connection.id,
                                                                 remoteCommunicationID: connection.remoteCommunicationID))).serialized()) ?? []
        connection.deadline = 0
        management.recomputeDeadline()
        management.arm(connection, at: now + management.timewaitNanoseconds)
    }

    /// Runs the timers that are due: resend, give up, or end timewait.
    func serviceConnectionTimers(_ management: ConnectionManagerCore, now: UInt64) {
        let due = management.connections.values.filter { $0.deadline != 0 && $0.deadline <= now }
        for connection in due {
            connection.deadline = 0
            switch connection.state {
            case .requestSent, .replySent, .disconnectRequestSent:
                let handshakeOver = connection.handshakeDeadline != 0 && now >= connection.handshakeDeadline
                if connection.retriesLeft > 0 && !handshakeOver {
                    connection.retriesLeft -= 1
                    counters.managementRetransmits += 1
                    resendManagement(connection.lastMessage, to: connection.peer, management)
                    var deadline = now + management.responseNanoseconds
                    if connection.handshakeDeadline != 0 { deadline = min(deadline, connection.handshakeDeadline) }
                    management.arm(connection, at: deadline)
                    continue
                }
                counters.managementTimeouts += 1
                if connection.state == .disconnectRequestSent {
                    enterTimewait(connection, now: now, management)
                    if !connection.destroyed {
                        management.post(SoftConnectionEvent(.disconnected, id: connection.id, peer: connection.peer, peerPort: connection.peerPort),
                                        to: connection.events)
                    }
                } else {
                    // cma reports a REQ or REP that was never answered as UNREACHABLE, -ETIMEDOUT.
                    fail(connection, .unreachable, status: -ETIMEDOUT, management)
                }
            case .timewait:
                management.connections[connection.id] = nil
                if !connection.destroyed { management.post(SoftConnectionEvent(.timewaitExit, id: connection.id, peer: connection.peer), to: connection.events) }
            case .requestReceived, .established:
                break
            }
        }
        management.recomputeDeadline()
    }
}
