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

/// Where a suspended task's ID lives until its cancellation handler needs it (under the
/// endpoint's lock).
final class WaiterTicket: @unchecked Sendable {
    var id: UInt64 = 0
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

    /// The next one-way message or request, in arrival order; suspends until one arrives.
    /// Throws when the connection ended (after the messages that arrived before it).
    public func receive() async throws(EndpointError) -> ReceivedMessage {
        if let message = try tryReceive() { return message }
        let ticket = WaiterTicket()
        let outcome: ReceiveOutcome = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<ReceiveOutcome, Never>) in
                lock.locked {
                    if Task.isCancelled { return continuation.resume(returning: .failure(.cancelled)) }
                    if let entry = inbound.popFirst() { return continuation.resume(returning: .message(entry)) }
                    do throws(EndpointError) { try requireRunningLocked() } catch {
                        return continuation.resume(returning: .failure(error))
                    }
                    ticket.id = nextWaiterID
                    nextWaiterID += 1
                    receiveWaiterList.append(ReceiveWaiter(id: ticket.id, continuation: continuation))
                }
            }
        } onCancel: {
            lock.locked {
                if let index = receiveWaiterList.firstIndex(where: { $0.id == ticket.id }) {
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
        let ticket = WaiterTicket()
        let outcome: CallOutcome = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<CallOutcome, Never>) in
                lock.locked { openCallLocked(bytes, timeout: timeout, ticket: ticket, continuation: continuation) }
            }
        } onCancel: {
            lock.locked { giveUpCallLocked(ticket.id, with: .cancelled) }
        }
        switch outcome {
        case .response(let entry): return ReceivedMessage(endpoint: self, entry: entry)
        case .failure(let error): throw error
        }
    }

    private func openCallLocked(_ bytes: [UInt8], timeout: Duration?, ticket: WaiterTicket,
                                continuation: UnsafeContinuation<CallOutcome, Never>) {
        if Task.isCancelled { return continuation.resume(returning: .failure(.cancelled)) }
        do throws(EndpointError) { try requireRunningLocked() } catch { return continuation.resume(returning: .failure(error)) }
        let now = monotonicNanoseconds()
        guard let id = calls.open(now: now, deadline: deadline(now, timeout), state: .queued) else {
            return continuation.resume(returning: .failure(.invalidConfiguration(
                field: "maxOutstandingCalls", detail: "\(configuration.maxOutstandingCalls) calls are outstanding")))
        }
        ticket.id = id
        let slot = calls.index(id)
        callContinuations[slot] = continuation
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
        let ticket = WaiterTicket()
        let outcome: EndpointError? = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<EndpointError?, Never>) in
                lock.locked {
                    if Task.isCancelled { return continuation.resume(returning: .cancelled) }
                    do throws(EndpointError) { try requireRunningLocked() } catch { return continuation.resume(returning: error) }
                    ticket.id = nextWaiterID
                    nextWaiterID += 1
                    metrics.creditStalls.increment()
                    pendingSends.append(PendingSend(kind: kind, callID: callID, bytes: bytes, continuation: continuation, waiterID: ticket.id))
                    drainPendingSendsLocked()
                }
            }
        } onCancel: {
            lock.locked {
                for index in pendingSendsHead..<pendingSends.count where pendingSends[index].waiterID == ticket.id && !pendingSends[index].cancelled {
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
            if checkDeadlines && calls.occupied > 0 { expireCallsLocked(now: now) }
            let waiting = calls.occupied > 0 || pendingSendsHead < pendingSends.count
            if waiting && now &- lastActivityNanoseconds > UInt64(configuration.livenessProbeInterval.components.seconds) * 1_000_000_000
                + UInt64(configuration.livenessProbeInterval.components.attoseconds / 1_000_000_000) {
                probeRequested = true
                lastActivityNanoseconds = now
                flushControlLocked()
            }
            return handled
        }
    }

    private func expireCallsLocked(now: UInt64) {
        for slot in 0..<configuration.maxOutstandingCalls {
            let call = calls[slot]
            guard call.deadlineNanoseconds != 0, now >= call.deadlineNanoseconds,
                  call.state == .queued || call.state == .waiting, callContinuations[slot] != nil else { continue }
            giveUpCallLocked(call.id, with: .timedOut)
        }
    }
}

/// The async mode's thread: polls the endpoint, spinning while traffic flows and backing
/// off to short sleeps when idle (a cooperative-pool task must never block or spin).
final class EndpointDriver: @unchecked Sendable {
    private weak var endpoint: MessageEndpoint?
    private let stopping = Atomic<Bool>(false)
    private var thread: pthread_t?

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

    private func run() {
        var idleRounds = 0
        var nextDeadlineCheck: UInt64 = 0
        while !stopping.load(ordering: .relaxed) {
            guard let endpoint else { return }
            let now = monotonicNanoseconds()
            let checkDeadlines = now >= nextDeadlineCheck
            if checkDeadlines { nextDeadlineCheck = now + 1_000_000 }
            let handled = endpoint.driveOnce(now: now, checkDeadlines: checkDeadlines)
            if endpoint.failure != nil { return }
            if handled > 0 {
                idleRounds = 0
            } else {
                idleRounds += 1
                if idleRounds > 2000 { usleep(200) } else if idleRounds > 200 { usleep(20) }
            }
        }
    }

    /// Stops the thread and waits for it (unless called from it).
    func stop() {
        stopping.store(true, ordering: .relaxed)
        if let thread, !pthread_equal(thread, pthread_self()).boolValue {
            pthread_join(thread, nil)
        }
        thread = nil
    }
}

private extension Int32 {
    var boolValue: Bool { self != 0 }
}
