import Logging
import RDMA

/// Work request IDs: a tag in the top byte; below it a receive's slot, or a send-queue
/// request's sequence number (`SendQueueLedger`).
enum RequestTag: UInt64 {
    case receive = 1, eagerSend = 2, rendezvousWrite = 3, controlWrite = 4

    @inline(__always) func id(_ index: Int32) -> UInt64 { rawValue << 56 | UInt64(UInt32(bitPattern: index)) }
    @inline(__always) static func split(_ id: UInt64) -> (RequestTag?, Int32) {
        (RequestTag(rawValue: id >> 56), Int32(truncatingIfNeeded: id & 0xFFFF_FFFF))
    }
}

// The receive side and the credit protocol: completions in, grants and releases out, and
// every check of what the peer sent.
extension MessageEndpoint {
    /// Queues receive buffer `slot` for the next `postQueuedReceives`.
    func queueReceive(_ slot: Int32) throws(EndpointError) {
        let element = ScatterGatherElement(address: memory.receive.address(Int(slot) * memory.slotStride),
                                           length: UInt32(memory.slotStride), lkey: memory.receive.region.lkey)
        do { try receivesToPost.append(id: RequestTag.receive.id(slot), scatterGather: element) } catch { throw .rdma(error) }
    }

    /// Posts the queued receive buffers (and those released since the last round) in one
    /// call: that many more credits for the peer. The corresponding C function is
    /// `ibv_post_recv`.
    func postQueuedReceives() throws(EndpointError) {
        while let slot = releasedReceives.popFirst() { try queueReceive(slot) }
        let count = receivesToPost.count
        guard count > 0 else { return }
        defer { receivesToPost.removeAll() }
        do { try queuePair.postReceive(receivesToPost) } catch { throw .rdma(error) }
        grantedTotal += UInt64(count)
        counts.receivesPosted += UInt64(count)
        counts.receivePostCalls += 1
    }

    /// One round: the peer's control block, then every completion, then what we owe.
    func progressLocked() -> Int {
        guard case .running = phase else {
            if case .failed = phase { drainSendCompletionsAfterClose() }
            return 0
        }
        // Read the control block before draining: everything the peer sent before a close
        // landed in our completion queue before the close reached the block.
        let control = ControlBlock.read(memory.controlIn.base)
        var handled = 0
        let creditsBefore = peerGranted, releasesBefore = peerReleased
        do throws(EndpointError) {
            try applyGrant(control.granted, field: "controlBlock.granted")
            try applyReleased(control.released, field: "controlBlock.released")
            handled = try drainCompletionsLocked()
        } catch {
            failLocked(explainFailureLocked(error))
            return handled
        }
        if control.closeReason != 0, case .running = phase {
            peerCloseReason = control.closeReason
            failLocked(.peerClosed(reason: control.closeReason), log: true)
            return handled
        }
        // Released buffers go back once per round (in poll mode a release only queues them).
        // An empty round skips both calls: the poll loop's round is what a message waits
        // for, and the lab's emulated CPU pays for every instruction of it.
        if !releasedReceives.isEmpty {
            do { try postQueuedReceives() } catch {
                failLocked(error)
                return handled
            }
        }
        // Credits also arrive by a WRITE into the control block, which completes nothing here.
        if mode == .async && (handled > 0 || peerGranted != creditsBefore || peerReleased != releasesBefore) {
            drainPendingSendsLocked()
        }
        flushControlLocked()
        return handled
    }

    private func drainCompletionsLocked() throws(EndpointError) -> Int {
        var handled = 0
        let separate = receiveCompletionQueue.toOpaque() != sendCompletionQueue.toOpaque()
        while true {
            let count = try pollLocked(sendCompletionQueue)
            for index in 0..<count { try handleCompletion(completions[index]) }
            var received = 0
            if separate {
                received = try pollLocked(receiveCompletionQueue)
                for index in 0..<received { try handleCompletion(completions[index]) }
            }
            handled += count + received
            counts.completionsPolled += UInt64(count + received)
            if count < completions.count && received < completions.count { return handled }
        }
    }

