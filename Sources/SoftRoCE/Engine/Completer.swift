import RoCEWire

/// The completer's state (rxe_comp.c): what the peer has acknowledged, the retransmit
/// timer and the retry budgets.
struct CompleterState {
    /// Every PSN up to and including this one is acknowledged.
    var lastAckedPSN: PacketSequenceNumber = 0
    /// When the retransmit timer fires (0: not armed).
    var timerDeadline: UInt64 = 0
    var retriesLeft = 7
    var rnrRetriesLeft = 7
    /// The READ response PSN a gap already sent the requester back to (once per gap).
    var readGapPSN: PacketSequenceNumber? = nil
}

/// The RNR NAK timer codes of IBTA table 45, in nanoseconds.
let rnrTimerNanoseconds: [UInt64] = [655_360_000, 10_000, 20_000, 30_000, 40_000, 60_000, 80_000, 120_000, 160_000, 240_000,
                                     320_000, 480_000, 640_000, 960_000, 1_280_000, 1_920_000, 2_560_000, 3_840_000,
                                     5_120_000, 7_680_000, 10_240_000, 15_360_000, 20_480_000, 30_720_000, 40_960_000,
                                     61_440_000, 81_920_000, 122_880_000, 163_840_000, 245_760_000, 327_680_000, 491_520_000]

// The completer role: ACKs, NAKs and RNR NAKs; READ responses and atomic ACKs placed into
// the requester's buffers; the retransmit timer; completions in send-queue order; flush.
//
// Retransmission policy, all of it: on a timeout (4.096 µs × 2^timeout without progress)
// or a NAK-sequence, go back to the first unacknowledged PSN and resend from there; a
// timeout costs one retry (`retryCount`, reset by any progress), an RNR NAK one RNR retry
// (7 = forever) and waits the peer's RNR timer. Nothing is sent twice on purpose.

extension SoftDevice {
    func armRetransmitTimer(_ qp: SoftQueuePair, now: UInt64) {
        guard qp.timeoutCode != 0 else { qp.completer.timerDeadline = 0; return }
        qp.completer.timerDeadline = now + 4096 << UInt64(min(qp.timeoutCode, 31))
    }

    /// Everything transmitted has been acknowledged.
    func nothingUnacknowledged(_ qp: SoftQueuePair) -> Bool {
        !(qp.completer.lastAckedPSN + 1).isBefore(qp.requester.highestPSN)
    }

    func checkRetransmitTimer(_ qp: SoftQueuePair, now: UInt64) {
        guard qp.completer.timerDeadline != 0, now >= qp.completer.timerDeadline, qp.requester.rnrUntil == 0 else { return }
        guard qp.sendQueue.outstanding > 0, !nothingUnacknowledged(qp) else { qp.completer.timerDeadline = 0; return }
        counters.completerRetry += 1
        guard qp.completer.retriesLeft > 0 else {
            counters.retryExceeded += 1
            fail(qp, status: .retryExceeded)
            return
        }
        qp.completer.retriesLeft -= 1
        goBack(qp, to: qp.completer.lastAckedPSN + 1)
        // The next timeout counts from the retransmission, not from now: a retransmission
        // the device's in-flight budget holds back must not burn the QP's retries unsent.
        qp.completer.timerDeadline = 0
    }

    /// A response packet (ACK, NAK, RNR NAK, READ response, atomic ACK) for `qp`.
    func handleResponse(_ qp: SoftQueuePair, _ headers: TransportHeaders, _ payload: UnsafeRawBufferPointer, now: UInt64) {
        let psn = headers.bth.psn
        let opcode = headers.bth.opcode
        // Responses must name a PSN in flight; anything else is stale or forged.
        let firstUnacknowledged = qp.completer.lastAckedPSN + 1
        guard psn.isInWindow(startingAt: firstUnacknowledged, count: firstUnacknowledged.distance(to: qp.requester.highestPSN)) else {
            counters.staleResponses += 1
            return
        }
        if opcode != .rcRDMAReadResponseMiddle, let aeth = headers.acknowledge {
            guard handleSyndrome(qp, aeth.syndrome, psn: psn, now: now) else { return }
        }
        switch opcode {
        case .rcAcknowledge:
            acknowledge(qp, through: psn, now: now)
        case .rcAtomicAcknowledge:
            guard let original = headers.atomicAcknowledge?.originalRemoteData else { counters.malformedPackets += 1; return }
            placeAtomicResponse(qp, psn: psn, original: original, now: now)
        case .rcRDMAReadResponseFirst, .rcRDMAReadResponseMiddle, .rcRDMAReadResponseLast, .rcRDMAReadResponseOnly:
            placeReadResponse(qp, psn: psn, opcode: opcode, payload: payload, now: now)
        default:
            counters.malformedPackets += 1
        }
    }

