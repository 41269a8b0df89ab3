#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Poll mode: rounds driven from the caller's own thread, run to completion — the one-shot
// tries (`trySend`, `tryReceive`, `trySendRequest`/`takeResponse`), the calls that poll
// until their response (`callPolling`), and serving in place (`answerPolling`).
extension MessageEndpoint {
    /// Runs one round: drains the completion queues (driving the soft engine), applies the
    /// peer's credits, posts credit grants that are due. Returns how many completions it
    /// handled. Throws the connection's error once it failed.
    ///
    /// With `rounds` > 1, runs up to that many rounds under one lock, stopping after the
    /// first that handled a completion: a poll loop's empty rounds then pay one lock
    /// (two atomic operations) per `rounds` instead of one each. Another thread using the
    /// endpoint meanwhile (releasing a message, reading `statistics`) waits for them.
    ///
    /// ```swift
    /// var emptyRounds = 0
    /// while running {
    ///     let rounds = MessageEndpoint.emptyRoundsPerLock
    ///     if try endpoint.poll(rounds: rounds) == 0 { MessageEndpoint.idle(&emptyRounds, rounds: rounds); continue }
    ///     while let request = try endpoint.tryReceive() { answer(request) }
    /// }
    /// ```
    @discardableResult
    public func poll(rounds: Int = 1) throws(EndpointError) -> Int {
        try lock.locked { () throws(EndpointError) -> Int in try pollLocked(rounds: rounds) }
    }

    /// `poll(rounds:)` under the lock already held: the rounds, then the connection's end
    /// once nothing it delivered is left to read.
    func pollLocked(rounds: Int) throws(EndpointError) -> Int {
        let handled = progressLocked(rounds: rounds)
        if case .failed(let error) = phase, inbound.isEmpty { throw error }
        if case .closed = phase { throw .closed }
        return handled
    }

    /// Rounds a poll-mode caller runs under one lock while nothing happens (`callPolling`;
    /// `poll(rounds:)` for loops of your own): a lock and unlock took 60-80 ns in the lab's
    /// emulated VM (7 ns on the host), per round on both sides of every call.
    public static let emptyRoundsPerLock = 32

    /// Up to `rounds` rounds, until one handles a completion or the connection stops running.
    func progressLocked(rounds: Int) -> Int {
        var handled = progressLocked()
        var done = 1
        while handled == 0, done < rounds, isRunningLocked {
            handled = progressLocked()
            done += 1
        }
        return handled
    }

    var isRunningLocked: Bool {
        if case .running = phase { return true }
        return false
    }

    /// Sends a one-way message if a credit and a buffer are free now; false otherwise
    /// (poll, then try again). Messages arrive in the order they were sent.
    public func trySend(_ bytes: UnsafeRawBufferPointer) throws(EndpointError) -> Bool {
        try lock.locked { () throws(EndpointError) in
            try sendLocked(kind: .message, callID: 0, length: bytes.count) { $0.copyMemory(from: bytes) }
        }
    }

    /// Zero-copy send: `fill` writes the payload straight into the registered send
    /// buffer (`length` bytes). False when no credit or buffer is free now.
    public func trySend(length: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) throws(EndpointError) -> Bool {
        try lock.locked { () throws(EndpointError) in
            try sendLocked(kind: .message, callID: 0, length: length, fill: fill)
        }
    }

    /// Sends a request and returns its call ID, or nil when no credit, buffer or call slot
    /// is free now. Collect the response with `takeResponse(_:)`.
    public func trySendRequest(_ bytes: UnsafeRawBufferPointer, timeout: Duration? = nil) throws(EndpointError) -> UInt64? {
        try lock.locked { () throws(EndpointError) -> UInt64? in
            try requireRunningLocked()
            guard let id = newCallLocked(timeout: timeout, state: .waiting) else { return nil }
            if try sendLocked(kind: .request, callID: id, length: bytes.count, fill: { $0.copyMemory(from: bytes) }) {
                return id
            }
            calls.free(calls.index(id))
            return nil
        }
    }

    /// The response to call `id` if it arrived, nil if not yet. Throws when the call
    /// timed out (checked against its deadline here) or the connection failed.
    public func takeResponse(_ id: UInt64) throws(EndpointError) -> ReceivedMessage? {
        let entry: InboundEntry? = try lock.locked { () throws(EndpointError) -> InboundEntry? in try takeResponseLocked(id) }
        guard let entry else { return nil }
        return ReceivedMessage(endpoint: self, entry: entry)
    }

