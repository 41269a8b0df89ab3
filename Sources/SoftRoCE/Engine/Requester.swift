import RoCEWire

/// The requester's state (rxe_req.c): where transmission stands in the send queue.
struct RequesterState {
    /// The PSN of the next packet to transmit.
    var nextPSN: PacketSequenceNumber = 0
    /// One past the highest PSN ever transmitted.
    var highestPSN: PacketSequenceNumber = 0
    /// The send-queue index being transmitted, and the packet within it.
    var cursor = 0
    var packetIndex = 0
    /// After an RNR NAK nothing goes out before this time (0: no wait).
    var rnrUntil: UInt64 = 0
    /// READ requests and atomics sent and not yet answered in full.
    var unanswered = UnansweredRequests()
    /// When the oldest packet sent since the last AckReq left (0: none, or the last packet
    /// sent asked for an ACK, which acknowledges everything before it): the tail probe's clock.
    var unrequestedSince: UInt64 = 0
    /// The next packet carries AckReq whatever its place: a tail probe's resend.
    var forceAckRequest = false
}

/// The last PSN of each READ request and atomic sent and not yet answered in full, oldest
/// first. The responder replays a lost READ response or atomic ACK only for the last
/// `capacity` such requests it executed (`ReadRequestCache`, `AtomicReplyCache`: rxe's
/// max_dest_rd_atomic resources), so no more may be unanswered at once; beyond that, a lost
/// response of the oldest could never be had again and the QP would run out of retries.
/// Fixed storage: nothing is allocated per request.
struct UnansweredRequests {
    private typealias Storage = InlineArray<16, PacketSequenceNumber>
    /// At most the storage's entries.
    static let capacity = min(ReadRequestCache.capacity, AtomicReplyCache.capacity, Storage.count)
    private var lastPSNs = Storage(repeating: 0)
    private var first = 0
    private(set) var count = 0

    var isFull: Bool { count >= Self.capacity }

    mutating func append(lastPSN: PacketSequenceNumber) {
        guard count < Self.capacity else { return }
        lastPSNs[(first + count) % Self.capacity] = lastPSN
        count += 1
    }

    /// Forgets the requests whose every response came before `firstUnanswered`.
    mutating func forgetAnswered(before firstUnanswered: PacketSequenceNumber) {
        while count > 0 && lastPSNs[first].isBefore(firstUnanswered) {
            first = (first + 1) % Self.capacity
            count -= 1
        }
    }
}

// The requester role: segments send-queue requests into packets within the window,
// go-back-N on a NAK or timeout (its position is reset by the completer), UD sends.

extension SoftDevice {
    /// Sets the send PSN (modify to RTS): nothing is in flight, everything before is acknowledged.
    func startSending(_ qp: SoftQueuePair, at psn: PacketSequenceNumber) {
        qp.requester.nextPSN = psn
        qp.requester.highestPSN = psn
        qp.completer.lastAckedPSN = psn - 1
    }

