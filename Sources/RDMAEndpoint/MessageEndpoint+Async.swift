#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

enum CallOutcome: Sendable {
    case response(InboundEntry)
    case failure(EndpointError)
}

enum ReceiveOutcome: Sendable {
    case message(InboundEntry)
    case failure(EndpointError)
}

extension InboundEntry: @unchecked Sendable {}

struct ReceiveWaiter {
    let id: UInt64
    let continuation: UnsafeContinuation<ReceiveOutcome, Never>
    func resume(returning outcome: ReceiveOutcome) { continuation.resume(returning: outcome) }
}

/// A send waiting for a credit, a buffer or its turn (sends leave in the order they came).
struct PendingSend {
    let kind: MessageHeader.Kind
    /// The request's call (its continuation is in the call table) or the response's.
    let callID: UInt64
    let bytes: [UInt8]
    /// nil for a request: its caller waits for the response, not for the send.
    let continuation: UnsafeContinuation<EndpointError?, Never>?
    let waiterID: UInt64
    var cancelled = false
}

// Async/await driving: tasks post directly when they can and suspend when they cannot; the
// driver thread polls, hands responses and messages to waiting tasks, posts queued sends as
// credits return, times calls out and probes a silent peer.
extension MessageEndpoint {
    /// Sends a one-way message; suspends while no credit or buffer is free. Messages from
    /// this endpoint arrive in the order their `send`s were called.
    public func send(_ bytes: [UInt8]) async throws(EndpointError) {
        try await enqueueSend(kind: .message, callID: 0, bytes: bytes)
    }

    /// Answers request `callID`; suspends while no credit or buffer is free.
    public func respond(to callID: UInt64, with bytes: [UInt8]) async throws(EndpointError) {
        try await enqueueSend(kind: .response, callID: callID, bytes: bytes)
    }

    /// Answers request `callID` with `length` bytes that `fill` writes straight into the
    /// registered send buffer — no copy and no allocation when a credit and a buffer are
    /// free now; otherwise into a copy queued until they are.
    ///
    /// ```swift
    /// let request = try await endpoint.receive()
    /// try await endpoint.respond(to: request.callID, length: request.count) { buffer in
    ///     request.withUnsafeBytes { buffer.copyMemory(from: $0) }     // an echo
    /// }
    /// ```
    public func respond(to callID: UInt64, length: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) async throws(EndpointError) {
        let sentNow: Bool = try lock.locked { () throws(EndpointError) -> Bool in
            guard pendingSendsHead == pendingSends.count else { return false }
            return try sendLocked(kind: .response, callID: callID, length: length, fill: fill)
        }
        if sentNow { return }
        let bytes = [UInt8](unsafeUninitializedCapacity: length) { buffer, count in
            fill(UnsafeMutableRawBufferPointer(buffer))
            count = length
        }
        try await enqueueSend(kind: .response, callID: callID, bytes: bytes)
    }