    func takeResponseLocked(_ id: UInt64) throws(EndpointError) -> InboundEntry? {
        guard let slot = calls.outstanding(id) else {
            throw .invalidConfiguration(field: "callID", detail: "call \(id) is not outstanding")
        }
        let call = calls[slot]
        if call.state == .completed {
            calls.free(slot)
            return call.response
        }
        if case .failed(let error) = phase { calls.free(slot); throw error }
        if case .closed = phase { calls.free(slot); throw .closed }
        if call.deadlineNanoseconds != 0 && monotonicNanoseconds() >= call.deadlineNanoseconds {
            calls[slot].state = .abandoned
            throw .timedOut
        }
        return nil
    }

    /// Gives up on call `id`: its response, if it ever comes, is released on arrival.
    public func abandonCall(_ id: UInt64) {
        lock.locked {
            guard let slot = calls.outstanding(id) else { return }
            if calls[slot].state == .completed {
                let response = calls[slot].response
                calls.free(slot)
                releaseLocked(response.location)
            } else {
                calls[slot].state = .abandoned
            }
        }
    }

    /// Sends the response to call `callID` (a request's `callID`) if a credit and a buffer
    /// are free now; false otherwise.
    public func trySendResponse(to callID: UInt64, _ bytes: UnsafeRawBufferPointer) throws(EndpointError) -> Bool {
        try lock.locked { () throws(EndpointError) in
            try sendLocked(kind: .response, callID: callID, length: bytes.count) { $0.copyMemory(from: bytes) }
        }
    }

    /// The next one-way message or request, in arrival order; nil when none is waiting.
    public func tryReceive() throws(EndpointError) -> ReceivedMessage? {
        let entry: InboundEntry? = try lock.locked { () throws(EndpointError) -> InboundEntry? in
            if let entry = inbound.popFirst() { return entry }
            if case .failed(let error) = phase { throw error }
            if case .closed = phase { throw .closed }
            return nil
        }
        guard let entry else { return nil }
        return ReceivedMessage(endpoint: self, entry: entry)
    }

    /// Run-to-completion call: sends `bytes` as a request and polls until its response
    /// arrives, in the caller's thread. Allocates nothing. After every 256 empty rounds it
    /// yields the CPU (`sched_yield`), as rdma-pingpong does: kernel rxe's deferred work
    /// (ksoftirqd) on this CPU then runs at once, not at the next scheduler tick — 4 ms at
    /// HZ=250, which a spinning caller made the p50 of whole runs in the lab VM.
    public func callPolling(_ bytes: UnsafeRawBufferPointer, timeout: Duration? = nil) throws(EndpointError) -> ReceivedMessage {
        let id = try sendRequestPolling(bytes, timeout: timeout)
        let entry = try waitForResponsePolling(id, timeout: timeout) { $0 }
        return ReceivedMessage(endpoint: self, entry: entry)
    }

    /// `callPolling` that hands the response to `read` in place and gives its buffer back
    /// in the same lock: no `ReceivedMessage`, one lock less per call. `read` runs under the
    /// endpoint's lock — calling the endpoint from it traps — and must not keep the pointer.
    ///
    /// ```swift
    /// let value = try endpoint.callPolling(request) { response in response.load(as: UInt64.self) }
    /// ```
    @inlinable
    public func callPolling<Result>(_ bytes: UnsafeRawBufferPointer, timeout: Duration? = nil,
                                    readingResponse read: (UnsafeRawBufferPointer) -> Result) throws(EndpointError) -> Result {
        // Generic only here, inlined into the caller: an unspecialised generic path would look
        // up the result's type metadata on every call.
        var result: Result?
        try callPollingInPlace(bytes, timeout: timeout) { result = read($0) }
        return result!
    }

    @usableFromInline
    func callPollingInPlace(_ bytes: UnsafeRawBufferPointer, timeout: Duration?,
                            _ read: (UnsafeRawBufferPointer) -> Void) throws(EndpointError) {
        let id = try sendRequestPolling(bytes, timeout: timeout)
        try waitForResponsePolling(id, timeout: timeout) { entry in
            read(UnsafeRawBufferPointer(start: payloadAddress(entry.location), count: entry.length))
            releaseLocked(entry.location)
        }
    }

    /// Sends the request of a poll-mode call, polling while no credit, buffer or call slot is free.
    private func sendRequestPolling(_ bytes: UnsafeRawBufferPointer, timeout: Duration?) throws(EndpointError) -> UInt64 {
        var emptyRounds = 0
        while true {
            if let id = try trySendRequest(bytes, timeout: timeout) { return id }
            if try poll() == 0 { MessageEndpoint.idle(&emptyRounds) }
        }
    }

