import RoCEWire

/// The responder's state (rxe_resp.c): what the peer's requester sends us.
struct ResponderState {
    /// The PSN the next new request must carry.
    var expectedPSN: PacketSequenceNumber = 0
    var messageSequenceNumber: UInt32 = 0
    /// One NAK-sequence per gap: set when sent, cleared when the expected PSN arrives.
    var sequenceNAKSent = false
    /// An ACK is owed for the current batch (see `SoftDevice.acknowledgementsDue`).
    var acknowledgementDue = false
    /// A multi-packet SEND or WRITE in progress.
    var inbound = InboundMessage.none
    /// The receive a SEND (or WRITE with immediate) is filling.
    var activeReceive: ActiveReceive? = nil
    /// Where the WRITE in progress puts its next bytes.
    var write = WriteTarget()
    var atomicReplies = AtomicReplyCache()
    var readRequests = ReadRequestCache()

    /// A message (SEND, WRITE, READ, atomic) was executed: the MSN advances, modulo 2²⁴.
    mutating func completeMessage() {
        messageSequenceNumber = (messageSequenceNumber + 1) & 0xFF_FFFF
    }
}

extension Opcode.Position {
    /// The packet opens a message (first or only).
    var startsMessage: Bool { self == .first || self == .only }
    /// The packet closes a message (last or only).
    var endsMessage: Bool { self == .last || self == .only }
}

enum InboundMessage { case none, send, write }

struct WriteTarget {
    var address: UInt64 = 0
    var remaining = 0
    var total = 0
}

/// Results of executed atomics, so a retransmitted atomic is answered, not executed twice.
struct AtomicReplyCache {
    static let capacity = 16
    private var psns = [PacketSequenceNumber?](repeating: nil, count: capacity)
    private var originals = [UInt64](repeating: 0, count: capacity)
    private var next = 0

    mutating func record(psn: PacketSequenceNumber, original: UInt64) {
        psns[next] = psn
        originals[next] = original
        next = (next + 1) % Self.capacity
    }

    func original(for psn: PacketSequenceNumber) -> UInt64? {
        psns.firstIndex(of: psn).map { originals[$0] }
    }
}

/// READ requests executed recently. A retransmitted READ is replayed only inside one of
/// them (same key, the address and length it asked for), so a forged or stale duplicate
/// cannot make the responder send memory nobody asked for.
struct ReadRequestCache {
    struct Request {
        var firstPSN: PacketSequenceNumber
        var packetCount: Int
        var address: UInt64
        var key: UInt32
        var length: Int
    }
    static let capacity = 16
    private var requests = [Request?](repeating: nil, count: capacity)
    private var next = 0

    mutating func record(_ request: Request) {
        requests[next] = request
        next = (next + 1) % Self.capacity
    }

    func permitsReplay(psn: PacketSequenceNumber, _ reth: RETH, mtu: Int) -> Bool {
        for case let request? in requests where psn.isInWindow(startingAt: request.firstPSN, count: request.packetCount) {
            let skipped = request.firstPSN.distance(to: psn) * mtu
            return reth.remoteKey == request.key && reth.virtualAddress == request.address &+ UInt64(skipped)
                && Int(reth.dmaLength) <= request.length - skipped
        }
        return false
    }
}

// The responder role: PSN checks (new, duplicate, out of sequence), SEND into posted
// receives, WRITE into registered memory, READ responses and their replay, atomics and their
// replay, ACK/NAK/RNR NAK, UD receives.

