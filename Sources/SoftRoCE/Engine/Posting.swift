#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import RoCEWire

// The verbs entry points of the data path: post a send or a receive, poll a completion
// queue, arm it, wait on its channel. Each takes the device lock once.

extension SoftDevice {
    /// Posts one send request and starts transmitting it in the caller's thread, as rxe's
    /// post_send kicks its requester. Throws EINVAL (wrong state, bad request) or ENOMEM (full).
    package func postSend(_ qp: SoftQueuePair, _ request: SoftSendRequest, _ list: UnsafeBufferPointer<SoftScatterGather>) throws(SoftRoCEError) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        engineEntries &+= 1
        if let error = enqueueSend(qp, request, list) { throw error }
        guard !closed else { return }
        if qp.isSending {
            if qp.type == .reliableConnected {
                let now = clock.now()
                // A one-packet message alone on the queue leaves by itself: holding it would only
                // add a copy and `sendmmsg`'s bookkeeping to a ping-pong's every request.
                let queue = qp.sendQueue
                if queue.tail - qp.requester.cursor == 1 && queue.entry(queue.tail - 1).pointee.packetCount == 1 {
                    transmit(qp, now: now)
                } else {
                    batchingSends { transmit(qp, now: now) }
                }
            } else {
                transmitDatagrams(qp)
            }
        }
        // ACKs a poll deferred go out behind this request, in a call of their own: sent in one
        // `sendmmsg` with it, the peer's engine handled the ACK in the round that delivers the
        // request, ahead of its completion (2 B ping-pong p50 +0.1 µs, +0.25 µs in assume-id0,
        // 3 of 3 interleaved rounds of tools/bench-soft-compare).
        sendAcknowledgementsDue()
    }

    private func enqueueSend(_ qp: SoftQueuePair, _ request: SoftSendRequest, _ list: UnsafeBufferPointer<SoftScatterGather>) -> SoftRoCEError? {
        switch qp.state {
        case .readyToSend, .sendQueueDrained, .error: break
        default: return SoftRoCEError("post send", errno: EINVAL, "the QP is \(qp.state), must be RTS")
        }
        let queue = qp.sendQueue
        guard !queue.isFull else { return SoftRoCEError("post send", errno: ENOMEM, "the send queue is full") }
        guard list.count <= queue.maxScatterGather else { return SoftRoCEError("post send", errno: EINVAL, "too many scatter-gather elements") }
        if qp.type == .unreliableDatagram && (request.opcode != .send && request.opcode != .sendWithImmediate || request.destination == nil) {
            return SoftRoCEError("post send", errno: EINVAL, "a UD QP sends only SEND with an address handle")
        }
        var length = 0
        for element in list { length += Int(element.length) }
        if length > Int(Int32.max) { return SoftRoCEError("post send", errno: EINVAL, "message longer than 2 GiB") }
        if qp.type == .unreliableDatagram && length > qp.mtu { return SoftRoCEError("post send", errno: EINVAL, "a UD message must fit the MTU") }
        if request.inline && length > queue.maxInline { return SoftRoCEError("post send", errno: EINVAL, "inline data longer than maxInline \(queue.maxInline)") }
        let index = queue.tail
        if request.inline {
            var offset = 0
            for element in list where element.length > 0 {
                guard let source = UnsafeRawPointer(bitPattern: UInt(element.address)) else { return SoftRoCEError("post send", errno: EINVAL, "null inline buffer") }
                (queue.inlineData(of: index) + offset).copyMemory(from: source, byteCount: Int(element.length))
                offset += Int(element.length)
            }
        } else if let base = list.baseAddress {
            queue.elements(of: index).update(from: base, count: list.count)
        }
        var entry = SendQueue.Entry()
        entry.request = request
        entry.length = length
        entry.elementCount = list.count
        entry.packetCount = request.opcode == .compareAndSwap || request.opcode == .fetchAndAdd ? 1 : max(1, (length + qp.mtu - 1) / qp.mtu)
        queue.entry(index).pointee = entry
        queue.tail += 1
        activate(qp)
        if qp.state == .error {
            // Posting to a QP in error completes the request as flushed (as rxe does).
            completeOldest(qp, status: .flushed)
        }
        return nil
    }

    /// Posts one receive to a QP. Throws ENOMEM when the queue is full (a receive being
    /// filled still counts), EINVAL for too many elements or a QP in RESET.
    package func postReceive(_ qp: SoftQueuePair, id: UInt64, _ list: UnsafeBufferPointer<SoftScatterGather>) throws(SoftRoCEError) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard qp.state != .reset else { throw SoftRoCEError("post receive", errno: EINVAL, "the QP is in RESET") }
        if qp.state == .error {
            completeReceive(qp, id: id, status: .flushed, length: 0)
            return
        }
        try Self.check(qp.receiveRing.post(id: id, list), operation: "post receive")
    }

    /// Posts one receive to a shared receive queue.
    package func postReceive(_ queue: SoftSharedReceiveQueue, id: UInt64, _ list: UnsafeBufferPointer<SoftScatterGather>) throws(SoftRoCEError) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        try Self.check(queue.ring.post(id: id, list), operation: "post SRQ receive")
    }

    private static func check(_ failure: ReceiveRing.PostFailure?, operation: String) throws(SoftRoCEError) {
        switch failure {
        case nil: return
        case .full: throw SoftRoCEError(operation, errno: ENOMEM, "the receive queue is full (receives being filled count until they complete)")
        case .tooManyElements: throw SoftRoCEError(operation, errno: EINVAL, "more scatter-gather elements than the queue allows")
        }
    }

    /// Drives the engine (when the queue cannot fill `buffer` by itself), then moves up to
    /// `buffer.count` completions into it.
    package func poll(_ queue: SoftCompletionQueue, into buffer: UnsafeMutableBufferPointer<SoftCompletion>) -> Int {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        engineEntries &+= 1
        let now = queue.count < buffer.count ? progressLocked(deferringFor: queue) : 0
        let taken = queue.pop(into: buffer)
        if taken == 0 {
            sendAcknowledgementsDue()
        } else if !acknowledgementsDue.isEmpty {
            deferAcknowledgements(now: now != 0 ? now : clock.now())
        }
        return taken
    }

    /// Arms `queue`: its channel gets one event at the next completion.
    package func requestNotification(_ queue: SoftCompletionQueue, solicitedOnly: Bool) {
        locked {
            queue.armed = true
            queue.solicitedOnly = solicitedOnly
        }
    }

    /// Waits up to `timeoutMilliseconds` (negative: forever) for an event on `channel`,
    /// driving the engine meanwhile; returns the queue that has it, or nil on timeout or
    /// when the channel was woken (`SoftCompletionChannel.wake()`).
    package func waitForEvent(_ channel: SoftCompletionChannel, timeoutMilliseconds: Int32) -> SoftCompletionQueue? {
        let start = EngineClock.monotonicNanoseconds()
        let limit = timeoutMilliseconds < 0 ? UInt64.max : start + UInt64(timeoutMilliseconds) * 1_000_000
        while true {
            let queue: SoftCompletionQueue? = locked {
                progressLocked()
                guard !channel.pending.isEmpty else { return nil }
                _ = channel.consume()
                return channel.pending.removeFirst()
            }
            if let queue { return queue }
            if channel.takeWake() { return nil }
            if EngineClock.monotonicNanoseconds() >= limit { return nil }
            waitForTraffic(also: channel.fileDescriptor, milliseconds: 1)
        }
    }
}
