#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// One round of the engine: send the acknowledgements an earlier round left due, receive a
// batch (responder and completer run on each packet), run each QP's timers, transmit what
// the windows allow, and — unless the caller defers them — send the acknowledgements the
// batch earned. Rounds run in the poller's thread, or on the background progress thread.
//
// A poll that found completions for its caller defers the batch's ACKs so a ping-pong's
// reply leaves before the ACK; the rule and its time bound are in `AcknowledgementFlush.swift`.

extension SoftDevice {
    /// Returns the round's clock reading (0 when the device is closed). With `deferringFor`, the
    /// round's ACKs stay due when it leaves completions in that queue (the poller defers them).
    @discardableResult
    func progressLocked(deferringFor pollerQueue: SoftCompletionQueue? = nil) -> UInt64 {
        guard !closed else { return 0 }
        sendAcknowledgementsDue()
        let now = clock.now()
        // One strong copy for the round: each call through the stored `wire` retains and releases it.
        let wire = self.wire
        wire.service(now: now)
        // READ responses (sent while receiving) and requests leave in GSO batches.
        wire.holdSends()
        receiveBatch(from: wire, now: now)
        if let management = connectionManagement, management.nextDeadline <= now { serviceConnectionTimers(management, now: now) }
        // Only QPs with sends outstanding are visited. The round starts at a different one
        // each time, so when the device's in-flight budget (`Requester.swift`) runs short, no
        // QP is always last in line.
        let count = activeQueuePairs.count
        if count > 0 {
            roundStart = roundStart + 1 < count ? roundStart + 1 : 0
            var inFlight = 0
            var idle = 0
            for step in 0..<count {
                let index = roundStart + step < count ? roundStart + step : roundStart + step - count
                let qp = activeQueuePairs[index]
                if qp.type == .reliableConnected && qp.isSending {
                    checkRetransmitTimer(qp, now: now)
                    if qp.requester.unrequestedSince != 0 { probeUnrequestedTail(qp, now: now) }
                    transmit(qp, now: now)
                    inFlight += bytesInFlight(qp)
                } else if qp.type == .unreliableDatagram {
                    transmitDatagrams(qp)
                }
                if qp.sendQueue.outstanding == 0 { idle += 1 }
            }
            inFlightBytes = inFlight
            if idle > 0 { retireIdleQueuePairs() }
        }
        if pollerQueue.map({ $0.count == 0 }) ?? true { sendAcknowledgementsDue() }
        // The round's packets — GSO batches, or ACKs, NAKs and small requests together — leave now.
        countSendFailure(wire.releaseSends())
        return now
    }

    /// Takes QPs whose sends all completed off the active list (a later post puts them back).
    private func retireIdleQueuePairs() {
        var index = activeQueuePairs.count - 1
        while index >= 0 {
            let qp = activeQueuePairs[index]
            if qp.sendQueue.outstanding == 0 {
                qp.isActive = false
                activeQueuePairs.swapAt(index, activeQueuePairs.count - 1)
                activeQueuePairs.removeLast()
            }
            index -= 1
        }
    }

    /// The earliest time a timer of this device fires (retransmit, RNR wait, a held-back
    /// datagram), or nil when none is armed. A driver with an injected clock jumps to it
    /// when the wire is idle, the way a discrete-event simulator does.
    package func nextDeadline() -> UInt64? {
        locked {
            var earliest = faultWire?.nextRelease
            func consider(_ time: UInt64) {
                if time != 0 && time < earliest ?? .max { earliest = time }
            }
            if acknowledgementsDeferredSince != 0 { consider(acknowledgementsDeferredSince + Self.acknowledgementDelayBound) }
            if let management = connectionManagement, management.nextDeadline != .max { consider(management.nextDeadline) }
            for qp in activeQueuePairs where qp.isSending {
                consider(qp.completer.timerDeadline)
                consider(qp.requester.rnrUntil)
                if qp.requester.unrequestedSince != 0 { consider(qp.requester.unrequestedSince + Self.acknowledgementProbeDelay) }
                // A paced QP with requests left to send is due again when its pacer allows.
                if let pacer = qp.pacer, qp.requester.cursor < qp.sendQueue.tail { consider(pacer.nextSend) }
            }
            return earliest
        }
    }

    /// Drives the engine once without polling a queue.
    package func progress() {
        locked { _ = progressLocked() }
    }