    /// RNR NAK and NAKs end here (false: nothing more to do with the packet); an ACK
    /// syndrome lets the packet's own handling continue (true).
    private func handleSyndrome(_ qp: SoftQueuePair, _ syndrome: AETH.Syndrome, psn: PacketSequenceNumber, now: UInt64) -> Bool {
        switch syndrome.kind {
        case .ack:
            return true
        case .reserved:
            counters.malformedPackets += 1
            return false
        case .receiverNotReady(let timer):
            counters.receivedRNRError += 1
            acknowledge(qp, through: psn - 1, now: now)
            guard qp.state != .error else { return false }
            if qp.rnrRetry != 7 {
                guard qp.completer.rnrRetriesLeft > 0 else {
                    counters.rnrRetryExceeded += 1
                    fail(qp, status: .receiverNotReadyRetryExceeded)
                    return false
                }
                qp.completer.rnrRetriesLeft -= 1
            }
            goBack(qp, to: psn)
            qp.requester.rnrUntil = now + rnrTimerNanoseconds[Int(timer & 0x1F)]
            qp.completer.timerDeadline = 0
            return false
        case .nak(let code):
            acknowledge(qp, through: psn - 1, now: now)
            guard qp.state != .error else { return false }
            switch code {
            case .psnSequenceError:
                counters.receivedSequenceError += 1
                goBack(qp, to: psn)
                armRetransmitTimer(qp, now: now)
            case .remoteAccessError: fail(qp, status: .remoteAccessError)
            case .remoteOperationalError: fail(qp, status: .remoteOperationError)
            default: fail(qp, status: .remoteInvalidRequest)
            }
            return false
        }
    }

    private func placeAtomicResponse(_ qp: SoftQueuePair, psn: PacketSequenceNumber, original: UInt64, now: UInt64) {
        guard let index = qp.sendQueue.index(holding: psn) else { return }
        let entry = qp.sendQueue.entry(index)
        let opcode = entry.pointee.request.opcode
        guard opcode == .compareAndSwap || opcode == .fetchAndAdd, !entry.pointee.responseComplete else { return }
        // The response proves every earlier request was executed.
        acknowledge(qp, through: entry.pointee.firstPSN - 1, now: now)
        guard qp.state != .error else { return }
        let placed = withUnsafeBytes(of: original) { scatterResponse(qp, index, offset: 0, from: $0) }
        guard placed else {
            fail(qp, status: .localProtectionError); return
        }
        entry.pointee.responseComplete = true
        acknowledge(qp, through: psn, now: now)
    }

    private func placeReadResponse(_ qp: SoftQueuePair, psn: PacketSequenceNumber, opcode: Opcode, payload: UnsafeRawBufferPointer, now: UInt64) {
        guard let index = qp.sendQueue.index(holding: psn) else { return }
        let entry = qp.sendQueue.entry(index)
        guard entry.pointee.request.opcode == .read, !entry.pointee.responseComplete else { return }
        acknowledge(qp, through: entry.pointee.firstPSN - 1, now: now)
        guard qp.state != .error else { return }
        let expected = entry.pointee.firstPSN + entry.pointee.responsesReceived
        if psn != expected {
            // A gap in the response stream: ask again from the first missing packet, once.
            if expected.isBefore(psn) && qp.completer.readGapPSN != expected {
                qp.completer.readGapPSN = expected
                goBack(qp, to: expected)
            }
            return
        }
        let packet = entry.pointee.responsesReceived
        let endsChunk = opcode == .rcRDMAReadResponseLast || opcode == .rcRDMAReadResponseOnly
        let end = packet * qp.mtu + payload.count
        let complete = end == entry.pointee.length
        guard end <= entry.pointee.length, payload.count == qp.mtu || (endsChunk && complete) else {
            fail(qp, status: .badResponse); return
        }
        guard scatterResponse(qp, index, offset: packet * qp.mtu, from: payload) else {
            fail(qp, status: .localProtectionError); return
        }
        entry.pointee.responsesReceived += 1
        qp.completer.retriesLeft = Int(qp.retryCount)   // forward progress resets the budget
        if complete {
            entry.pointee.responseComplete = true
            acknowledge(qp, through: psn, now: now)
        } else if qp.completer.timerDeadline != 0 {
            armRetransmitTimer(qp, now: now)
        }
    }

