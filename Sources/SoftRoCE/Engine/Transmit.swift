import RoCEWire

// Every packet leaves through `emit`: headers serialized in front of the payload already
// placed in `sendBuffer`, the ICRC sealed over the IP/UDP pseudo-header of this flow, the
// datagram handed to the wire and the outcome counted.

extension SoftDevice {
    /// Sends `headers` + the `payloadLength` bytes already at `sendBuffer + headers.byteCount`
    /// to `destination`, from `qp`'s UDP source port where the wire can choose it. Returns
    /// false when the wire refused it (counted by kind).
    @discardableResult @inline(__always)
    func emit(_ headers: TransportHeaders, payloadLength: Int, from qp: SoftQueuePair, to destination: WireEndpoint) -> Bool {
        emit(headers, payloadLength: payloadLength, fromPort: qp.udpSourcePort, to: destination)
    }

    /// `emit` with the IP header's DSCP/ECN chosen per packet (a CNP's differ from data's).
    @discardableResult @inline(__always)
    func emit(_ headers: TransportHeaders, payloadLength: Int, from qp: SoftQueuePair, to destination: WireEndpoint,
              trafficClass: TrafficClass) -> Bool {
        emit(headers, payloadLength: payloadLength, fromPort: qp.udpSourcePort, to: destination, trafficClass: trafficClass)
    }

    /// `emit` for any sender, also one that is not a `SoftQueuePair` (the CM's QP 1):
    /// `udpSourcePort` is used where the wire can choose the port; `trafficClass` nil is data's.
    @discardableResult
    func emit(_ headers: TransportHeaders, payloadLength: Int, fromPort udpSourcePort: UInt16, to destination: WireEndpoint,
              trafficClass: TrafficClass? = nil) -> Bool {
        let trafficClass = trafficClass ?? dataTrafficClass
        let buffer = UnsafeMutableRawBufferPointer(start: sendBuffer, count: Self.maxPacket)
        let payload = UnsafeRawBufferPointer(start: sendBuffer + headers.byteCount, count: payloadLength)
        guard let total = try? RoCEPacket.serialize(headers: headers, payload: payload, into: buffer) else {
            counters.sendFailed += 1
            return false
        }
        let packet = UnsafeMutableRawBufferPointer(start: sendBuffer, count: total)
        // One strong copy per packet: each call through the stored `wire` retains and releases it.
        let wire = self.wire
        let sourcePort = wire.choosesSourcePort ? udpSourcePort : port
        let ipv4 = wire.prepareSend(length: total, from: sourcePort, to: destination, trafficClass: trafficClass,
                                    batchRole: Self.batchRole(headers.bth.opcode))
        let flow = Self.encapsulation(from: WireEndpoint(address, port: sourcePort), to: destination, ipv4: ipv4)
        guard (try? ICRC.seal(transportPacket: packet, encapsulation: flow)) != nil else {
            counters.sendFailed += 1
            return false
        }
        let result = wire.send(UnsafeRawBufferPointer(packet), from: sourcePort, to: destination, trafficClass: trafficClass)
        if result == .sent { counters.sentPackets += 1; return true }
        countSendFailure(result)
        return false
    }

    /// Counts a wire's refusal by kind.
    func countSendFailure(_ failure: WireSendResult) {
        switch failure {
        case .sent: break
        case .wouldBlock: counters.sendWouldBlock += 1
        case .noBuffers: counters.sendNoBuffers += 1
        case .refused: counters.sendRefused += 1
        case .failed: counters.sendFailed += 1
        }
    }

    /// Runs `body` (a transmit pass) with the wire holding datagrams back, then sends what it
    /// held as GSO super-datagrams (`TransmitBatch`). Packets the batch loses on a failed send
    /// were counted as sent: the retransmit timer recovers them, as for any loss on the path.
    @inline(__always)
    func batchingSends(_ body: () -> Void) {
        let wire = self.wire
        wire.holdSends()
        body()
        countSendFailure(wire.releaseSends())
    }

    /// The packets a receiver can cut a super-datagram after without being told the segment
    /// size: a 12-byte BTH, exactly the QP's MTU of payload, the ICRC (`Receive.swift`).
    @inline(__always)
    static func opensSegmentBatch(_ opcode: Opcode) -> Bool {
        opcode == .rcSendFirst || opcode == .rcSendMiddle || opcode == .rcRDMAWriteMiddle || opcode == .rcRDMAReadResponseMiddle
    }

    /// `opensSegmentBatch`, or the first packet of a WRITE or READ response whose middle
    /// packets open a batch next (`BatchRole.leads`).
    @inline(__always)
    static func batchRole(_ opcode: Opcode) -> BatchRole {
        if opensSegmentBatch(opcode) { return .opens }
        return opcode == .rcRDMAWriteFirst || opcode == .rcRDMAReadResponseFirst ? .leads : .none
    }

    /// The IP and UDP fields the ICRC covers for a datagram from `source` to `destination`
    /// whose IPv4 header (if IPv4) carries `ipv4`.
    static func encapsulation(from source: WireEndpoint, to destination: WireEndpoint, ipv4: IPv4HeaderFields = .softSender) -> RoCEEncapsulation {
        switch (source.address, destination.address) {
        case (.ipv4(let from), .ipv4(let to)):
            return RoCEEncapsulation(network: .ipv4(source: .init(rawValue: from), destination: .init(rawValue: to),
                                                    identification: ipv4.identification, flagsAndFragmentOffset: ipv4.flagsAndFragmentOffset),
                                     sourcePort: source.port, destinationPort: destination.port)
        default:
            return RoCEEncapsulation(network: .ipv6(source: source.address.ipv6Value, destination: destination.address.ipv6Value),
                                     sourcePort: source.port, destinationPort: destination.port)
        }
    }
}