    /// One `ibv_poll_cq` into `completions`, the queue borrowed without a retain (see
    /// `sendCompletionQueue`).
    @inline(__always)
    private func pollLocked(_ queue: Unmanaged<CompletionQueue>) throws(EndpointError) -> Int {
        let buffer = completions
        let result = queue._withUnsafeGuaranteedRef { queue in
            Result { () throws(RDMAError) -> Int in try queue.poll(into: buffer) }
        }
        counts.completionQueuePolls += 1
        do { return try result.get() } catch { throw .rdma(error) }
    }

    private func handleCompletion(_ completion: WorkCompletion) throws(EndpointError) {
        let (tag, index) = RequestTag.split(completion.id)
        guard let tag else { return }
        if tag == .receive {
            try handleReceive(completion, slot: index)
            return
        }
        retireSendsLocked(through: completion.id)
        guard completion.status == .success else {
            throw .completionFailed(operation: tag == .controlWrite ? "control RDMA WRITE" : tag == .rendezvousWrite ? "rendezvous RDMA WRITE" : "SEND",
                                    status: completion.status)
        }
    }

    private func handleReceive(_ completion: WorkCompletion, slot: Int32) throws(EndpointError) {
        guard completion.status == .success else {
            // Our receives are well formed (one element inside the pool), so a receive that
            // fails on its own is a message that did not fit: LOC_LEN_ERR on the soft engine
            // and most hardware, LOC_QP_OP_ERR on kernel rxe (its responder calls the
            // overflow a malformed WQE).
            if completion.status == .localLengthError || completion.status == .localQueuePairOperationError {
                throw .protocolViolation(field: "message.length", detail: "the peer sent more than a \(memory.slotStride)-byte receive buffer holds (eager limit \(configuration.eagerLimit); the device reported \(completion.status.verbsName))")
            }
            throw .completionFailed(operation: "receive", status: completion.status)
        }
        guard Int(slot) < configuration.receiveSlots else { return }
        messagesReceived += 1
        counts.messagesReceived += 1
        let base = memory.receive.base + Int(slot) * memory.slotStride
        let byteLength = Int(completion.byteLength)
        let header = try MessageHeader.parse(base, byteLength: byteLength)
        try applyGrant(header.granted, field: "header.granted")
        try applyReleased(header.released, field: "header.released")
        var entry = InboundEntry(kind: header.kind, location: PayloadLocation(isRendezvous: false, index: slot),
                                 length: Int(header.payloadLength), callID: header.callID)
        if header.isRendezvous {
            let slots = configuration.rendezvousSlots
            guard slots > 0 else {
                throw .protocolViolation(field: "header.rendezvous", detail: "a rendezvous message, but we offered no rendezvous slots")
            }
            guard byteLength == MessageHeader.size else {
                throw .protocolViolation(field: "header.length", detail: "a rendezvous notice of \(byteLength) bytes, expected \(MessageHeader.size)")
            }
            guard Int(header.payloadLength) <= configuration.rendezvousSlotSize else {
                throw .protocolViolation(field: "rendezvous.length", detail: "\(header.payloadLength) bytes exceed the \(configuration.rendezvousSlotSize)-byte rendezvous slot")
            }
            let expected = Int(rendezvousReceived % UInt64(slots))
            guard Int(header.rendezvousSlot) == expected else {
                throw .protocolViolation(field: "rendezvous.slot", detail: "slot \(header.rendezvousSlot), expected \(expected)")
            }
            rendezvousReceived += 1
            entry.location = PayloadLocation(isRendezvous: true, index: Int32(expected))
            // The notice's buffer is free at once: the payload lives in the rendezvous slot.
            try repostLocked(slot)
        } else {
            guard Int(header.payloadLength) == byteLength - MessageHeader.size else {
                throw .protocolViolation(field: "header.payloadLength", detail: "says \(header.payloadLength) bytes, \(byteLength - MessageHeader.size) arrived")
            }
        }
        metrics.messagesReceived.increment()
        metrics.bytesReceived.increment(by: entry.length)
        switch header.kind {
        case .message, .request:
            deliverLocked(entry)
        case .response:
            guard let callSlot = calls.outstanding(header.callID),
                  calls[callSlot].state == .waiting || calls[callSlot].state == .abandoned else {
                releaseLocked(entry.location)
                throw .protocolViolation(field: "header.callID", detail: "a response to call \(header.callID), which is not outstanding")
            }
            completeCallLocked(callSlot, with: entry)
        }
    }

