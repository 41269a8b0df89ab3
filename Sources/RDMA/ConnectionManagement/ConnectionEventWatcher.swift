#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Synchronization

// # How the async layer waits
//
// librdmacm's `rdma_get_cm_event` blocks on the channel's descriptor; called on the
// cooperative pool it would stall every task of the process (what users of other wrappers
// complain about). Here each channel's descriptor (made non-blocking by the backend) is
// registered with the process's `ConnectionEventPoller`; when it is readable, the poller's
// queue drains `nextEvent()` through this watcher. Tasks wait on a mailbox: one waiter at a
// time, with a deadline and cancellation, so every wait is bounded and nothing blocks a
// cooperative thread.

/// Watches one channel and hands its events to one waiting task at a time.
final class ConnectionEventWatcher: @unchecked Sendable {
    let channel: ConnectionEventChannel
    private let descriptor: Int32
    private let poller: ConnectionEventPoller
    /// Runs on the poller's queue for each event before it is queued: may act on it (migrate
    /// a request's identifier, record a disconnection) and returns false to drop it.
    private let accept: (ConnectionEvent) -> Bool
    private let overflow: (ConnectionEvent) -> Void
    private let pendingLimit: Int
    private let state = Mutex(State())

    private struct State {
        var pending: [ConnectionEvent] = []
        var waiter: Waiter?
        var terminal: RDMAError?
        var isStopping = false
    }

    private final class WaitToken: Sendable {
        let cancelled = Atomic(false)
    }

    private struct Waiter {
        let token: WaitToken
        let continuation: CheckedContinuation<ConnectionEvent, any Error>
        let operation: String
        let timeout: Duration?
        let deadline: DispatchTime?
    }

    /// Starts watching. `pendingLimit` bounds the events kept for a task that does not
    /// wait; beyond it `overflow` is called with the event (a listener rejects the request).
    init(channel: ConnectionEventChannel, label: String, pendingLimit: Int = 256,
         accept: @escaping (ConnectionEvent) -> Bool = { _ in true },
         overflow: @escaping (ConnectionEvent) -> Void = { _ in }) throws(RDMAError) {
        descriptor = channel.fileDescriptor
        guard descriptor >= 0 else { throw RDMAError.closed("watch rdma event channel", "ConnectionEventChannel") }
        poller = try ConnectionEventPoller.shared.get()
        self.channel = channel
        self.pendingLimit = pendingLimit
        self.accept = accept
        self.overflow = overflow
        try poller.register(self, descriptor: descriptor)
    }

    /// On the poller's queue: takes every event the channel has.
    func drain() {
        do throws(RDMAError) {
            while !state.withLock({ $0.isStopping }), let event = try channel.nextEvent() {
                guard accept(event) else { continue }
                let outcome = state.withLock { state -> (Waiter?, overflowed: Bool) in
                    if let waiter = state.waiter {
                        state.waiter = nil
                        return (waiter, false)
                    }
                    if state.pending.count < pendingLimit {
                        state.pending.append(event)
                        return (nil, false)
                    }
                    return (nil, true)
                }
                if let waiter = outcome.0 { waiter.continuation.resume(returning: event) }
                if outcome.overflowed { overflow(event) }
            }
        } catch {
            poller.remove(self, descriptor: descriptor)
            fail(with: error)
        }
    }

    /// Ends every wait, now and later, with `error` (the first one wins).
    private func fail(with error: RDMAError) {
        let (waiter, terminal) = state.withLock { state -> (Waiter?, RDMAError) in
            if state.terminal == nil { state.terminal = error }
            defer { state.waiter = nil }
            return (state.waiter, state.terminal!)
        }
        waiter?.continuation.resume(throwing: terminal)
    }

    /// On the poller's queue: times out the waiting task if its deadline passed; returns the
    /// deadline still ahead, if any.
    func expireWait(now: DispatchTime) -> DispatchTime? {
        let expired = state.withLock { state -> Waiter? in
            guard let waiter = state.waiter, let deadline = waiter.deadline, deadline <= now else { return nil }
            state.waiter = nil
            return waiter
        }
        if let expired {
            let bound = expired.timeout.map { "\($0)" } ?? "its bound"
            expired.continuation.resume(throwing: RDMAError(operation: expired.operation, kind: .system(errno: ETIMEDOUT),
                                                            hint: "nothing happened within \(bound)"))
            return nil
        }
        return state.withLock { $0.waiter?.deadline }
    }

    /// The next event, waiting at most `timeout` (nil: until one comes, the watcher stops
    /// or the task is cancelled). Throws ETIMEDOUT naming `operation` at the deadline,
    /// `CancellationError` when the task is cancelled.
    func next(timeout: Duration?, operation: String) async throws -> ConnectionEvent {
        let token = WaitToken()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ConnectionEvent, any Error>) in
                let deadline = timeout.map { DispatchTime.now() + Self.dispatchInterval($0) }
                let answer = state.withLock { state -> Result<ConnectionEvent, any Error>? in
                    if token.cancelled.load(ordering: .relaxed) { return .failure(CancellationError()) }
                    if !state.pending.isEmpty { return .success(state.pending.removeFirst()) }
                    if let terminal = state.terminal { return .failure(terminal) }
                    if state.waiter != nil {
                        return .failure(RDMAError(operation: operation, kind: .invalidArgument,
                                                  hint: "another task is already waiting for this connection's events"))
                    }
                    state.waiter = Waiter(token: token, continuation: continuation, operation: operation, timeout: timeout, deadline: deadline)
                    return nil
                }
                if let answer { continuation.resume(with: answer) } else if let deadline { poller.arm(deadline) }
            }
        } onCancel: {
            let cancelled = state.withLock { state -> Waiter? in
                token.cancelled.store(true, ordering: .relaxed)
                guard let waiter = state.waiter, waiter.token === token else { return nil }
                state.waiter = nil
                return waiter
            }
            cancelled?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Takes the events no task has taken yet (after `stop()`: what is left to clean up).
    func takePending() -> [ConnectionEvent] {
        state.withLock { state in
            defer { state.pending.removeAll() }
            return state.pending
        }
    }

    /// Stops watching: no drain runs after this returns (so the channel may be closed), and
    /// waits in progress and later fail with `.closed`. Idempotent. Must be called: the
    /// poller keeps the watcher alive until then.
    func stop() {
        let first = state.withLock { state -> Bool in
            defer { state.isStopping = true }
            return !state.isStopping
        }
        guard first else { return }
        poller.remove(self, descriptor: descriptor)
        fail(with: RDMAError.closed("wait for rdma_cm event", "connection"))
    }

    static func dispatchInterval(_ duration: Duration) -> DispatchTimeInterval {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if nanoseconds.overflow || seconds < 0 { return seconds < 0 ? .nanoseconds(0) : .seconds(Int(Int32.max)) }
        return .nanoseconds(Int(nanoseconds.partialValue + attoseconds / 1_000_000_000))
    }
}
