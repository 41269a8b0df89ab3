#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// # When an ACK leaves
//
// The rule, all of it. A QP's responder owes at most one ACK per receive batch (coalescing
// by count: however many AckReq packets the batch held). The ACK goes out at the end of the
// round that received the batch, in the one `sendmmsg` that carries the round's other small
// packets (`HeldDatagrams`) — except when the round ran inside a `poll` that hands its
// caller a completion: then the ACK is *deferred* so the caller's reply leaves first. A
// deferred ACK leaves at the caller's next entry into the engine (a post sends it right
// behind the new request, in a call of its own; a poll sends it first), and otherwise from the
// device's flusher thread when the caller makes no further call (it blocks on a TCP socket,
// sleeps, exits without closing): `acknowledgementDelayBound` after it was deferred, plus at
// most `flusherMaximumTickNanoseconds` when the caller was still entering the engine at the
// flusher's previous look. A caller that keeps entering sends its ACKs itself, so the flusher
// then looks half as often each time (1, 2, 4, 8 ms): woken every millisecond it preempted a
// spinning caller on a 2-core machine (softroce-bench p99 19.6–24.3 µs; 7.2–9.5 µs woken
// every 20 ms). A READ response or atomic ACK sent meanwhile carries the acknowledgement and
// cancels it; NAKs and RNR NAKs are never deferred.
//
// The bound keeps a peer from retransmitting: kernel rxe and perftest use timeout 14
// (4.096 µs · 2^14 ≈ 67 ms); the bound is 2 ms. The flusher ticks only while deferrals
// happen and parks after `idleTicksBeforeParking` ticks without one, so an idle device
// costs no wakeups and a busy ping-pong never waits for it.

extension SoftDevice {
    /// How long a deferred ACK may wait for the caller's next entry before the flusher sends it.
    package static let acknowledgementDelayBound: UInt64 = 2_000_000
    static let flusherTickNanoseconds = 1_000_000
    /// The longest the flusher sleeps while the caller keeps entering the engine.
    static let flusherMaximumTickNanoseconds = 8_000_000
    static let idleTicksBeforeParking = 16

    /// Called (under the lock) by a poll that handed its caller completions while ACKs are due.
    func deferAcknowledgements(now: UInt64) {
        if acknowledgementsDeferredSince == 0 { acknowledgementsDeferredSince = now }
        // A manual clock means a deterministic driver: it flushes by calling in (`nextDeadline`).
        guard case .monotonic = clock, !flusherAwake else { return }
        flusherAwake = true
        acknowledgementFlusher.wake(device: self)
    }

    /// One tick of the flusher thread: sends the deferred ACKs once they are due and the
    /// caller has stopped entering the engine; parks the flusher (under the lock, so a deferral
    /// racing with it wakes it again) when idle. `tick` is how long the flusher slept; returns
    /// how long to sleep before the next look.
    func flushDeferredAcknowledgements(after tick: Int) -> Int {
        locked {
            guard !closed else { return Self.flusherTickNanoseconds }
            let callerActive = engineEntries != flusherSeenEntries
            flusherSeenEntries = engineEntries
            let nextTick = callerActive ? min(tick * 2, Self.flusherMaximumTickNanoseconds) : Self.flusherTickNanoseconds
            guard acknowledgementsDeferredSince != 0 else {
                flusherIdleTicks += 1
                guard flusherIdleTicks >= Self.idleTicksBeforeParking else { return nextTick }
                flusherIdleTicks = 0
                flusherAwake = false
                acknowledgementFlusher.park()
                return nextTick
            }
            flusherIdleTicks = 0
            // A caller that entered since the last look will send the ACKs at its next entry.
            if callerActive { return nextTick }
            if clock.now() &- acknowledgementsDeferredSince >= Self.acknowledgementDelayBound {
                counters.acknowledgementsFlushedByTimer += 1
                sendAcknowledgementsDue()
            }
            return nextTick
        }
    }
}

/// The thread that bounds how long a deferred ACK waits. It holds its device weakly, so a
/// device dropped without `close()` still deinitializes (and stops it).
final class AcknowledgementFlusher: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private weak var device: SoftDevice?
    private var thread: pthread_t?
    private var awake = false
    private var stopping = false

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Starts the thread on first use, or unparks it. The caller holds the device lock.
    func wake(device: SoftDevice) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard !stopping else { return }
        awake = true
        if thread == nil {
            self.device = device
            var created = pthread_t()
            let context = Unmanaged.passRetained(self).toOpaque()
            if pthread_create(&created, nil, { raw in
                let flusher = Unmanaged<AcknowledgementFlusher>.fromOpaque(raw!).takeRetainedValue()
                flusher.run()
                return nil
            }, context) == 0 {
                thread = created
            } else {
                Unmanaged<AcknowledgementFlusher>.fromOpaque(context).release()
            }
        } else {
            pthread_cond_signal(condition)
        }
    }

    /// Parks the thread until the next `wake`. The caller holds the device lock, which orders
    /// this against `wake`.
    func park() {
        pthread_mutex_lock(mutex)
        awake = false
        pthread_mutex_unlock(mutex)
    }

    /// Stops and joins the thread. Idempotent; safe from the thread itself (a device whose
    /// last reference the thread held).
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        let running = thread
        thread = nil
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
        if let running, pthread_equal(running, pthread_self()) == 0 { pthread_join(running, nil) }
    }

    private func run() {
        var nanoseconds = SoftDevice.flusherTickNanoseconds
        while true {
            pthread_mutex_lock(mutex)
            while !awake && !stopping { pthread_cond_wait(condition, mutex) }
            let stop = stopping
            pthread_mutex_unlock(mutex)
            if stop { return }
            var tick = timespec(tv_sec: 0, tv_nsec: nanoseconds)
            nanosleep(&tick, nil)
            guard let device else { return }
            nanoseconds = device.flushDeferredAcknowledgements(after: nanoseconds)
        }
    }
}