    private func completeCallLocked(_ slot: Int, with entry: InboundEntry) {
        let call = calls[slot]
        metrics.calls.increment()
        counts.calls += 1
        if call.startNanoseconds != 0 {
            metrics.callDuration.recordNanoseconds(Int64(monotonicNanoseconds() &- call.startNanoseconds))
        }
        if call.state == .abandoned {
            calls.free(slot)
            releaseLocked(entry.location)
            return
        }
        if let continuation = callContinuations[slot] {
            callContinuations[slot] = nil
            calls.free(slot)
            continuation.resume(returning: .response(entry))
            return
        }
        calls[slot].state = .completed
        calls[slot].response = entry
    }

    /// The peer's cumulative grant: never more than the buffers it could have posted (its
    /// initial slots plus one per message of ours it consumed).
    func applyGrant(_ granted: UInt64, field: String) throws(EndpointError) {
        guard granted > peerGranted, let peer else { return }
        let possible = messagesSent + UInt64(peer.receiveSlots)
        guard granted <= possible else {
            throw .protocolViolation(field: field, detail: "the peer granted \(granted) receive buffers but can have posted at most \(possible)")
        }
        peerGranted = granted
    }

    /// The peer's cumulative rendezvous releases: never more than we sent.
    func applyReleased(_ released: UInt64, field: String) throws(EndpointError) {
        guard released > peerReleased else { return }
        guard released <= rendezvousSent else {
            throw .protocolViolation(field: field, detail: "the peer released \(released) rendezvous slots, we used \(rendezvousSent)")
        }
        peerReleased = released
    }

    /// The send-queue requests up to `id` are done (its completion, and RC's order, say
    /// so): their queue room, send buffers and control-write places come back.
    func retireSendsLocked(through id: UInt64) {
        sendQueue.retire(through: id) { entry in
            if entry.sendSlot >= 0 { sendSlots.put(entry.sendSlot) }
            if entry.tag == .controlWrite { controlWritesCompleted += 1 }
        }
    }

    /// Re-posts receive buffer `slot`: one more credit for the peer. In poll mode it waits
    /// for the end of the round (or the next one) unless the peer may be running short;
    /// in async mode it goes at once, since the driver may be parked. Returns whether it
    /// posted now.
    @discardableResult
    func repostLocked(_ slot: Int32) throws(EndpointError) -> Bool {
        let peerCredits = advertisedGranted &- messagesReceived
        guard mode == .async || peerCredits <= grantThreshold else {
            _ = releasedReceives.append(slot)   // room for every slot: each is in one place
            return false
        }
        try queueReceive(slot)
        try postQueuedReceives()
        return true
    }

    /// A released message's buffer goes back: a receive slot is re-posted (a credit), a
    /// rendezvous slot is marked free and the contiguous released prefix advanced.
    func releaseLocked(_ location: PayloadLocation) {
        guard case .running = phase else { return }
        if location.isRendezvous {
            rendezvousReleasedFlags[Int(location.index)] = true
            let slots = UInt64(configuration.rendezvousSlots)
            while releasedTotal < rendezvousReceived, rendezvousReleasedFlags[Int(releasedTotal % slots)] {
                rendezvousReleasedFlags[Int(releasedTotal % slots)] = false
                releasedTotal += 1
            }
        } else {
            // Only a post can make a grant due: a slot left for the next round changes nothing yet.
            do { guard try repostLocked(location.index) else { return } } catch { failLocked(error); return }
        }
        flushControlLocked()
    }

    /// Whether `flushControlLocked` may have something to send: a grant or release not yet
    /// advertised, a probe or a close asked for.
    @inline(__always)
    var controlWriteMayBeDueLocked: Bool {
        grantedTotal != advertisedGranted || releasedTotal > advertisedReleased || probeRequested || closeReasonToSend != 0
    }