    /// Transmits what the QP's window and the device's in-flight budget allow, at most 64
    /// packets per call.
    ///
    /// The budget: `inFlightByteBudget` bytes of data (payload sent and READ responses asked
    /// for, not yet acknowledged) across all QPs of the device, so that many QPs share the
    /// peer's 8 MB receive buffer instead of overrunning it, losing packets and running out
    /// of retries. `inFlightBytes` is recounted at every progress round and only grows between
    /// rounds, so it never underestimates; a READ chunk or a single packet may overshoot it by
    /// one request.
    func transmit(_ qp: SoftQueuePair, now: UInt64) {
        guard let peer = qp.peer else { return }
        if qp.requester.rnrUntil != 0 {
            if now < qp.requester.rnrUntil { return }
            qp.requester.rnrUntil = 0
        }
        let queue = qp.sendQueue
        var budget = 64
        while qp.requester.cursor < queue.tail && budget > 0 && packetsInFlight(qp) < Self.window && inFlightBytes < Self.inFlightByteBudget {
            if qp.pacer != nil && !qp.pacer!.allows(now) { return }
            budget -= 1
            let index = qp.requester.cursor
            let entry = queue.entry(index)
            if entry.pointee.responseComplete && entry.pointee.assigned {
                // A READ/atomic whose response already arrived: a go-back passes over it.
                qp.requester.nextPSN = entry.pointee.firstPSN + entry.pointee.packetCount
                moveToNextRequest(qp)
                continue
            }
            // A READ request leaves only inside the narrower READ window: the peer replays a lost
            // response only for the READ requests it remembers (16), and each asks for 16 packets.
            let opcode = entry.pointee.request.opcode
            if opcode == .read && packetsInFlight(qp) >= Self.readWindow { return }
            // A READ request or atomic the responder has not seen (a resend of one it has is
            // always let out) waits while `UnansweredRequests.capacity` are unanswered.
            let asksForResources = opcode == .read || opcode == .compareAndSwap || opcode == .fetchAndAdd
            let firstSending = asksForResources && !qp.requester.nextPSN.isBefore(qp.requester.highestPSN)
            if firstSending {
                qp.requester.unanswered.forgetAnswered(before: firstUnansweredPSN(qp))
                if qp.requester.unanswered.isFull { return }
            }
            let resumingRead = opcode == .read && entry.pointee.responsesReceived > 0
            if qp.requester.packetIndex == 0 && !resumingRead {
                entry.pointee.firstPSN = qp.requester.nextPSN
                entry.pointee.assigned = true
                entry.pointee.responsesReceived = 0
            }
            var headers: TransportHeaders, payloadLength: Int
            switch entry.pointee.request.opcode {
            case .send, .sendWithImmediate, .write, .writeWithImmediate:
                guard let packet = nextMessagePacket(qp, index) else { fail(qp, status: .localProtectionError); return }
                (headers, payloadLength) = packet
            case .read:
                (headers, payloadLength) = (nextReadRequest(qp, index), 0)
            case .compareAndSwap, .fetchAndAdd:
                (headers, payloadLength) = (atomicRequest(qp, index), 0)
            }
            // Its responses end at the PSN before the next request's.
            if firstSending { qp.requester.unanswered.append(lastPSN: qp.requester.nextPSN - 1) }
            if qp.requester.highestPSN.isBefore(qp.requester.nextPSN) { qp.requester.highestPSN = qp.requester.nextPSN }
            if qp.completer.timerDeadline == 0 { armRetransmitTimer(qp, now: now) }
            inFlightBytes += headers.bth.opcode == .rcRDMAReadRequest ? Int(headers.rdma?.dmaLength ?? 0) : max(payloadLength, 1)
            // The last packet before the window or the device's budget stops this QP asks for
            // an ACK: otherwise a burst cut mid-message waits for the retransmit timer.
            if packetsInFlight(qp) >= Self.window || inFlightBytes >= Self.inFlightByteBudget { headers.bth.ackRequest = true }
            if headers.bth.ackRequest {
                qp.requester.unrequestedSince = 0
            } else if qp.requester.unrequestedSince == 0 {
                qp.requester.unrequestedSince = max(now, 1)
            }
            if emit(headers, payloadLength: payloadLength, from: qp, to: peer), qp.pacer != nil {
                let bytes = RoCEPacket.serializedByteCount(headers: headers, payloadLength: payloadLength) + RatePacer.linkOverhead(peer.address)
                qp.pacer!.sent(bytes: bytes, at: now)
            }
        }
    }

    /// An upper estimate of the data `qp` has in flight: a full MTU per unacknowledged packet.
    func bytesInFlight(_ qp: SoftQueuePair) -> Int {
        packetsInFlight(qp) * qp.mtu
    }

    /// Packets sent and not yet acknowledged; the responses of the oldest READ received so
    /// far count as acknowledged.
    private func packetsInFlight(_ qp: SoftQueuePair) -> Int {
        firstUnansweredPSN(qp).distance(to: qp.requester.nextPSN)
    }

    /// The first PSN neither acknowledged nor answered by a READ response of the oldest request.
    private func firstUnansweredPSN(_ qp: SoftQueuePair) -> PacketSequenceNumber {
        var base = qp.completer.lastAckedPSN + 1
        let queue = qp.sendQueue
        if queue.head < queue.tail {
            let oldest = queue.entry(queue.head).pointee
            if oldest.assigned && oldest.request.opcode == .read {
                let received = oldest.firstPSN + oldest.responsesReceived
                if base.isBefore(received) { base = received }
            }
        }
        return base
    }

    private func moveToNextRequest(_ qp: SoftQueuePair) {
        qp.requester.cursor += 1
        qp.requester.packetIndex = 0
    }