extension SoftDevice {
    func handleRequest(_ qp: SoftQueuePair, _ headers: TransportHeaders, _ payload: UnsafeRawBufferPointer) {
        let psn = headers.bth.psn
        let distance = qp.responder.expectedPSN.distance(to: psn)
        if distance < 0 { handleDuplicate(qp, headers, psn: psn); return }
        if distance > 0 {
            counters.outOfSequenceRequest += 1
            if !qp.responder.sequenceNAKSent {
                qp.responder.sequenceNAKSent = true
                sendAcknowledge(qp, syndrome: .nak(.psnSequenceError), psn: qp.responder.expectedPSN)
            }
            return
        }
        qp.responder.sequenceNAKSent = false
        switch headers.bth.opcode.operation {
        case .send:
            guard receiveSendPacket(qp, headers, payload) else { return }
        case .rdmaWrite:
            guard receiveWritePacket(qp, headers, payload) else { return }
        case .rdmaReadRequest:
            executeRead(qp, headers, psn: psn)
            return
        case .compareSwap, .fetchAdd:
            executeAtomic(qp, headers, psn: psn)
            return
        default:
            nak(qp, .invalidRequest, psn: psn)
            return
        }
        qp.responder.expectedPSN = psn + 1
        if headers.bth.ackRequest { markAcknowledgementDue(qp) }
    }

    private func handleDuplicate(_ qp: SoftQueuePair, _ headers: TransportHeaders, psn: PacketSequenceNumber) {
        counters.duplicateRequest += 1
        switch headers.bth.opcode {
        case .rcRDMAReadRequest:
            guard let reth = headers.rdma, qp.responder.readRequests.permitsReplay(psn: psn, reth, mtu: qp.mtu) else {
                counters.refusedReadReplays += 1
                return
            }
            respondToRead(qp, reth, psn: psn)
        case .rcCompareSwap, .rcFetchAdd:
            if let original = qp.responder.atomicReplies.original(for: psn) { sendAtomicAcknowledge(qp, psn: psn, original: original) }
        default:
            markAcknowledgementDue(qp)
        }
    }

    /// One packet of a SEND; false when it was refused (NAK or RNR NAK sent).
    private func receiveSendPacket(_ qp: SoftQueuePair, _ headers: TransportHeaders, _ payload: UnsafeRawBufferPointer) -> Bool {
        let psn = headers.bth.psn
        let position = headers.bth.opcode.position
        let starts = position.startsMessage, ends = position.endsMessage
        guard starts == (qp.responder.inbound == .none), qp.responder.inbound != .write,
              ends || payload.count == qp.mtu else {
            nak(qp, .invalidRequest, psn: psn)
            return false
        }
        if starts && !takeReceive(qp) {
            counters.sendRNRError += 1
            sendAcknowledge(qp, syndrome: .receiverNotReady(timer: qp.minRNRTimer), psn: psn)
            return false
        }
        guard let active = qp.responder.activeReceive else { nak(qp, .invalidRequest, psn: psn); return false }
        guard scatterReceive(qp, active, offset: active.offset, from: payload) else {
            // Too long for the receive, or its buffers are bad: the receive fails locally,
            // the requester is told invalid request.
            finishActiveReceive(qp, status: .localLengthError, length: 0)
            nak(qp, .invalidRequest, psn: psn)
            return false
        }
        qp.responder.activeReceive!.offset += payload.count
        qp.responder.inbound = ends ? .none : .send
        if ends {
            counters.rdmaReceives += 1
            finishActiveReceive(qp, status: .success, length: active.offset + payload.count, immediate: headers.immediateData?.value)
            qp.responder.completeMessage()
        }
        return true
    }