    /// The next one-way message or request, in arrival order; suspends until one arrives.
    /// Throws when the connection ended (after the messages that arrived before it).
    public func receive() async throws(EndpointError) -> ReceivedMessage {
        if let message = try tryReceive() { return message }
        // The waiter's ID is chosen before suspending, so the cancellation handler knows
        // it without a shared box (which would be an allocation per receive).
        let id: UInt64 = lock.locked {
            nextWaiterID += 1
            return nextWaiterID
        }
        let outcome: ReceiveOutcome = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<ReceiveOutcome, Never>) in
                lock.locked {
                    if Task.isCancelled { return continuation.resume(returning: .failure(.cancelled)) }
                    if let entry = inbound.popFirst() { return continuation.resume(returning: .message(entry)) }
                    do throws(EndpointError) { try requireRunningLocked() } catch {
                        return continuation.resume(returning: .failure(error))
                    }
                    receiveWaiterList.append(ReceiveWaiter(id: id, continuation: continuation))
                }
            }
        } onCancel: {
            lock.locked {
                if let index = receiveWaiterList.firstIndex(where: { $0.id == id }) {
                    receiveWaiterList.remove(at: index).resume(returning: .failure(.cancelled))
                }
            }
        }
        switch outcome {
        case .message(let entry): return ReceivedMessage(endpoint: self, entry: entry)
        case .failure(let error): throw error
        }
    }

    /// Sends `bytes` as a request and suspends until its response arrives, `timeout`
    /// passes (`.timedOut`), the task is cancelled (`.cancelled`) or the connection ends.
    /// Responses are matched by call ID, so calls may complete in any order.
    public func call(_ bytes: [UInt8], timeout: Duration? = nil) async throws(EndpointError) -> ReceivedMessage {
        // The call's ID is chosen before suspending, so the cancellation handler knows it
        // without a shared box (which would be an allocation per call).
        let id: UInt64 = try lock.locked { () throws(EndpointError) -> UInt64 in
            guard let id = newCallLocked(timeout: timeout, state: .queued) else {
                throw .invalidConfiguration(field: "maxOutstandingCalls", detail: "\(configuration.maxOutstandingCalls) calls are outstanding")
            }
            return id
        }
        let outcome: CallOutcome = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<CallOutcome, Never>) in
                lock.locked { openCallLocked(id, bytes, continuation: continuation) }
            }
        } onCancel: {
            lock.locked { giveUpCallLocked(id, with: .cancelled) }
        }
        switch outcome {
        case .response(let entry): return ReceivedMessage(endpoint: self, entry: entry)
        case .failure(let error): throw error
        }
    }

    /// Sends call `id` (opened `.queued`), or queues it behind others; `continuation` gets
    /// its outcome. A call given up meanwhile (cancelled before it got here) is not sent.
    private func openCallLocked(_ id: UInt64, _ bytes: [UInt8], continuation: UnsafeContinuation<CallOutcome, Never>) {
        guard let slot = calls.outstanding(id) else { return continuation.resume(returning: .failure(.cancelled)) }
        do throws(EndpointError) { try requireRunningLocked() } catch {
            calls.free(slot)
            return continuation.resume(returning: .failure(error))
        }
        callContinuations[slot] = continuation
        if Task.isCancelled { return giveUpCallLocked(id, with: .cancelled) }
        if pendingSendsHead == pendingSends.count {
            do throws(EndpointError) {
                let sent = try sendLocked(kind: .request, callID: id, bytes: bytes)
                if sent {
                    calls[slot].state = .waiting
                    return
                }
            } catch {
                giveUpCallLocked(id, with: error)
                return
            }
        }
        metrics.creditStalls.increment()
        pendingSends.append(PendingSend(kind: .request, callID: id, bytes: bytes, continuation: nil, waiterID: 0))
    }

    /// Ends call `id` for its caller with `error` (cancellation, timeout, a failed send):
    /// a queued request is dropped, a sent one's response released on arrival.
    func giveUpCallLocked(_ id: UInt64, with error: EndpointError) {
        guard let slot = calls.outstanding(id) else { return }
        let continuation = callContinuations[slot]
        callContinuations[slot] = nil
        switch calls[slot].state {
        case .queued: calls.free(slot)
        case .waiting: calls[slot].state = .abandoned
        case .completed:
            let response = calls[slot].response
            calls.free(slot)
            releaseLocked(response.location)
        case .free, .abandoned: break
        }
        continuation?.resume(returning: .failure(error))
    }

    func enqueueSend(kind: MessageHeader.Kind, callID: UInt64, bytes: [UInt8]) async throws(EndpointError) {
        let sentNow: Bool = try lock.locked { () throws(EndpointError) -> Bool in
            guard pendingSendsHead == pendingSends.count else { return false }
            return try sendLocked(kind: kind, callID: callID, bytes: bytes)
        }
        if sentNow { return }
        let id: UInt64 = lock.locked {
            nextWaiterID += 1
            return nextWaiterID
        }
        let outcome: EndpointError? = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<EndpointError?, Never>) in
                lock.locked {
                    if Task.isCancelled { return continuation.resume(returning: .cancelled) }
                    do throws(EndpointError) { try requireRunningLocked() } catch { return continuation.resume(returning: error) }
                    metrics.creditStalls.increment()
                    pendingSends.append(PendingSend(kind: kind, callID: callID, bytes: bytes, continuation: continuation, waiterID: id))
                    drainPendingSendsLocked()
                }
            }
        } onCancel: {
            lock.locked {
                for index in pendingSendsHead..<pendingSends.count where pendingSends[index].waiterID == id && !pendingSends[index].cancelled {
                    pendingSends[index].cancelled = true
                    pendingSends[index].continuation?.resume(returning: .cancelled)
                }
            }
        }
        if let outcome { throw outcome }
    }

    /// Posts queued sends, oldest first, while credits, buffers and queue room last.
    func drainPendingSendsLocked() {
        while pendingSendsHead < pendingSends.count {
            let pending = pendingSends[pendingSendsHead]
            var skip = pending.cancelled
            if pending.kind == .request {
                skip = calls.outstanding(pending.callID).map { calls[$0].state != .queued } ?? true
            }
            if !skip {
                let sent: Bool
                do throws(EndpointError) {
                    sent = try sendLocked(kind: pending.kind, callID: pending.callID, bytes: pending.bytes)
                } catch {
                    pendingSendsHead += 1
                    if pending.kind == .request { giveUpCallLocked(pending.callID, with: error) } else { pending.continuation?.resume(returning: error) }
                    continue
                }
                if !sent { break }
                if pending.kind == .request, let slot = calls.outstanding(pending.callID) { calls[slot].state = .waiting }
                pending.continuation?.resume(returning: nil)
            }
            pendingSendsHead += 1
        }
        if pendingSendsHead == pendingSends.count {
            pendingSends.removeAll(keepingCapacity: true)
            pendingSendsHead = 0
        } else if pendingSendsHead > 4096 && pendingSendsHead * 2 > pendingSends.count {
            pendingSends.removeFirst(pendingSendsHead)
            pendingSendsHead = 0
        }
    }

    func popReceiveWaiterLocked() -> ReceiveWaiter? {
        receiveWaiterList.isEmpty ? nil : receiveWaiterList.removeFirst()
    }

    /// Every suspended task fails with `error`; calls of poll mode keep their slot so that
    /// `takeResponse` reports it.
    func failWaitersLocked(_ error: EndpointError) {
        for slot in callContinuations.indices {
            guard let continuation = callContinuations[slot] else { continue }
            callContinuations[slot] = nil
            calls.free(slot)
            continuation.resume(returning: .failure(error))
        }
        for index in pendingSendsHead..<pendingSends.count where !pendingSends[index].cancelled {
            pendingSends[index].continuation?.resume(returning: error)
        }
        pendingSends.removeAll()
        pendingSendsHead = 0
        let waiters = receiveWaiterList
        receiveWaiterList.removeAll()
        for waiter in waiters { waiter.resume(returning: .failure(error)) }
    }

    /// One round of the driver thread: progress, call deadlines, the liveness probe.
    func driveOnce(now: UInt64, checkDeadlines: Bool) -> Int {
        lock.locked {
            let handled = progressLocked()
            guard case .running = phase else { return handled }
            // The peer was heard from in this round (the clock is read once per round, here).
            if handled > 0 { lastActivityNanoseconds = now }
            if checkDeadlines && calls.occupied > 0 && now >= calls.earliestDeadline { expireCallsLocked(now: now) }
            let waiting = calls.occupied > 0 || pendingSendsHead < pendingSends.count
            // Not after a busy round (a wrapping difference here once probed after every
            // busy round, and each probe's completion was the next busy round — a storm of
            // control writes, 43 per call on kernel rxe).
            if waiting && now > lastActivityNanoseconds
                && now - lastActivityNanoseconds > UInt64(configuration.livenessProbeInterval.components.seconds) * 1_000_000_000
                + UInt64(configuration.livenessProbeInterval.components.attoseconds / 1_000_000_000) {
                probeRequested = true
                lastActivityNanoseconds = now
                flushControlLocked()
            }
            return handled
        }
    }

    /// Fails the async calls whose deadline passed and notes the next deadline. A call
    /// opened but not yet holding its continuation keeps its deadline in the next sweep.
    private func expireCallsLocked(now: UInt64) {
        calls.deadlineSweeps += 1
        var next = UInt64.max
        for slot in 0..<configuration.maxOutstandingCalls {
            let call = calls[slot]
            guard call.deadlineNanoseconds != 0, call.state == .queued || call.state == .waiting else { continue }
            if now >= call.deadlineNanoseconds, callContinuations[slot] != nil {
                giveUpCallLocked(call.id, with: .timedOut)
            } else {
                next = min(next, call.deadlineNanoseconds)
            }
        }
        calls.earliestDeadline = next
    }
}

