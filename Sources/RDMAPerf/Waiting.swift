import Glibc
import RDMA

/// Turns the API's typed errors into the tools' errors, naming what was being done.
@inline(__always)
func rdma<T>(_ what: @autoclosure () -> String, _ body: () throws(RDMAError) -> T) throws(PerfError) -> T {
    do { return try body() } catch { throw PerfError("\(what()): \(error)") }
}

/// The no-progress bound for a run whose largest message is `size` bytes: `timeout` plus
/// the time such a message takes at 8 MiB/s (the slowest path we support: the soft engine
/// of a debug build, retransmitting), so a 1 GiB ping-pong gets 128 s more per step.
func progressBound(_ timeout: Double, size: Int) -> Double {
    timeout + Double(max(0, size)) / Double(8 << 20)
}

/// Receive work-request ids carry this bit; send ids do not.
let receiveTag: UInt64 = 1 << 32

/// The completion-driven part every measured loop shares: a preallocated completion
/// buffer, the progress deadline, the occasional look at the exchange connection.
final class CompletionPump {
    let queue: CompletionQueue
    let completions: UnsafeMutableBufferPointer<WorkCompletion>
    let progressTimeout: UInt64
    /// The exchange connection to watch; nil with perftest's `-R` (its comm QP is silent).
    let control: ControlConnection?
    var spins = 0
    /// Past this instant without `progressed`, the peer is declared gone.
    var deadline: UInt64 = .max
    /// Bumped by the loops at each step forward; the periodic check turns it into a new
    /// deadline, so the hot path never reads the clock just for the watchdog (in a VM
    /// without a vDSO clocksource each read is a system call).
    var events = 0
    private var seenEvents = 0
    var activity = "waiting for the peer"
    /// Give the CPU away briefly after 256 empty polls (see `poll`); false with --spin.
    var yieldWhenIdle = true
    /// False with a perftest peer: its exchange is silent during the run and is not JSON.
    var watchControl = true
    /// Test seam: called right after each measured post with the iteration number, to
    /// model a post call inside which the round trip progresses (see `LatencyLoops.client`).
    var afterPost: ((Int) -> Void)?
    /// A message the peer sent while we were busy (e.g. `done`).
    var controlMessage: ControlMessage?
    /// False: Ctrl-C does not throw from `poll` (a loop draining what it posted before it
    /// stops, and the server side of a `--loopback` run). Starts as the exchange's.
    var interruptible: Bool

    init(queue: CompletionQueue, progressTimeout: Double, control: ControlConnection?) {
        self.queue = queue
        completions = .allocate(capacity: 32)
        completions.initialize(repeating: WorkCompletion())
        self.progressTimeout = MonotonicClock.span(seconds: progressTimeout, cap: 1 << 62)
        self.control = control
        interruptible = control?.interruptible ?? true
    }

    deinit { completions.deallocate() }

    /// Times a wait on the completion channel (-e) ended with an event.
    var eventWakeups = 0

    /// Polls once; returns how many completions landed in `completions`. Throws on a
    /// failed completion. Every 4096 empty polls (with -e: after every wait on the
    /// channel) it checks Ctrl-C and the exchange connection (a closed one means the peer
    /// is gone).
    @inline(__always)
    func poll() throws(PerfError) -> Int {
        var count = try pollOnce()
        if count == 0, let channel = queue.channel {
            count = try awaitEvent(channel)
        }
        if count == 0 {
            spins &+= 1
            // A kernel Soft-RoCE does its work in softirq context; when it is deferred to
            // ksoftirqd on a CPU this thread spins on, CFS lets it run only at the next tick
            // (4 ms at HZ=250): every round trip then takes a tick. Yielding after 256 empty
            // polls (far longer than a hardware round trip) lets it run at once. --spin
            // turns this off to busy-poll exactly like perftest.
            if yieldWhenIdle, queue.channel == nil, spins & 255 == 0 { sched_yield() }
            if spins & 4095 == 0 || queue.channel != nil {
                if interruptible, stopRequested() { throw PerfError("interrupted", exitCode: 130) }
                let now = MonotonicClock.nanoseconds()
                if events != seenEvents {
                    seenEvents = events
                    deadline = now &+ progressTimeout
                } else if now > deadline {
                    throw stalled(activity)
                }
                if watchControl, controlMessage == nil, let control {
                    // `alive` only keeps a passive wait bounded: skip any number of them here.
                    while let message = try control.poll() {
                        if message != .alive { controlMessage = message; break }
                    }
                }
            }
        }
        return count
    }

    @inline(__always)
    private func pollOnce() throws(PerfError) -> Int {
        let count = try rdma("polling the completion queue") { () throws(RDMAError) in try queue.poll(into: completions) }
        for index in 0..<count where completions[index].status != .success {
            let completion = completions[index]
            let what = completion.id & receiveTag != 0 ? "receive" : "send/RDMA"
            throw .peer("\(what) work completion failed: status \(completion.status.rawValue) \(completion.status)")
        }
        return count
    }

    /// -e: arm the queue, poll once more (a completion that arrived before the arm raises
    /// no event), then sleep on the channel for at most `eventWaitMilliseconds`; an event
    /// is acknowledged at once and the queue polled at once, like perftest's
    /// `ctx_notify_events` followed by its `ibv_poll_cq`. Returns what the last poll found.
    /// (It returned 0 after a wakeup, so the completion that woke the thread waited for
    /// the periodic checks — a clock read, a system call in a VM without a vDSO clock —
    /// and another call.)
    private func awaitEvent(_ channel: CompletionChannel) throws(PerfError) -> Int {
        try rdma("arming the completion queue (ibv_req_notify_cq)") { () throws(RDMAError) in try queue.requestNotification() }
        let count = try pollOnce()
        if count > 0 { return count }
        let woken = try rdma("waiting for a completion event (ibv_get_cq_event)") { () throws(RDMAError) in
            try channel.waitForEvent(timeoutMilliseconds: Self.eventWaitMilliseconds)
        }
        guard let woken else { return 0 }
        woken.acknowledgeEvents(1)
        eventWakeups += 1
        return try pollOnce()
    }

    /// How long one wait on the channel lasts before the periodic checks run (Ctrl-C, the
    /// exchange, the no-progress bound).
    static let eventWaitMilliseconds: Int32 = 50

    /// Something moved: push the no-progress deadline at the next periodic check.
    @inline(__always)
    func tick() { events &+= 1 }

    /// Something moved at `now`: push the no-progress deadline.
    @inline(__always)
    func progressed(at now: UInt64) { deadline = now &+ progressTimeout }

    func stalled(_ what: String) -> PerfError {
        .peer("no progress for \(Double(progressTimeout) / 1e9) s while \(what)",
              hint: "the peer stopped answering (killed, or its QP failed); --timeout sets the bound")
    }
}
