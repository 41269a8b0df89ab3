#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import Synchronization
import CEpoll

// # Why one poller for every connection
//
// Each connection has an event channel of its own (its events must reach it and no other),
// and an async task must never block in `rdma_get_cm_event`. The first design gave every
// channel a `DispatchSourceRead`, a serial queue and a timer: three dispatch objects and
// their handler closures per connection, plus a block per wait. In the kernel-rxe lab
// 1,000 connect/disconnect cycles then grew malloc's live blocks by about one per cycle
// (nine on the soft backend), all of them the 30-byte contexts the Swift Dispatch overlay
// allocates to turn a closure into a block, freed objects included (heaptrack, at exit).
// Here the channels' descriptors are registered in one epoll instance; its descriptor is
// the only one libdispatch watches, with one queue and one deadline timer for the process.
// A connection costs an `epoll_ctl` and a dictionary entry; a wait costs its continuation.

/// The process's one watch over every rdma_cm event channel: an epoll instance whose
/// descriptor is watched by a `DispatchSourceRead`, one serial queue where every channel
/// is drained, and one timer for the waits' deadlines.
final class ConnectionEventPoller: @unchecked Sendable {
    /// Created on first use; an error (no epoll) is kept and thrown to every watcher.
    static let shared: Result<ConnectionEventPoller, RDMAError> = {
        do throws(RDMAError) { return .success(try ConnectionEventPoller()) } catch { return .failure(error) }
    }()

    let queue = DispatchQueue(label: "rdma.cm.events")
    private let epoll: Int32
    private let readable: DispatchSourceRead
    private let deadlineTimer: DispatchSourceTimer
    private static let queueKey = DispatchSpecificKey<Bool>()
    private static let batch = 64
    // Touched only on `queue`.
    private var watchers: [Int32: ConnectionEventWatcher] = [:]
    private let ready = UnsafeMutablePointer<epoll_event>.allocate(capacity: ConnectionEventPoller.batch)
    /// The deadline the timer is armed for (`.distantFuture`: disarmed).
    private let armed = Mutex(DispatchTime.distantFuture)

    /// The corresponding C function is `epoll_create1`.
    private init() throws(RDMAError) {
        epoll = try CReturn.minusOneErrno("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }.get()
        queue.setSpecific(key: Self.queueKey, value: true)
        readable = DispatchSource.makeReadSource(fileDescriptor: epoll, queue: queue)
        deadlineTimer = DispatchSource.makeTimerSource(queue: queue)
        // The poller lives as long as the process: the handlers may hold it strongly.
        readable.setEventHandler { [self] in drainReadyChannels() }
        deadlineTimer.setEventHandler { [self] in expireDeadlines() }
        deadlineTimer.schedule(deadline: .distantFuture)
        readable.resume()
        deadlineTimer.resume()
    }

    var isOnQueue: Bool { DispatchQueue.getSpecific(key: Self.queueKey) == true }

    /// Runs `body` on the queue (directly when already there) and waits for it.
    private func onQueue<Result>(_ body: () -> Result) -> Result {
        isOnQueue ? body() : queue.sync(execute: body)
    }

    /// Starts delivering `descriptor`'s readiness to `watcher.drain()`.
    /// The corresponding C function is `epoll_ctl(EPOLL_CTL_ADD)`.
    func register(_ watcher: ConnectionEventWatcher, descriptor: Int32) throws(RDMAError) {
        let outcome: Result<Int32, RDMAError> = onQueue {
            watchers[descriptor] = watcher
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.fd = descriptor
            let added = CReturn.minusOneErrno("epoll_ctl(EPOLL_CTL_ADD, rdma event channel)") { epoll_ctl(epoll, EPOLL_CTL_ADD, descriptor, &event) }
            if case .failure = added { watchers[descriptor] = nil }
            return added
        }
        _ = try outcome.get()
    }

    /// Stops delivering `descriptor`'s readiness to `watcher`; when it returns, no drain of
    /// `watcher` runs any more (one in progress on another thread has finished), so the
    /// descriptor may be closed. Harmless when already removed.
    /// The corresponding C function is `epoll_ctl(EPOLL_CTL_DEL)`.
    func remove(_ watcher: ConnectionEventWatcher, descriptor: Int32) {
        onQueue {
            guard watchers[descriptor] === watcher else { return }
            watchers[descriptor] = nil
            var unused = epoll_event()
            _ = epoll_ctl(epoll, EPOLL_CTL_DEL, descriptor, &unused)   // only fails if already gone
        }
    }

    /// Makes the timer fire by `deadline` (it may fire earlier, for another wait).
    func arm(_ deadline: DispatchTime) {
        armed.withLock { current in
            guard deadline < current else { return }
            current = deadline
            deadlineTimer.schedule(deadline: deadline)
        }
    }

    /// On the queue: every channel epoll reports readable is drained by its watcher.
    /// The corresponding C function is `epoll_wait` (with a zero timeout: libdispatch has
    /// already seen the epoll descriptor readable).
    private func drainReadyChannels() {
        let count = epoll_wait(epoll, ready, Int32(Self.batch), 0)
        guard count > 0 else { return }
        for index in 0..<Int(count) {
            watchers[ready[index].data.fd]?.drain()
        }
    }

    /// On the queue: the waits whose deadline passed time out; the timer is re-armed for
    /// the earliest deadline still ahead.
    private func expireDeadlines() {
        armed.withLock { $0 = .distantFuture }
        let now = DispatchTime.now()
        var earliest = DispatchTime.distantFuture
        for watcher in watchers.values {
            if let ahead = watcher.expireWait(now: now), ahead < earliest { earliest = ahead }
        }
        if earliest != .distantFuture { arm(earliest) }
    }
}