    /// Polls until call `id`'s response arrived, then hands its entry to `take` under the lock.
    /// One lock per round that handled something (up to `emptyRoundsPerLock` empty ones
    /// before it), the rounds and the look at the call together. A round that handled
    /// nothing cannot have completed the call; only a deadline or a failure needs the look
    /// then.
    private func waitForResponsePolling<Result>(_ id: UInt64, timeout: Duration?,
                                                _ take: (InboundEntry) -> Result) throws(EndpointError) -> Result {
        var emptyRounds = 0
        let untimed = timeout == nil
        let rounds = untimed ? Self.emptyRoundsPerLock : 1
        while true {
            let (handled, result) = try lock.locked { () throws(EndpointError) -> (Int, Result?) in
                let handled = progressLocked(rounds: rounds)
                if handled == 0, untimed, isRunningLocked { return (0, nil) }
                guard let entry = try takeResponseLocked(id) else { return (handled, nil) }
                return (handled, take(entry))
            }
            if let result { return result }
            if handled == 0 { MessageEndpoint.idle(&emptyRounds, rounds: rounds) }
        }
    }

    /// Run-to-completion serving: one `poll(rounds:)`, then the requests waiting at the head
    /// of the queue are answered in place — `answer` reads a request's payload and writes
    /// the response's straight into a registered send buffer (up to the eager limit; it
    /// returns the length), the SEND goes out and the request's buffer goes back, all under
    /// one lock, with no `ReceivedMessage` and no copy. eRPC's dispatch-thread handlers are
    /// the model. Returns the completions handled, as `poll(rounds:)` does (0: idle).
    ///
    /// It stops at a one-way message, left for `tryReceive` so that arrival order holds,
    /// and when no credit or send buffer is free (the request waits for the next call).
    /// `answer` runs under the endpoint's lock: calling the endpoint from it traps. For a
    /// response above the eager limit, use `tryReceive` and `trySendResponse`.
    ///
    /// ```swift
    /// var emptyRounds = 0
    /// while running {
    ///     let rounds = MessageEndpoint.emptyRoundsPerLock
    ///     let handled = try endpoint.answerPolling(rounds: rounds) { request, response in
    ///         response.copyMemory(from: request)     // an echo
    ///         return request.count
    ///     }
    ///     if handled == 0 { MessageEndpoint.idle(&emptyRounds, rounds: rounds) }
    /// }
    /// ```
    @discardableResult
    public func answerPolling(rounds: Int = 1,
                              _ answer: (_ request: UnsafeRawBufferPointer, _ response: UnsafeMutableRawBufferPointer) -> Int) throws(EndpointError) -> Int {
        try lock.locked { () throws(EndpointError) -> Int in
            let handled = try pollLocked(rounds: rounds)
            while isRunningLocked, let entry = inbound.first, entry.kind == .request {
                guard canSendEagerLocked else {
                    metrics.creditStalls.increment()
                    break
                }
                _ = inbound.popFirst()
                let slot = sendSlots.take()!
                let room = UnsafeMutableRawBufferPointer(start: sendPayloadAddress(slot), count: eagerLimit)
                let length = answer(UnsafeRawBufferPointer(start: payloadAddress(entry.location), count: entry.length), room)
                precondition((0...eagerLimit).contains(length),
                             "answerPolling: the answer's length \(length) is outside 0...\(eagerLimit) (the eager limit)")
                // The request's buffer goes back whether the response's post works or not.
                defer { releaseLocked(entry.location) }
                try postMessageLocked(slot: slot, kind: .response, callID: entry.callID, length: length)
            }
            return handled
        }
    }

    /// For a poll loop's empty round (or `rounds` of them, after `poll(rounds:)`): counts
    /// them, and every 256th yields the CPU (`sched_yield`), so that kernel work deferred
    /// to this CPU runs now rather than at the next scheduler tick (see `callPolling`).
    /// Poll loops of your own can call it.
    ///
    /// ```swift
    /// var emptyRounds = 0
    /// while running {
    ///     if try endpoint.poll() == 0 { MessageEndpoint.idle(&emptyRounds) }
    ///     while let request = try endpoint.tryReceive() { answer(request) }
    /// }
    /// ```
    @inline(__always)
    public static func idle(_ emptyRounds: inout Int, rounds: Int = 1) {
        let before = emptyRounds
        emptyRounds &+= rounds
        if before >> 8 != emptyRounds >> 8 { sched_yield() }
    }
}