/// The async mode's thread: polls the endpoint while traffic flows, keeps spinning for
/// `configuration.idleSpin` after the last completion (the next response is usually that
/// close), then parks: on the completion queue's channel when it has one (the kernel or
/// the soft engine wakes it at the next completion; a waiting thread leaves the CPU to
/// kernel rxe), else in short sleeps. A cooperative-pool task must never block or spin,
/// hence a thread of its own.
///
/// It is also a task executor (`MessageEndpoint.taskExecutor`): a task that prefers it is
/// resumed on this thread right after the round that completed its call, instead of being
/// handed to the global pool — one thread wake-up less per resumption.
final class EndpointDriver: TaskExecutor, @unchecked Sendable {
    private weak var endpoint: MessageEndpoint?
    private let stopping = Atomic<Bool>(false)
    private var thread: pthread_t?
    /// Jobs of tasks that prefer this executor, run between rounds; after the thread ended
    /// (`retired`) they go to the global executor, so that no task is stranded.
    private let jobLock = EndpointLock()
    private var jobs: [UnownedJob] = []
    private var retired = false
    /// True while the thread parks on the completion channel: `enqueue` then wakes it
    /// (`CompletionChannel.wake()`), or a job would wait out the park (1 ms: calls scoped
    /// with `withTaskExecutorPreference` took 1.2 ms each on the soft engine).
    private let parked = Atomic<Bool>(false)
    /// How long a park lasts at most: the granularity of call deadlines, liveness probes,
    /// credits written into the control block (they complete nothing here) and `stop()`.
    static let parkMilliseconds: Int32 = 1