    /// The next packet of a SEND or WRITE: opcode by position, RETH on a WRITE's first,
    /// immediate on the last, AckReq on the last and every `ackRequestInterval`; the payload
    /// gathered into `sendBuffer`. Nil when a local key does not grant the buffer.
    private func nextMessagePacket(_ qp: SoftQueuePair, _ index: Int) -> (TransportHeaders, Int)? {
        let entry = qp.sendQueue.entry(index).pointee
        let request = entry.request
        let packet = qp.requester.packetIndex
        let offset = packet * qp.mtu
        let payloadLength = min(qp.mtu, entry.length - offset)
        let first = packet == 0, last = packet == entry.packetCount - 1
        let immediate = request.opcode == .sendWithImmediate || request.opcode == .writeWithImmediate
        let isSend = request.opcode == .send || request.opcode == .sendWithImmediate
        let opcode = Opcode.reliableMessage(send: isSend, first: first, last: last, immediate: immediate)
        var headers = TransportHeaders(BaseTransportHeader(opcode: opcode, destinationQP: qp.destinationQueuePair, psn: qp.requester.nextPSN))
        headers.bth.solicitedEvent = last && request.solicited
        headers.bth.ackRequest = (last && asksForAcknowledgement(qp, request)) || packet % Self.ackRequestInterval == Self.ackRequestInterval - 1
            || qp.requester.forceAckRequest
        qp.requester.forceAckRequest = false
        if first && !isSend {
            headers.rdma = RETH(virtualAddress: request.remoteAddress, remoteKey: request.remoteKey, dmaLength: UInt32(entry.length))
        }
        if last && immediate { headers.immediateData = ImmDt(request.immediate) }
        guard gather(qp, index, offset: offset, count: payloadLength, into: sendBuffer + opcode.headerLength) else { return nil }
        qp.requester.packetIndex += 1
        qp.requester.nextPSN += 1
        if qp.requester.packetIndex == entry.packetCount { moveToNextRequest(qp) }
        return (headers, payloadLength)
    }

    /// Whether a SEND's or WRITE's last packet carries AckReq (the rule, with the tail probe
    /// below): when its completion is wanted (signaled, or every request is), or when half the
    /// send queue waits for acknowledgement, so that slots come back before it fills. Every
    /// 16th packet of a long message asks too, and the last one a window or budget stops at.
    ///
    /// An unsignaled message's ACK is wanted by nobody soon: a ping-pong learns of delivery from
    /// the reply, and a responder acknowledges only what asks (IBTA C9-94; rxe does the same).
    /// Asking on every message made the peer send an ACK per request, one `sendto` of 3–4 µs
    /// on a 2-core machine, in the thread that must next take in the request (softroce-bench
    /// 2 B half round trip −0.2 µs with this rule). Requests that ask on their own — READ,
    /// atomics — are unchanged.
    @inline(__always)
    private func asksForAcknowledgement(_ qp: SoftQueuePair, _ request: SoftSendRequest) -> Bool {
        request.signaled || qp.signalAll || 2 * qp.sendQueue.outstanding >= qp.sendQueue.capacity
    }

    /// The tail probe: packets that asked for no ACK and were followed by none that did would
    /// wait for the retransmit timer (and burn one of its retries). When such a tail has waited
    /// `acknowledgementProbeDelay` with nothing more to send, its last packet is sent again
    /// with AckReq; any responder acknowledges a duplicate (C9-105), and that ACK covers all.
    func probeUnrequestedTail(_ qp: SoftQueuePair, now: UInt64) {
        let since = qp.requester.unrequestedSince
        guard since != 0, now &- since >= Self.acknowledgementProbeDelay else { return }
        qp.requester.unrequestedSince = 0
        guard !nothingUnacknowledged(qp), qp.requester.cursor >= qp.sendQueue.tail, qp.requester.rnrUntil == 0,
              qp.requester.nextPSN == qp.requester.highestPSN else { return }
        counters.acknowledgementProbes += 1
        goBack(qp, to: qp.requester.nextPSN - 1)
        qp.requester.forceAckRequest = true
    }

    /// A READ goes out as requests of at most `readChunkPackets` response packets each
    /// (consecutive PSN ranges), so one lost response costs one short replay.
    private func nextReadRequest(_ qp: SoftQueuePair, _ index: Int) -> TransportHeaders {
        let entry = qp.sendQueue.entry(index).pointee
        let startPacket = qp.requester.packetIndex
        let chunkPackets = min(Self.readChunkPackets, entry.packetCount - startPacket)
        let offset = min(entry.length, startPacket * qp.mtu)
        let chunkBytes = min(entry.length - offset, chunkPackets * qp.mtu)
        var headers = TransportHeaders(BaseTransportHeader(opcode: .rcRDMAReadRequest, destinationQP: qp.destinationQueuePair,
                                                           ackRequest: true, psn: entry.firstPSN + startPacket))
        headers.rdma = RETH(virtualAddress: entry.request.remoteAddress &+ UInt64(offset), remoteKey: entry.request.remoteKey,
                            dmaLength: UInt32(chunkBytes))
        qp.requester.packetIndex += chunkPackets
        qp.requester.nextPSN = entry.firstPSN + qp.requester.packetIndex
        if qp.requester.packetIndex >= entry.packetCount { moveToNextRequest(qp) }
        return headers
    }