    /// Posts an RDMA WRITE of our control block to the peer's when a grant is due (a
    /// quarter of the pool, or the peer may be running dry), a rendezvous slot was
    /// released, a probe or a close was asked for. The write needs no receive buffer.
    /// Inlined, so that a round with nothing to advertise pays only the check.
    @inline(__always)
    func flushControlLocked() {
        if controlWriteMayBeDueLocked { writeControlLocked() }
    }

    /// `flushControlLocked` once something may be due: decides, and posts the WRITE.
    private func writeControlLocked() {
        guard let peer else { return }
        let pendingGrant = grantedTotal - advertisedGranted
        let peerCredits = advertisedGranted &- messagesReceived
        let grantDue = pendingGrant > 0 && (pendingGrant >= grantThreshold || peerCredits <= grantThreshold)
        let releaseDue = releasedTotal > advertisedReleased
        let closeDue = closeReasonToSend != 0
        guard grantDue || releaseDue || probeRequested || closeDue else { return }
        guard controlWritesPosted - controlWritesCompleted < UInt64(EndpointMemory.controlWritesInFlight),
              sendQueue.room > 0 else { return }
        let source = Int(controlWritesPosted % UInt64(EndpointMemory.controlWritesInFlight)) * ControlBlock.size
        ControlBlock.write(ControlBlock.Values(granted: grantedTotal, released: releasedTotal, closeReason: closeReasonToSend),
                           to: memory.controlOut.base + source)
        let element = ScatterGatherElement(address: memory.controlOut.address(source), length: UInt32(ControlBlock.size),
                                           lkey: memory.controlOut.region.lkey)
        do {
            try postSendLocked(.write(peer.controlBlock), tag: .controlWrite, sendSlot: -1, element: element)
        } catch {
            if !closeDue { failLocked(.rdma(error)) }
            return
        }
        controlWritesPosted += 1
        counts.controlWrites += 1
        advertisedGranted = grantedTotal
        advertisedReleased = releasedTotal
        probeRequested = false
        if closeDue { closeReasonToSend = 0 }
    }

    /// Ends the connection with `error`: every waiter fails with it, a violating peer is
    /// told (close reason 2), nothing is re-posted any more.
    func failLocked(_ error: EndpointError, log: Bool = true) {
        guard case .running = phase else {
            if case .created = phase { phase = .failed(error) }
            failWaitersLocked(error)
            return
        }
        let metadata: Logger.Metadata = ["qpn": "\(queuePair.number)"]
        switch error {
        case .protocolViolation:
            metrics.protocolViolations.increment()
            logger.error("closing the connection: \(error)", metadata: metadata)
            closeReasonToSend = MessageEndpoint.protocolViolationCloseReason
            flushControlLocked()
        case .peerClosed:
            if log { logger.info("\(error)", metadata: metadata) }
        default:
            if log { logger.warning("connection ended: \(error)", metadata: metadata) }
        }
        phase = .failed(error)
        failWaitersLocked(error)
        // Stop all DMA into our buffers now: a violating peer gets nothing more.
        if case .protocolViolation = error {
            try? queuePair.modify(QueuePairAttributes(targetState: .error))
        }
    }

    /// After the connection ended: frees the send side's resources as completions (or
    /// flushes) come in, so that the close write finds room and its completion is counted.
    func drainSendCompletionsAfterClose() {
        while let completion = try? queuePair.sendCompletionQueue.pollOne() {
            switch RequestTag.split(completion.id).0 {
            case .controlWrite, .eagerSend, .rendezvousWrite: retireSendsLocked(through: completion.id)
            case .receive, nil: continue
            }
        }
    }

    /// A message or request for the reader: straight to a waiting task, or into the queue
    /// (which holds as many entries as there are buffers, so it never overflows).
    func deliverLocked(_ entry: InboundEntry) {
        if mode == .async, let waiter = popReceiveWaiterLocked() {
            waiter.resume(returning: .message(entry))
            return
        }
        _ = inbound.append(entry)
    }
}
