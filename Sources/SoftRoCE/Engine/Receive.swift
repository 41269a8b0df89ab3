import RoCEWire

// The receive role (rxe_recv.c): every datagram is parsed, its ICRC checked, then its
// destination QP, P_Key, QP type and state, and — for RC — its source address checked
// before any role sees it. What fails a check is dropped and counted, never trusted.

extension SoftDevice {
    /// Takes one batch from the wire and runs each datagram through the checks. The
    /// acknowledgements the batch earned (one per QP: ACK coalescing) wait in
    /// `acknowledgementsDue` for the end of the round (`Progress.swift`).
    func receiveBatch(now: UInt64) {
        wire.receive(into: batch)
        if batch.error != 0 { counters.receiveErrors += 1 }
        for index in 0..<batch.count {
            counters.receivedPackets += 1
            receive(batch.datagram(index), from: batch.source(index), ipv4: batch.ipv4Header(index),
                    congestionExperienced: readsECN && batch.trafficClass(index).congestionExperienced, now: now)
        }
    }

    func receive(_ bytes: UnsafeRawBufferPointer, from source: WireEndpoint, ipv4: IPv4HeaderFields, congestionExperienced: Bool, now: UInt64) {
        let packet: RoCEPacket
        do { packet = try RoCEPacket(parsing: bytes) } catch { counters.malformedPackets += 1; return }
        if icrcVerification != .off {
            // Strict: `ipv4` is what the sender's kernel wrote. Otherwise it is the soft
            // sender's ID 0 + DF, which kernel rxe's packets fail.
            let flow = Self.encapsulation(from: source, to: wire.local, ipv4: ipv4)
            do { try ICRC.verify(transportPacket: bytes, encapsulation: flow) } catch { counters.icrcErrors += 1; return }
        }
        let headers = packet.headers
        if headers.bth.destinationQP == .generalServices {
            receiveGeneralServices(headers, packet.payload(in: bytes), from: source.address, now: now)
            return
        }
        guard let qp = queuePairs[headers.bth.destinationQP.rawValue] else { counters.unknownQueuePair += 1; return }
        guard headers.bth.partitionKey == BaseTransportHeader.defaultPartitionKey else { counters.badPartitionKey += 1; return }
        let payload = packet.payload(in: bytes)
        let opcode = headers.bth.opcode
        switch opcode.transport {
        case .reliableConnected where qp.type == .reliableConnected:
            // rxe's check_addr: a connected QP hears only its peer. Without this a datagram
            // from any host that knows a QPN, PSN and rkey could write memory or fail the QP.
            guard let peer = qp.peer, peer.address == source.address else { counters.unexpectedSource += 1; return }
            if congestionExperienced { self.congestionExperienced(qp, now: now) }
            if opcode.isResponse {
                guard qp.isSending else { counters.wrongState += 1; return }
                handleResponse(qp, headers, payload, now: now)
            } else {
                guard qp.state == .readyToReceive || qp.isSending else { counters.wrongState += 1; return }
                handleRequest(qp, headers, payload)
            }
        case .unreliableDatagram where qp.type == .unreliableDatagram:
            guard qp.state == .readyToReceive || qp.isSending else { counters.wrongState += 1; return }
            handleDatagram(qp, headers, payload, source: source.address)
        case .congestionNotification:
            handleCongestionNotification(qp, headers, from: source, now: now)
        default:
            counters.malformedPackets += 1
        }
    }
}