    private func atomicRequest(_ qp: SoftQueuePair, _ index: Int) -> TransportHeaders {
        let request = qp.sendQueue.entry(index).pointee.request
        let swap = request.opcode == .compareAndSwap
        var headers = TransportHeaders(BaseTransportHeader(opcode: swap ? .rcCompareSwap : .rcFetchAdd, destinationQP: qp.destinationQueuePair,
                                                           ackRequest: true, psn: qp.requester.nextPSN))
        headers.atomic = AtomicETH(virtualAddress: request.remoteAddress, remoteKey: request.remoteKey,
                                   swapOrAdd: swap ? request.swap : request.compareAdd, compare: swap ? request.compareAdd : 0)
        qp.requester.nextPSN += 1
        moveToNextRequest(qp)
        return headers
    }

    /// Go-back-N: the next packet transmitted is `psn` (a NAK-sequence, a timeout, an RNR
    /// wait or a missing READ response). A READ resumes on a chunk boundary at or after the
    /// responses already placed, so its request PSN is one the responder saw or expects.
    func goBack(_ qp: SoftQueuePair, to psn: PacketSequenceNumber) {
        let queue = qp.sendQueue
        if let index = queue.index(holding: psn) {
            let entry = queue.entry(index).pointee
            let offset = entry.firstPSN.distance(to: psn)
            qp.requester.cursor = index
            switch entry.request.opcode {
            case .read:
                qp.requester.packetIndex = max(offset, entry.responsesReceived) / Self.readChunkPackets * Self.readChunkPackets
                qp.requester.nextPSN = entry.firstPSN + qp.requester.packetIndex
            case .compareAndSwap, .fetchAndAdd:
                qp.requester.packetIndex = 0
                qp.requester.nextPSN = psn
            default:
                qp.requester.packetIndex = offset
                qp.requester.nextPSN = psn
            }
            return
        }
        // Nothing sent holds `psn`: continue with the first request not yet sent.
        qp.requester.cursor = max(queue.head, min(qp.requester.cursor, queue.tail))
        while qp.requester.cursor < queue.tail && queue.entry(qp.requester.cursor).pointee.assigned { qp.requester.cursor += 1 }
        qp.requester.packetIndex = 0
        qp.requester.nextPSN = psn
    }

    /// UD: every posted SEND goes out at once as one packet with a DETH, and completes.
    func transmitDatagrams(_ qp: SoftQueuePair) {
        guard qp.state == .readyToSend else { return }
        let queue = qp.sendQueue
        while qp.requester.cursor < queue.tail {
            let index = qp.requester.cursor
            let entry = queue.entry(index).pointee
            let request = entry.request
            guard let destination = request.destination, let remote = QueuePairNumber(exactly: request.remoteQueuePairNumber & QueuePairNumber.mask) else {
                fail(qp, status: .localQueuePairOperationError); return
            }
            let immediate = request.opcode == .sendWithImmediate
            var headers = TransportHeaders(BaseTransportHeader(opcode: immediate ? .udSendOnlyWithImmediate : .udSendOnly,
                                                               solicitedEvent: request.solicited, destinationQP: remote,
                                                               psn: qp.requester.nextPSN))
            headers.datagram = DETH(queueKey: request.remoteQKey, sourceQP: qp.queuePairNumber)
            if immediate { headers.immediateData = ImmDt(request.immediate) }
            guard gather(qp, index, offset: 0, count: entry.length, into: sendBuffer + headers.byteCount) else {
                fail(qp, status: .localProtectionError); return
            }
            qp.requester.nextPSN += 1
            qp.requester.cursor += 1
            emit(headers, payloadLength: entry.length, from: qp, to: WireEndpoint(destination, port: peerPort))
            completeOldest(qp, status: .success)
        }
    }
}

extension Opcode {
    /// The RC SEND or RDMA WRITE opcode for a packet's position in its message.
    static func reliableMessage(send: Bool, first: Bool, last: Bool, immediate: Bool) -> Opcode {
        switch (first, last, send) {
        case (true, true, true): immediate ? .rcSendOnlyWithImmediate : .rcSendOnly
        case (true, false, true): .rcSendFirst
        case (false, false, true): .rcSendMiddle
        case (false, true, true): immediate ? .rcSendLastWithImmediate : .rcSendLast
        case (true, true, false): immediate ? .rcRDMAWriteOnlyWithImmediate : .rcRDMAWriteOnly
        case (true, false, false): .rcRDMAWriteFirst
        case (false, false, false): .rcRDMAWriteMiddle
        case (false, true, false): immediate ? .rcRDMAWriteLastWithImmediate : .rcRDMAWriteLast
        }
    }
}