    init(endpoint: MessageEndpoint) {
        self.endpoint = endpoint
        let context = Unmanaged.passRetained(self).toOpaque()
        var created = pthread_t()
        pthread_create(&created, nil, { raw in
            let driver = Unmanaged<EndpointDriver>.fromOpaque(raw!).takeRetainedValue()
            driver.run()
            return nil
        }, context)
        thread = created
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let accepted: Bool = jobLock.locked {
            if retired { return false }
            jobs.append(job)
            return true
        }
        if !accepted { globalConcurrentExecutor.enqueue(job) }
        // The job is queued before `parked` is read and the thread sets `parked` before it
        // looks for jobs a last time: either it sees the job or this sees it parked.
        else if parked.load(ordering: .sequentiallyConsistent) { endpoint?.wakeDriver() }
    }

    /// Runs the jobs enqueued so far (outside the endpoint's lock); how many ran.
    private func runJobs(_ running: inout [UnownedJob]) -> Int {
        jobLock.locked { swap(&jobs, &running) }
        guard !running.isEmpty else { return 0 }
        let executor = asUnownedTaskExecutor()
        for job in running { job.runSynchronously(on: executor) }
        let ran = running.count
        running.removeAll(keepingCapacity: true)
        return ran
    }

    /// The thread ends: jobs still queued, and any that come later, go to the global executor.
    private func retire() {
        let stranded: [UnownedJob] = jobLock.locked {
            retired = true
            defer { jobs.removeAll() }
            return jobs
        }
        for job in stranded { globalConcurrentExecutor.enqueue(job) }
    }