    /// Sleeps in `poll(2)` until the wire (or `descriptor`) is readable, at most `milliseconds`.
    func waitForTraffic(also descriptor: Int32 = -1, milliseconds: Int32) {
        guard let wireDescriptor = locked({ closed ? nil : wire.pollDescriptor }) else {
            if descriptor >= 0 {
                var single = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                _ = Glibc.poll(&single, 1, milliseconds)
            } else {
                usleep(UInt32(milliseconds) * 1000)
            }
            return
        }
        var descriptors = (pollfd(fd: wireDescriptor, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0))
        _ = withUnsafeMutableBytes(of: &descriptors) {
            Glibc.poll($0.baseAddress!.assumingMemoryBound(to: pollfd.self), descriptor >= 0 ? 2 : 1, milliseconds)
        }
    }

    // MARK: - Background progress

    /// Starts a thread that drives the engine whenever the wire is readable (and every
    /// millisecond for timers). For event-driven users of completion channels.
    package func startBackgroundProgress() {
        locked {
            guard progressThread == nil, !closed else { return }
            progressStop = false
            var thread = pthread_t()
            let context = Unmanaged.passRetained(self).toOpaque()
            let result = pthread_create(&thread, nil, { raw in
                let device = Unmanaged<SoftDevice>.fromOpaque(raw!).takeRetainedValue()
                device.backgroundLoop()
                return nil
            }, context)
            if result == 0 { progressThread = thread } else { Unmanaged<SoftDevice>.fromOpaque(context).release() }
        }
    }

    package func stopBackgroundProgress() {
        pthread_mutex_lock(lock)
        guard let thread = progressThread else { pthread_mutex_unlock(lock); return }
        progressStop = true
        progressThread = nil
        pthread_mutex_unlock(lock)
        if pthread_self() != thread { pthread_join(thread, nil) }
    }

    /// Rounds back to back while they receive; poll(2) only after a round that found the wire
    /// empty (after every round, a stream of WRITEs cost a poll call per round on top of its
    /// receive call). After a round that received a stream (`streamPackets` or more packets:
    /// a super-datagram, a full `recvmmsg`), empty rounds go on for `streamSpinNanoseconds`
    /// before the thread sleeps: the sender's next super-datagram is ~20 µs away, and waking
    /// a receiver that slept costs the sender a wake-up per super-datagram (perf: 9.5 % of a
    /// 64 KiB WRITE run in `try_to_wake_up`'s unlock and `finish_task_switch`). A single
    /// small packet (a ping-pong, an RPC) does not start the spin, so a thread that has
    /// nothing streaming still sleeps at once and leaves the CPU to others.
    private func backgroundLoop() {
        var spinUntil: UInt64 = 0
        while true {
            let (stop, packets): (Bool, UInt64) = locked {
                let stop = progressStop || closed
                let before = counters.receivedPackets
                if !stop { progressLocked() }
                return (stop, counters.receivedPackets &- before)
            }
            if stop { return }
            switch Self.afterBackgroundRound(receivedPackets: packets, spinUntil: spinUntil, now: EngineClock.monotonicNanoseconds) {
            case .runAgain(let until): spinUntil = until
            case .sleep: spinUntil = 0; waitForTraffic(milliseconds: 1)
            }
        }
    }

    /// What the background thread does after a round.
    enum BackgroundStep: Equatable {
        /// Another round at once; keep spinning until `spinUntil` (0: no spin under way).
        case runAgain(spinUntil: UInt64)
        /// poll(2) until the wire is readable.
        case sleep
    }

    /// Packets in one round that make it a stream.
    static let streamPackets: UInt64 = 4
    /// How long empty rounds go on after a stream's round before the thread sleeps.
    static let streamSpinNanoseconds: UInt64 = 50_000

    /// The background thread's rule (see `backgroundLoop`): `now` is read only when needed.
    static func afterBackgroundRound(receivedPackets: UInt64, spinUntil: UInt64, now: () -> UInt64) -> BackgroundStep {
        if receivedPackets >= streamPackets { return .runAgain(spinUntil: now() &+ streamSpinNanoseconds) }
        if receivedPackets > 0 { return .runAgain(spinUntil: spinUntil) }
        if spinUntil != 0 && now() < spinUntil { return .runAgain(spinUntil: spinUntil) }
        return .sleep
    }
}