    /// One packet of a WRITE; false when it was refused.
    private func receiveWritePacket(_ qp: SoftQueuePair, _ headers: TransportHeaders, _ payload: UnsafeRawBufferPointer) -> Bool {
        let psn = headers.bth.psn
        let opcode = headers.bth.opcode
        let starts = opcode.position.startsMessage, ends = opcode.position.endsMessage
        guard starts == (qp.responder.inbound == .none), qp.responder.inbound != .send,
              ends || payload.count == qp.mtu else {
            nak(qp, .invalidRequest, psn: psn)
            return false
        }
        if starts {
            guard let reth = headers.rdma else { nak(qp, .invalidRequest, psn: psn); return false }
            let length = Int(reth.dmaLength)
            guard length == 0 || remoteTarget(qp, key: reth.remoteKey, address: reth.virtualAddress, length: length, access: .remoteWrite) != nil else {
                nak(qp, .remoteAccessError, psn: psn)
                return false
            }
            qp.responder.write = WriteTarget(address: reth.virtualAddress, remaining: length, total: length)
        }
        // The message's packets must add up to the RETH's length, exactly.
        guard payload.count <= qp.responder.write.remaining, !ends || payload.count == qp.responder.write.remaining else {
            nak(qp, .invalidRequest, psn: psn)
            return false
        }
        if ends && opcode.hasImmediateData && !takeReceive(qp) {
            counters.sendRNRError += 1
            sendAcknowledge(qp, syndrome: .receiverNotReady(timer: qp.minRNRTimer), psn: psn)
            return false
        }
        if let source = payload.baseAddress, let target = UnsafeMutableRawPointer(bitPattern: UInt(qp.responder.write.address)) {
            target.copyMemory(from: source, byteCount: payload.count)
        }
        qp.responder.write.address &+= UInt64(payload.count)
        qp.responder.write.remaining -= payload.count
        qp.responder.inbound = ends ? .none : .write
        if ends {
            if opcode.hasImmediateData {
                finishActiveReceive(qp, status: .success, length: qp.responder.write.total, opcode: .receiveRDMAWriteWithImmediate,
                                    immediate: headers.immediateData?.value)
            }
            qp.responder.completeMessage()
        }
        return true
    }

    private func executeRead(_ qp: SoftQueuePair, _ headers: TransportHeaders, psn: PacketSequenceNumber) {
        guard qp.responder.inbound == .none, let reth = headers.rdma else { nak(qp, .invalidRequest, psn: psn); return }
        let length = Int(reth.dmaLength)
        guard length == 0 || remoteTarget(qp, key: reth.remoteKey, address: reth.virtualAddress, length: length, access: .remoteRead) != nil else {
            nak(qp, .remoteAccessError, psn: psn)
            return
        }
        let packets = max(1, (length + qp.mtu - 1) / qp.mtu)
        qp.responder.completeMessage()
        qp.responder.expectedPSN = psn + packets
        qp.responder.readRequests.record(.init(firstPSN: psn, packetCount: packets, address: reth.virtualAddress, key: reth.remoteKey, length: length))
        respondToRead(qp, reth, psn: psn)
    }

    private func executeAtomic(_ qp: SoftQueuePair, _ headers: TransportHeaders, psn: PacketSequenceNumber) {
        guard qp.responder.inbound == .none, let atomic = headers.atomic, atomic.virtualAddress % 8 == 0 else {
            nak(qp, .invalidRequest, psn: psn)
            return
        }
        guard let target = remoteTarget(qp, key: atomic.remoteKey, address: atomic.virtualAddress, length: 8, access: .remoteAtomic) else {
            nak(qp, .remoteAccessError, psn: psn)
            return
        }
        let original = target.load(as: UInt64.self)
        if headers.bth.opcode == .rcCompareSwap {
            if original == atomic.compare { target.storeBytes(of: atomic.swapOrAdd, as: UInt64.self) }
        } else {
            target.storeBytes(of: original &+ atomic.swapOrAdd, as: UInt64.self)
        }
        qp.responder.atomicReplies.record(psn: psn, original: original)
        qp.responder.completeMessage()
        qp.responder.expectedPSN = psn + 1
        sendAtomicAcknowledge(qp, psn: psn, original: original)
    }

