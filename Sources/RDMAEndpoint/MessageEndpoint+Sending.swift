import RDMA

// The send side: a credit, a send buffer and send-queue room per message; a rendezvous
// slot and an RDMA WRITE first for a message above the eager threshold.
extension MessageEndpoint {
    /// `sendLocked` for an array's bytes (the async API's payloads).
    func sendLocked(kind: MessageHeader.Kind, callID: UInt64, bytes: [UInt8]) throws(EndpointError) -> Bool {
        let result: Result<Bool, EndpointError> = bytes.withUnsafeBytes { raw in
            Result { () throws(EndpointError) in
                try sendLocked(kind: kind, callID: callID, length: raw.count) { $0.copyMemory(from: raw) }
            }
        }
        return try result.get()
    }

    /// Sends now if the resources are there (true), or leaves everything untouched (false).
    /// `fill` writes exactly `length` payload bytes into registered memory.
    func sendLocked(kind: MessageHeader.Kind, callID: UInt64, length: Int,
                    fill: (UnsafeMutableRawBufferPointer) -> Void) throws(EndpointError) -> Bool {
        try requireRunningLocked()
        guard let peer else { return false }
        let rendezvous = length > eagerLimit
        if rendezvous && length > rendezvousSizeOut {
            throw .messageTooLarge(length: length, limit: max(eagerLimit, rendezvousSizeOut))
        }
        // A rendezvous message also needs a rendezvous slot and room for its WRITE.
        guard canSendEagerLocked,
              !rendezvous || (sendQueue.room >= 3 && rendezvousSent - peerReleased < UInt64(rendezvousSlotsOut)) else {
            metrics.creditStalls.increment()
            return false
        }
        let slot = sendSlots.take()!
        var rendezvousSlot: UInt16?
        if rendezvous {
            let staging = memory.rendezvousOut!
            let stagingOffset = Int(rendezvousSent % UInt64(configuration.rendezvousSlots)) * configuration.rendezvousSlotSize
            fill(UnsafeMutableRawBufferPointer(start: staging.base + stagingOffset, count: length))
            let remoteSlot = Int(rendezvousSent % UInt64(peer.rendezvousSlots))
            let remote = RemoteMemory(address: peer.rendezvousRegion.address + UInt64(remoteSlot) * UInt64(peer.rendezvousSlotSize),
                                      rkey: peer.rendezvousRegion.rkey, length: UInt32(length))
            let element = ScatterGatherElement(address: staging.address(stagingOffset), length: UInt32(length), lkey: staging.region.lkey)
            do { try postSendLocked(.write(remote), tag: .rendezvousWrite, sendSlot: -1, element: element) } catch {
                sendSlots.put(slot)
                throw .rdma(error)
            }
            rendezvousSent += 1
            rendezvousSlot = UInt16(remoteSlot)
        } else {
            fill(UnsafeMutableRawBufferPointer(start: sendPayloadAddress(slot), count: length))
        }
        try postMessageLocked(slot: slot, kind: kind, callID: callID, length: length, rendezvousSlot: rendezvousSlot)
        return true
    }

    /// True when a message up to the eager limit can go now: a credit, a send buffer and
    /// send-queue room (one for the SEND, one kept for a control write).
    var canSendEagerLocked: Bool {
        peerGranted > messagesSent && sendSlots.available > 0 && sendQueue.room >= 2
    }

    /// Where send buffer `slot`'s payload goes, after the header.
    @inline(__always)
    func sendPayloadAddress(_ slot: Int32) -> UnsafeMutableRawPointer {
        memory.send.base + Int(slot) * memory.slotStride + MessageHeader.size
    }

    /// Writes the header (with the grants and releases to advertise) in front of the payload
    /// already in send buffer `slot` — or, with `rendezvousSlot`, the notice of a payload
    /// written to the peer's rendezvous slot — and posts the SEND (inline when small: the
    /// buffer is free at once), then counts the message. Fails the connection when the post
    /// fails. The corresponding C function is `ibv_post_send`.
    func postMessageLocked(slot: Int32, kind: MessageHeader.Kind, callID: UInt64, length: Int,
                           rendezvousSlot: UInt16? = nil) throws(EndpointError) {
        let header = MessageHeader(kind: kind, isRendezvous: rendezvousSlot != nil, rendezvousSlot: rendezvousSlot ?? 0,
                                   payloadLength: UInt32(length), callID: callID, granted: grantedTotal, released: releasedTotal)
        header.write(to: memory.send.base + Int(slot) * memory.slotStride)
        let sentLength = MessageHeader.size + (header.isRendezvous ? 0 : length)
        let element = ScatterGatherElement(address: memory.send.address(Int(slot) * memory.slotStride),
                                           length: UInt32(sentLength), lkey: memory.send.region.lkey)
        // Inline, the bytes are copied into the work request: the buffer is free at once.
        let inline = sentLength <= inlineLimit
        do {
            try postSendLocked(.send, tag: .eagerSend, sendSlot: inline ? -1 : slot, element: element, inline: inline)
        } catch {
            sendSlots.put(slot)
            failLocked(.rdma(error))
            throw .rdma(error)
        }
        if inline {
            sendSlots.put(slot)
            counts.inlineSends += 1
        }
        messagesSent += 1
        counts.messagesSent += 1
        advertisedGranted = grantedTotal
        advertisedReleased = releasedTotal
        metrics.messagesSent.increment()
        metrics.bytesSent.increment(by: length)
    }
}

extension MessageEndpoint {
    /// Posts one send-queue request and records it in the ledger, signalled or not (see
    /// `SendQueueLedger`); control writes always are. `sendSlot` is the send buffer its
    /// completion frees (-1: none). The corresponding C function is `ibv_post_send`.
    func postSendLocked(_ operation: SendOperation, tag: RequestTag, sendSlot: Int32,
                        element: ScatterGatherElement, inline: Bool = false) throws(RDMAError) {
        let signalled = sendQueue.mustSignal(always: tag == .controlWrite, sendSlotsLeft: sendSlots.available)
        var flags: SendFlags = signalled ? .signaled : []
        if inline { flags.insert(.inline) }
        try queuePair.post(SendWorkRequest(id: sendQueue.nextID(tag), operation: operation, flags: flags), scatterGather: element)
        sendQueue.record(SendQueueLedger.Entry(tag: tag, sendSlot: sendSlot), signalled: signalled)
        counts.sendRequestsPosted += 1
        if signalled { counts.sendRequestsSignalled += 1 }
    }
}