    /// Completes, in order, every request acknowledged up to and including `psn`.
    func acknowledge(_ qp: SoftQueuePair, through acknowledged: PacketSequenceNumber, now: UInt64) {
        let firstUnacknowledged = qp.completer.lastAckedPSN + 1
        let advance = qp.completer.lastAckedPSN.distance(to: acknowledged)
        guard advance > 0 && advance <= firstUnacknowledged.distance(to: qp.requester.highestPSN) else { return }
        var psn = acknowledged
        let queue = qp.sendQueue
        while queue.head < queue.tail {
            let entry = queue.entry(queue.head).pointee
            guard entry.assigned else { break }
            let waitsForResponse = entry.request.opcode.isReadOrAtomic
            if waitsForResponse && entry.responseComplete {
                if psn.isBefore(entry.lastPSN) { psn = entry.lastPSN }
                completeOldest(qp, status: .success)
                continue
            }
            guard !psn.isBefore(entry.lastPSN) else { break }
            if waitsForResponse {
                // A later request was acknowledged but this response is missing: implicit NAK.
                let resume = entry.firstPSN + (entry.request.opcode == .read ? entry.responsesReceived : 0)
                qp.completer.lastAckedPSN = resume - 1
                goBack(qp, to: resume)
                armRetransmitTimer(qp, now: now)
                return
            }
            completeOldest(qp, status: .success)
        }
        // An ACK inside a READ's range says the request was executed, not that its
        // responses arrived: acknowledge no further than the responses received.
        if queue.head < queue.tail {
            let oldest = queue.entry(queue.head).pointee
            if oldest.assigned && oldest.request.opcode.isReadOrAtomic && !oldest.responseComplete {
                let cap = oldest.firstPSN + ((oldest.request.opcode == .read ? oldest.responsesReceived : 0) - 1)
                if cap.isBefore(psn) { psn = cap }
            }
        }
        if qp.completer.lastAckedPSN.isBefore(psn) { qp.completer.lastAckedPSN = psn }
        qp.completer.retriesLeft = Int(qp.retryCount)
        qp.completer.rnrRetriesLeft = Int(qp.rnrRetry)
        // Acknowledged beyond what a go-back has re-sent so far: skip ahead.
        if qp.requester.nextPSN.isBefore(psn + 1) { goBack(qp, to: psn + 1) }
        if nothingUnacknowledged(qp) { qp.completer.timerDeadline = 0 } else { armRetransmitTimer(qp, now: now) }
    }

    /// Completes the oldest send request with `status` (a completion when signaled or failed).
    func completeOldest(_ qp: SoftQueuePair, status: SoftCompletionStatus) {
        let queue = qp.sendQueue
        let entry = queue.entry(queue.head).pointee
        let request = entry.request
        if status != .success || request.signaled || qp.signalAll {
            var completion = SoftCompletion()
            completion.id = request.id
            completion.status = status
            completion.opcode = request.opcode.completionOpcode
            completion.byteLength = status == .success ? UInt32(entry.length) : 0
            completion.queuePairNumber = qp.number
            if !qp.sendCompletionQueue.push(completion) { counters.completionQueueOverruns += 1 }
        }
        if status == .success && (request.opcode == .send || request.opcode == .sendWithImmediate) { counters.rdmaSends += 1 }
        queue.head += 1
        if qp.requester.cursor < queue.head {
            qp.requester.cursor = queue.head
            qp.requester.packetIndex = 0
        }
    }

    /// The oldest request failed: complete it with `status`, flush the rest, QP to ERROR.
    func fail(_ qp: SoftQueuePair, status: SoftCompletionStatus) {
        if qp.sendQueue.outstanding > 0 { completeOldest(qp, status: status) }
        enterError(qp)
    }

    /// ERROR: timers stop, every outstanding send and receive completes as flushed.
    func enterError(_ qp: SoftQueuePair) {
        qp.state = .error
        qp.completer.timerDeadline = 0
        qp.requester.rnrUntil = 0
        while qp.sendQueue.outstanding > 0 { completeOldest(qp, status: .flushed) }
        qp.requester.cursor = qp.sendQueue.tail
        if qp.responder.activeReceive != nil { finishActiveReceive(qp, status: .flushed, length: 0) }
        qp.responder.inbound = .none
        while let id = qp.receiveRing.discardOldest() {
            completeReceive(qp, id: id, status: .flushed, length: 0)
        }
    }
}