    /// The response packets of a READ request (all of them: our requester asks for at most
    /// `readChunkPackets` per request). The key is checked again: a replay may come after the
    /// region was deregistered.
    private func respondToRead(_ qp: SoftQueuePair, _ reth: RETH, psn: PacketSequenceNumber) {
        guard let peer = qp.peer else { return }
        let length = Int(reth.dmaLength)
        let source = length == 0 ? nil : remoteTarget(qp, key: reth.remoteKey, address: reth.virtualAddress, length: length, access: .remoteRead)
        guard length == 0 || source != nil else { return }
        let packets = max(1, (length + qp.mtu - 1) / qp.mtu)
        qp.responder.acknowledgementDue = false
        for index in 0..<packets {
            let opcode: Opcode = packets == 1 ? .rcRDMAReadResponseOnly : index == 0 ? .rcRDMAReadResponseFirst
                : index == packets - 1 ? .rcRDMAReadResponseLast : .rcRDMAReadResponseMiddle
            var headers = TransportHeaders(BaseTransportHeader(opcode: opcode, destinationQP: qp.destinationQueuePair, psn: psn + index))
            if opcode != .rcRDMAReadResponseMiddle {
                headers.acknowledge = AETH(syndrome: .ack(), messageSequenceNumber: qp.responder.messageSequenceNumber)
            }
            let chunk = min(qp.mtu, length - index * qp.mtu)
            if let source, chunk > 0 {
                (sendBuffer + opcode.headerLength).copyMemory(from: source + index * qp.mtu, byteCount: chunk)
            }
            emit(headers, payloadLength: max(chunk, 0), from: qp, to: peer)
        }
    }

    private func sendAtomicAcknowledge(_ qp: SoftQueuePair, psn: PacketSequenceNumber, original: UInt64) {
        guard let peer = qp.peer else { return }
        var headers = TransportHeaders(BaseTransportHeader(opcode: .rcAtomicAcknowledge, destinationQP: qp.destinationQueuePair, psn: psn))
        headers.acknowledge = AETH(syndrome: .ack(), messageSequenceNumber: qp.responder.messageSequenceNumber)
        headers.atomicAcknowledge = AtomicAckETH(originalRemoteData: original)
        qp.responder.acknowledgementDue = false
        emit(headers, payloadLength: 0, from: qp, to: peer)
    }

    /// Sends an ACK, NAK or RNR NAK for `psn` at once.
    func sendAcknowledge(_ qp: SoftQueuePair, syndrome: AETH.Syndrome, psn: PacketSequenceNumber) {
        qp.responder.acknowledgementDue = false
        guard let peer = qp.peer else { return }
        var headers = TransportHeaders(BaseTransportHeader(opcode: .rcAcknowledge, destinationQP: qp.destinationQueuePair, psn: psn))
        headers.acknowledge = AETH(syndrome: syndrome, messageSequenceNumber: qp.responder.messageSequenceNumber)
        emit(headers, payloadLength: 0, from: qp, to: peer)
    }

    /// ACK coalescing: a QP acknowledges once per receive batch, after it, whatever number of
    /// AckReq packets the batch held; a READ response or atomic ACK sent meanwhile carries the
    /// acknowledgement and cancels it.
    private func markAcknowledgementDue(_ qp: SoftQueuePair) {
        guard !qp.responder.acknowledgementDue else { return }
        qp.responder.acknowledgementDue = true
        acknowledgementsDue.append(qp)
    }

    func sendAcknowledgementsDue() {
        guard !acknowledgementsDue.isEmpty else { return }
        for qp in acknowledgementsDue where qp.responder.acknowledgementDue {
            sendAcknowledge(qp, syndrome: .ack(), psn: qp.responder.expectedPSN - 1)
        }
        acknowledgementsDue.removeAll(keepingCapacity: true)
        acknowledgementsDeferredSince = 0
    }

    private func nak(_ qp: SoftQueuePair, _ code: AETH.NAKCode, psn: PacketSequenceNumber) {
        switch code {
        case .remoteAccessError: counters.remoteAccessNAKsSent += 1
        case .remoteOperationalError: counters.operationalNAKsSent += 1
        case .invalidRequest: counters.invalidRequestNAKsSent += 1
        default: break
        }
        qp.responder.inbound = .none
        sendAcknowledge(qp, syndrome: .nak(code), psn: psn)
    }

