#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch

// # How the async layer waits
//
// librdmacm's `rdma_get_cm_event` blocks on the channel's descriptor; called on the
// cooperative pool it would stall every task of the process (what users of other wrappers
// complain about). Here each channel gets a `DispatchSourceRead` on its descriptor (made
// non-blocking by the backend): libdispatch watches all of them with one epoll on its own
// threads, and when one is readable drains `nextEvent()` on that channel's serial queue.
// Why DispatchSource and not a poll thread of our own: it multiplexes any number of
// channels (one per connection) without a thread each, needs no wake-up pipe to stop, and
// its cancel handler is the one point after which no handler runs — the moment the
// descriptor may be closed. Tasks wait on a mailbox served by the same queue: one waiter
// at a time, with a deadline (a timer on the queue) and cancellation, so every wait is
// bounded and nothing blocks a cooperative thread.

/// Watches one channel and hands its events to one waiting task at a time.
final class ConnectionEventWatcher: @unchecked Sendable {
    let channel: ConnectionEventChannel
    private let queue: DispatchQueue
    private let source: DispatchSourceRead
    private let stopped = DispatchSemaphore(value: 0)
    private static let queueKey = DispatchSpecificKey<ObjectIdentifier>()
    /// Runs on the queue for each event before it is queued: may act on it (migrate a
    /// request's identifier, record a disconnection) and returns false to drop it.
    private let accept: (ConnectionEvent) -> Bool
    // State below is touched only on `queue`.
    private var pending: [ConnectionEvent] = []
    private let pendingLimit: Int
    private var waiter: (token: WaitToken, continuation: CheckedContinuation<ConnectionEvent, any Error>)?
    private var terminal: RDMAError?
    private var isStopping = false

    private final class WaitToken: @unchecked Sendable { var cancelled = false }

    /// Starts watching. `pendingLimit` bounds the events kept for a task that does not
    /// wait; beyond it `overflow` is called with the event (a listener rejects the request).
    init(channel: ConnectionEventChannel, label: String, pendingLimit: Int = 256,
         accept: @escaping (ConnectionEvent) -> Bool = { _ in true },
         overflow: @escaping (ConnectionEvent) -> Void = { _ in }) throws(RDMAError) {
        let descriptor = channel.fileDescriptor
        guard descriptor >= 0 else { throw RDMAError.closed("watch rdma event channel", "ConnectionEventChannel") }
        self.channel = channel
        self.pendingLimit = pendingLimit
        self.accept = accept
        queue = DispatchQueue(label: "rdma.cm.\(label)")
        source = DispatchSource.makeReadSource(fileDescriptor: descriptor, queue: queue)
        queue.setSpecific(key: Self.queueKey, value: ObjectIdentifier(self))
        // Strong captures: the source keeps the watcher alive until `stop()` cancels it.
        source.setEventHandler { [self] in drain(overflow: overflow) }
        source.setCancelHandler { [self] in
            fail(with: RDMAError.closed("wait for rdma_cm event", "connection"))
            stopped.signal()
        }
        source.resume()
    }

    private func drain(overflow: (ConnectionEvent) -> Void) {
        do throws(RDMAError) {
            while !isStopping, let event = try channel.nextEvent() {
                guard accept(event) else { continue }
                if let waiter {
                    self.waiter = nil
                    waiter.continuation.resume(returning: event)
                } else if pending.count < pendingLimit {
                    pending.append(event)
                } else {
                    overflow(event)
                }
            }
        } catch {
            fail(with: error)
            source.cancel()
        }
    }

    /// Ends every wait, now and later, with `error` (the first one wins).
    private func fail(with error: RDMAError) {
        if terminal == nil { terminal = error }
        if let waiter {
            self.waiter = nil
            waiter.continuation.resume(throwing: terminal!)
        }
    }

    /// The next event, waiting at most `timeout` (nil: until one comes, the watcher stops
    /// or the task is cancelled). Throws ETIMEDOUT naming `operation` at the deadline,
    /// `CancellationError` when the task is cancelled.
    func next(timeout: Duration?, operation: String) async throws -> ConnectionEvent {
        let token = WaitToken()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ConnectionEvent, any Error>) in
                queue.async { [self] in
                    if token.cancelled { return continuation.resume(throwing: CancellationError()) }
                    if !pending.isEmpty { return continuation.resume(returning: pending.removeFirst()) }
                    if let terminal { return continuation.resume(throwing: terminal) }
                    if waiter != nil {
                        return continuation.resume(throwing: RDMAError(operation: operation, kind: .invalidArgument,
                                                                       hint: "another task is already waiting for this connection's events"))
                    }
                    waiter = (token, continuation)
                    if let timeout {
                        queue.asyncAfter(deadline: .now() + Self.dispatchInterval(timeout)) { [self] in
                            guard let current = waiter, current.token === token else { return }
                            waiter = nil
                            current.continuation.resume(throwing: RDMAError(operation: operation, kind: .system(errno: ETIMEDOUT),
                                                                            hint: "nothing happened within \(timeout)"))
                        }
                    }
                }
            }
        } onCancel: {
            queue.async { [self] in
                token.cancelled = true
                guard let current = waiter, current.token === token else { return }
                waiter = nil
                current.continuation.resume(throwing: CancellationError())
            }
        }
    }

    /// Takes the events no task has taken yet (after `stop()`: what is left to clean up).
    func takePending() -> [ConnectionEvent] {
        synchronized {
            defer { pending.removeAll() }
            return pending
        }
    }

    /// Runs `body` on the watcher's queue (after any event being handled), and waits.
    func synchronized<Result>(_ body: () -> Result) -> Result {
        if DispatchQueue.getSpecific(key: Self.queueKey) == ObjectIdentifier(self) { return body() }
        return queue.sync(execute: body)
    }

    /// Stops watching: no handler runs after this returns (so the channel may be closed),
    /// and waits in progress and later fail with `.closed`. Idempotent. Must be called:
    /// the source keeps the watcher alive until then.
    func stop() {
        let first = synchronized { () -> Bool in
            defer { isStopping = true }
            return !isStopping
        }
        guard first else { return }
        source.cancel()
        if DispatchQueue.getSpecific(key: Self.queueKey) != ObjectIdentifier(self) { stopped.wait() }
    }

    static func dispatchInterval(_ duration: Duration) -> DispatchTimeInterval {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if nanoseconds.overflow || seconds < 0 { return seconds < 0 ? .nanoseconds(0) : .seconds(Int(Int32.max)) }
        return .nanoseconds(Int(nanoseconds.partialValue + attoseconds / 1_000_000_000))
    }
}
