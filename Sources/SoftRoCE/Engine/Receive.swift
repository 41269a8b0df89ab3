import RoCEWire

// The receive role (rxe_recv.c): every datagram is parsed, its ICRC checked, then its
// destination QP, P_Key, QP type and state, and — for RC — its source address checked
// before any role sees it. What fails a check is dropped and counted, never trusted.

extension SoftDevice {
    /// Takes one batch from `wire` (the round's copy of `self.wire`) and runs each datagram through the checks. The
    /// acknowledgements the batch earned (one per QP: ACK coalescing) wait in
    /// `acknowledgementsDue` for the end of the round (`Progress.swift`).
    func receiveBatch(from wire: any Wire, now: UInt64) {
        wire.receive(into: batch)
        if batch.error != 0 { counters.receiveErrors += 1 }
        for index in 0..<batch.count {
            let datagram = batch.datagram(index), source = batch.source(index), ipv4 = batch.ipv4Header(index)
            let congestionExperienced = readsECN && batch.trafficClass(index).congestionExperienced
            var segment = batch.segmentLength(index)
            if segment == 0 { segment = segmentLength(ofSuperDatagram: datagram) }
            guard segment > 0, segment < datagram.count else {
                counters.receivedPackets += 1
                receive(datagram, from: source, ipv4: ipv4, congestionExperienced: congestionExperienced, now: now)
                continue
            }
            // A GSO super-datagram (`TransmitBatch`): segment k had IPv4 Identification base + k.
            counters.superDatagramsReceived += 1
            var offset = 0, position: UInt16 = 0
            while offset < datagram.count {
                let end = min(offset + segment, datagram.count)
                var fields = ipv4
                fields.identification = ipv4.identification &+ position
                counters.receivedPackets += 1
                receive(UnsafeRawBufferPointer(rebasing: datagram[offset..<end]), from: source, ipv4: fields,
                        congestionExperienced: congestionExperienced, now: now)
                offset = end
                position &+= 1
            }
        }
    }

    /// The segment size of a super-datagram a raw socket delivered whole (loopback and veth
    /// keep GSO packets unsegmented and say nothing of their segment size): a batch opens only
    /// with a full-MTU packet of a 12-byte header (`opensSegmentBatch`), so its first segment is
    /// BTH + the destination QP's MTU + ICRC. 0 when the datagram is not longer than that (one
    /// packet) or names no RC QP — it then goes through the checks whole, and fails them.
    func segmentLength(ofSuperDatagram datagram: UnsafeRawBufferPointer) -> Int {
        guard datagram.count > BaseTransportHeader.byteCount + 256 + 4 else { return 0 }
        guard let opcode = Opcode(rawValue: datagram[0]), Self.opensSegmentBatch(opcode) else { return 0 }
        let destination = UInt32(datagram[5]) << 16 | UInt32(datagram[6]) << 8 | UInt32(datagram[7])
        guard let qp = queuePair(numbered: destination), qp.type == .reliableConnected else { return 0 }
        let length = BaseTransportHeader.byteCount + qp.mtu + 4
        return datagram.count > length ? length : 0
    }

    /// `queuePairs[number]`, answered without hashing when the packet before was for the same QP.
    @inline(__always)
    func queuePair(numbered number: UInt32) -> SoftQueuePair? {
        lastQueuePairLookup.value(number, in: queuePairs)
    }

    func receive(_ bytes: UnsafeRawBufferPointer, from source: WireEndpoint, ipv4: IPv4HeaderFields, congestionExperienced: Bool, now: UInt64) {
        let packet: RoCEPacket
        do { packet = try RoCEPacket(parsing: bytes) } catch { counters.malformedPackets += 1; return }
        if icrcVerification != .off {
            // Strict: `ipv4` is what the sender's kernel wrote. Otherwise it is the soft
            // sender's ID 0 + DF, which kernel rxe's packets fail.
            let flow = Self.encapsulation(from: source, to: WireEndpoint(address, port: port), ipv4: ipv4)
            do { try ICRC.verify(transportPacket: bytes, encapsulation: flow) } catch { counters.icrcErrors += 1; return }
        }
        let headers = packet.headers
        if headers.bth.destinationQP == .generalServices {
            receiveGeneralServices(headers, packet.payload(in: bytes), from: source.address, now: now)
            return
        }
        guard let qp = queuePair(numbered: headers.bth.destinationQP.rawValue) else { counters.unknownQueuePair += 1; return }
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