    // MARK: Receives

    /// Takes the next posted receive for the message starting now (kept if one is active).
    private func takeReceive(_ qp: SoftQueuePair) -> Bool {
        if qp.responder.activeReceive != nil { return true }
        var active = ActiveReceive()
        guard qp.receiveSource.take(into: &active, storage: qp.activeReceiveElements) else { return false }
        qp.responder.activeReceive = active
        return true
    }

    /// Completes the receive being filled and gives its place in the queue back.
    func finishActiveReceive(_ qp: SoftQueuePair, status: SoftCompletionStatus, length: Int, opcode: SoftCompletionOpcode = .receive,
                             immediate: UInt32? = nil, sourceQueuePair: UInt32 = 0, globalRouteHeader: Bool = false) {
        guard let active = qp.responder.activeReceive else { return }
        active.ring?.release()
        qp.responder.activeReceive = nil
        completeReceive(qp, id: active.id, status: status, length: length, opcode: opcode, immediate: immediate,
                        sourceQueuePair: sourceQueuePair, globalRouteHeader: globalRouteHeader)
    }

    func completeReceive(_ qp: SoftQueuePair, id: UInt64, status: SoftCompletionStatus, length: Int, opcode: SoftCompletionOpcode = .receive,
                         immediate: UInt32? = nil, sourceQueuePair: UInt32 = 0, globalRouteHeader: Bool = false) {
        var completion = SoftCompletion()
        completion.id = id
        completion.status = status
        completion.opcode = opcode
        completion.byteLength = UInt32(clamping: length)
        completion.queuePairNumber = qp.number
        if let immediate { completion.immediate = immediate; completion.hasImmediate = true }
        completion.sourceQueuePairNumber = sourceQueuePair
        completion.hasGlobalRouteHeader = globalRouteHeader
        if !qp.receiveCompletionQueue.push(completion) { counters.completionQueueOverruns += 1 }
    }

    /// A UD SEND: Q_Key checked, the 40-byte GRH verbs puts before a UD payload (IPv6-style,
    /// with the GIDs), then the payload, into the next receive.
    func handleDatagram(_ qp: SoftQueuePair, _ headers: TransportHeaders, _ payload: UnsafeRawBufferPointer, source: SoftAddress) {
        guard let deth = headers.datagram else { counters.malformedPackets += 1; return }
        guard deth.queueKey == qp.qkey else { counters.badQueueKey += 1; return }
        guard takeReceive(qp), let active = qp.responder.activeReceive else { counters.udDroppedNoReceive += 1; return }
        var header = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &header) { bytes in
            bytes[0] = 0x60
            bytes.storeBytes(of: UInt16(payload.count).bigEndian, toByteOffset: 4, as: UInt16.self)
            bytes[6] = 0x11
            bytes[7] = 64
            let from = source.ipv6Value, to = address.ipv6Value
            bytes.storeBytes(of: from.high.bigEndian, toByteOffset: 8, as: UInt64.self)
            bytes.storeBytes(of: from.low.bigEndian, toByteOffset: 16, as: UInt64.self)
            bytes.storeBytes(of: to.high.bigEndian, toByteOffset: 24, as: UInt64.self)
            bytes.storeBytes(of: to.low.bigEndian, toByteOffset: 32, as: UInt64.self)
        }
        let placed = withUnsafeBytes(of: &header) { scatterReceive(qp, active, offset: 0, from: $0) }
            && scatterReceive(qp, active, offset: 40, from: payload)
        counters.rdmaReceives += 1
        finishActiveReceive(qp, status: placed ? .success : .localLengthError, length: placed ? 40 + payload.count : 0,
                            immediate: headers.immediateData?.value, sourceQueuePair: deth.sourceQP.rawValue, globalRouteHeader: true)
    }
}