    private var hasJobs: Bool { jobLock.locked { !jobs.isEmpty } }

    private func run() {
        defer { retire() }
        var running: [UnownedJob] = []
        running.reserveCapacity(64)
        jobLock.locked { jobs.reserveCapacity(64) }
        var sleepRounds = 0
        var nextDeadlineCheck: UInt64 = 0
        var lastActivity = monotonicNanoseconds()
        guard let spin = endpoint.map({ UInt64($0.configuration.idleSpin.components.seconds) * 1_000_000_000
            + UInt64($0.configuration.idleSpin.components.attoseconds / 1_000_000_000) }) else { return }
        while !stopping.load(ordering: .relaxed) {
            guard let endpoint else { return }
            let now = monotonicNanoseconds()
            let checkDeadlines = now >= nextDeadlineCheck
            if checkDeadlines { nextDeadlineCheck = now + 1_000_000 }
            let handled = endpoint.driveOnce(now: now, checkDeadlines: checkDeadlines)
                + runJobs(&running)
            if endpoint.failure != nil { return }
            if handled > 0 || hasJobs {
                lastActivity = now
                sleepRounds = 0
                continue
            }
            if now &- lastActivity < spin { continue }
            parked.store(true, ordering: .sequentiallyConsistent)
            let parkedOnChannel = !hasJobs && endpoint.park(timeoutMilliseconds: Self.parkMilliseconds)
            parked.store(false, ordering: .sequentiallyConsistent)
            if parkedOnChannel || hasJobs { continue }
            sleepRounds += 1
            usleep(sleepRounds > 100 ? 200 : 20)
        }
    }

    /// Stops the thread and waits for it (unless called from it): at most one park.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        if let thread, !pthread_equal(thread, pthread_self()).boolValue {
            pthread_join(thread, nil)
        }
        thread = nil
    }
}

extension MessageEndpoint {
    /// Waits on the completion queues' channel until a completion, at most
    /// `timeoutMilliseconds`. False when the queues have no channel, or sends wait for
    /// credits (they come as RDMA WRITEs into the control block, which raise no event):
    /// the driver sleeps briefly instead.
    /// The corresponding C functions are `ibv_req_notify_cq` and `ibv_get_cq_event`.
    func park(timeoutMilliseconds: Int32) -> Bool {
        let receiveQueue = queuePair.receiveCompletionQueue, sendQueue = queuePair.sendCompletionQueue
        guard let channel = receiveQueue.channel, sendQueue === receiveQueue || sendQueue.channel === channel else { return false }
        let quiet: Bool = lock.locked {
            guard pendingSendsHead == pendingSends.count, case .running = phase else { return false }
            // Arm, then look once more: what completed between the last poll and the arm
            // raises no event.
            do {
                try receiveQueue.requestNotification()
                if sendQueue !== receiveQueue { try sendQueue.requestNotification() }
            } catch {
                return false
            }
            return progressLocked() == 0
        }
        guard quiet else { return true }
        if let queue = try? channel.waitForEvent(timeoutMilliseconds: timeoutMilliseconds) { queue.acknowledgeEvents(1) }
        return true
    }
}

extension MessageEndpoint {
    /// Ends the driver's park on the completion channel now (a job was handed to it).
    /// The corresponding call is `CompletionChannel.wake()`.
    func wakeDriver() {
        queuePair.receiveCompletionQueue.channel?.wake()
    }
}

private extension Int32 {
    var boolValue: Bool { self != 0 }
}
