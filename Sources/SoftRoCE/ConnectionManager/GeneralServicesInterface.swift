import RoCEWire

// QP 1 on the wire (the general services interface): CM MADs arrive as UD SEND_ONLY to
// destination QP 1 with the GSI Q_Key in the DETH and a 256-byte MAD; they leave the same
// way, from source QP 1, to the peer's RoCEv2 port. Everything is checked before the CM
// sees it, the way kernel rxe (check_keys) and the MAD layer (validate_mad) check it.

extension SoftDevice {
    /// The UDP source port of QP 1's packets (rxe's hash of QPN 1, like every QP's).
    static let generalServicesSourcePort: UInt16 = 0xC000 | UInt16((UInt32(1) &* 0x61C8_8647) >> 18)

    func receiveGeneralServices(_ headers: TransportHeaders, _ payload: UnsafeRawBufferPointer, from source: SoftAddress, now: UInt64) {
        // Like a kernel, the device answers CM MADs even if nobody opened its manager yet
        // (a REQ then finds no listener: REJ 8 at once, not a peer waiting for timeouts).
        guard let management = connectionManagement ?? openDefaultConnectionManagement() else { counters.unknownQueuePair += 1; return }
        guard headers.bth.opcode == .udSendOnly, let deth = headers.datagram else { counters.managementMalformed += 1; return }
        guard headers.bth.partitionKey == BaseTransportHeader.defaultPartitionKey else { counters.badPartitionKey += 1; return }
        guard deth.queueKey == ConnectionManagementDatagram.generalServicesQueueKey else {
            counters.badQueueKey += 1
            counters.managementBadQueueKey += 1
            return
        }
        let datagram: ConnectionManagementDatagram
        do { datagram = try ConnectionManagementDatagram(parsing: payload) } catch { counters.managementMalformed += 1; return }
        counters.managementReceived += 1
        switch datagram.message {
        case .request(let request): receiveRequest(request, transactionID: datagram.header.transactionID, from: source, management, now: now)
        case .reply(let reply): receiveReply(reply, from: source, management, now: now)
        case .readyToUse(let notice): receiveReadyToUse(notice, from: source, management)
        case .reject(let reject): receiveReject(reject, from: source, management)
        case .messageReceiptAcknowledgement(let mra): receiveMessageReceiptAcknowledgement(mra, from: source, management, now: now)
        case .disconnectRequest(let notice): receiveDisconnectRequest(notice, transactionID: datagram.header.transactionID, from: source, management, now: now)
        case .disconnectReply(let notice): receiveDisconnectReply(notice, from: source, management, now: now)
        }
    }

    /// Seeds communication IDs and PSNs differently per device and run.
    var defaultConnectionManagementSeed: UInt64 { clock.now() ^ UInt64(port) << 48 }

    func openDefaultConnectionManagement() -> ConnectionManagerCore? {
        let configuration = SoftConnectionManagerConfiguration()
        connectionManagement = try? ConnectionManagerCore(configuration: configuration, address: address, seed: defaultConnectionManagementSeed)
        return connectionManagement
    }

    /// Serializes `message` and sends it to `peer`'s QP 1; returns the MAD (kept for resending).
    @discardableResult
    func sendManagement(_ message: ConnectionManagementDatagram.ConnectionManagementMessage, transactionID: UInt64, to peer: SoftAddress,
                        _ management: ConnectionManagerCore) -> [UInt8] {
        guard let mad = try? ConnectionManagementDatagram(transactionID: transactionID, message: message).serialized() else {
            counters.sendFailed += 1
            return []
        }
        resendManagement(mad, to: peer, management)
        return mad
    }

    /// Sends an already serialized MAD again.
    func resendManagement(_ mad: [UInt8], to peer: SoftAddress, _ management: ConnectionManagerCore) {
        guard mad.count == ConnectionManagementDatagram.byteCount else { return }
        var headers = TransportHeaders(BaseTransportHeader(opcode: .udSendOnly, destinationQP: .generalServices, psn: management.generalServicesPSN))
        headers.datagram = DETH(queueKey: ConnectionManagementDatagram.generalServicesQueueKey, sourceQP: .generalServices)
        management.generalServicesPSN += 1
        mad.withUnsafeBytes { (sendBuffer + headers.byteCount).copyMemory(from: $0.baseAddress!, byteCount: mad.count) }
        if emit(headers, payloadLength: mad.count, fromPort: Self.generalServicesSourcePort, to: WireEndpoint(peer, port: peerPort)) {
            counters.managementSent += 1
        }
    }
}
