import CIBVerbs
import SoftRoCE

/// Where the device reports finished work requests.
///
/// Polling (`poll(into:)`, `pollOne()`) is the fast path: a busy-polling loop over a
/// caller-owned buffer allocates nothing. For event-driven waiting, attach a
/// `CompletionChannel` and use `requestNotification()`.
///
/// ```swift
/// let queue = try CompletionQueue(context: context, minimumEntries: 256)
/// let completions = UnsafeMutableBufferPointer<WorkCompletion>.allocate(capacity: 32)
/// let count = try queue.poll(into: completions)
/// ```
/// Keeps its context (and channel) alive; `close()` first closes the queue pairs that use
/// it, then acknowledges outstanding events, and is idempotent.
public final class CompletionQueue: ClosableResource, @unchecked Sendable {
    private enum Handle {
        case verbs(UnsafeMutablePointer<ibv_cq>)
        case soft(SoftCompletionQueue, SoftDevice)
        case closed
    }

    private var handle: Handle
    public let context: Context
    /// The channel events are delivered to, if any.
    public let channel: CompletionChannel?
    /// How many completions the queue holds (at least what was asked for).
    public let capacity: Int
    let children = ChildRegistry()
    private var eventsReceived: UInt32 = 0
    private var eventsAcknowledged: UInt32 = 0

    /// Creates a queue for at least `minimumEntries` completions.
    /// The corresponding C function is `ibv_create_cq`.
    public init(context: Context, minimumEntries: Int, channel: CompletionChannel? = nil,
                completionVector: Int32 = 0) throws(RDMAError) {
        guard minimumEntries > 0, minimumEntries <= Int(Int32.max) else {
            throw RDMAError(operation: "CompletionQueue(minimumEntries:)", kind: .invalidArgument,
                            hint: "minimumEntries must be in 1…\(Int32.max), got \(minimumEntries)")
        }
        self.context = context
        self.channel = channel
        if let soft = try context.softEngine("ibv_create_cq") {
            let queue = soft.createCompletionQueue(capacity: minimumEntries, channel: try channel?.softChannel("ibv_create_cq"))
            capacity = queue.capacity
            handle = .soft(queue, soft)
            queue.userContext = Unmanaged.passUnretained(self).toOpaque()
            context.children.add(self)
            channel?.children.add(self)
            return
        }
        let verbsContext = try context.verbsContext("ibv_create_cq")
        let verbsChannel = try channel?.verbsChannel("ibv_create_cq")
        // The queue is not fully initialised yet, so create the CQ with a NULL context and
        // store the back-reference (used by CompletionChannel.waitForEvent) right after.
        let queue = try CReturn.nonNull("ibv_create_cq") {
            ibv_create_cq(verbsContext, Int32(minimumEntries), nil, verbsChannel, completionVector)
        }.get()
        capacity = Int(queue.pointee.cqe)
        handle = .verbs(queue)
        queue.pointee.cq_context = Unmanaged.passUnretained(self).toOpaque()
        context.children.add(self)
        channel?.children.add(self)
    }

    @inline(__always)
    private func verbsQueue(_ operation: StaticString) throws(RDMAError) -> UnsafeMutablePointer<ibv_cq> {
        switch handle {
        case .verbs(let pointer): return pointer
        case .soft: throw RDMAError(operation: "\(operation)", kind: .unsupported, hint: "a soft completion queue has no verbs handle")
        case .closed: throw RDMAError(operation: "\(operation)", kind: .closed, hint: "the CompletionQueue was closed")
        }
    }

    var softHandle: (queue: SoftCompletionQueue, device: SoftDevice)? {
        if case .soft(let queue, let device) = handle { return (queue, device) }
        return nil
    }

    var verbsHandle: UnsafeMutablePointer<ibv_cq>? {
        if case .verbs(let pointer) = handle { return pointer }
        return nil
    }

    /// Moves up to `buffer.count` completions into `buffer` and returns how many.
    /// Never blocks and never allocates. The corresponding C function is `ibv_poll_cq`.
    @inline(__always)
    public func poll(into buffer: UnsafeMutableBufferPointer<WorkCompletion>) throws(RDMAError) -> Int {
        if case .soft(let queue, let soft) = handle { return Self.softPoll(queue, soft, into: buffer) }
        let queue = try verbsQueue("ibv_poll_cq")
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return 0 }
        let limit = Int32(clamping: buffer.count)
        return try CReturn.count("ibv_poll_cq") {
            // WorkCompletion is a frozen single-field wrapper of ibv_wc: same size, stride
            // and alignment, so the buffer is reinterpreted rather than copied.
            UnsafeMutableRawPointer(base).withMemoryRebound(to: ibv_wc.self, capacity: buffer.count) { raw in
                Int(ibv_poll_cq(queue, limit, raw))
            }
        }.get()
    }

    /// Polls the soft engine (which drives its progress first) into a small stack batch and
    /// translates each completion into the caller's `ibv_wc` buffer.
    private static func softPoll(_ queue: SoftCompletionQueue, _ soft: SoftDevice,
                                 into buffer: UnsafeMutableBufferPointer<WorkCompletion>) -> Int {
        guard buffer.count > 0 else { return 0 }
        return withUnsafeTemporaryAllocation(of: SoftCompletion.self, capacity: min(buffer.count, 16)) { scratch in
            let count = soft.poll(queue, into: scratch)
            for index in 0..<count { SoftTranslate.completion(scratch[index], into: &buffer[index].raw) }
            return count
        }
    }

    /// The next completion, or nil when the queue is empty. Allocates nothing.
    @inline(__always)
    public func pollOne() throws(RDMAError) -> WorkCompletion? {
        var completion = WorkCompletion()
        let count = try withUnsafeMutablePointer(to: &completion) { pointer throws(RDMAError) in
            try poll(into: UnsafeMutableBufferPointer(start: pointer, count: 1))
        }
        return count == 1 ? completion : nil
    }

    /// Busy-polls until `count` completions arrived or `timeout` passed, and returns what
    /// arrived (possibly fewer). For tests, tools and setup paths: it allocates the array.
    public func waitForCompletions(count: Int, timeout: Duration) throws(RDMAError) -> [WorkCompletion] {
        var results = [WorkCompletion]()
        results.reserveCapacity(count)
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while results.count < count {
            if let completion = try pollOne() {
                results.append(completion)
            } else if clock.now >= deadline {
                break
            }
        }
        return results
    }

    /// Arms the queue: the channel gets one event at the next completion (or the next
    /// solicited one). The corresponding C function is `ibv_req_notify_cq`.
    public func requestNotification(solicitedOnly: Bool = false) throws(RDMAError) {
        guard channel != nil else {
            if isClosed { throw RDMAError(operation: "ibv_req_notify_cq", kind: .closed, hint: "the CompletionQueue was closed") }
            throw RDMAError(operation: "ibv_req_notify_cq", kind: .invalidArgument,
                            hint: "the queue has no CompletionChannel: create it with `channel:` to use events")
        }
        if case .soft(let queue, let soft) = handle {
            soft.requestNotification(queue, solicitedOnly: solicitedOnly)
            return
        }
        let queue = try verbsQueue("ibv_req_notify_cq")
        try CReturn.returnedErrno("ibv_req_notify_cq") { ibv_req_notify_cq(queue, solicitedOnly ? 1 : 0) }.get()
    }

    func noteEventReceived() { eventsReceived &+= 1 }

    /// Acknowledges events returned by `CompletionChannel.waitForEvent`. Acknowledging in
    /// batches is cheaper: the C call takes a mutex.
    /// The corresponding C function is `ibv_ack_cq_events`.
    public func acknowledgeEvents(_ count: UInt32) {
        if case .soft = handle { eventsAcknowledged &+= count; return }
        guard count > 0, let queue = verbsHandle else { return }
        ibv_ack_cq_events(queue, count)
        eventsAcknowledged &+= count
    }

    /// True after `close()`.
    public var isClosed: Bool {
        if case .closed = handle { return true }
        return false
    }

    /// Closes the queue pairs using this queue, acknowledges outstanding events, then
    /// destroys the queue. Idempotent. The corresponding C function is `ibv_destroy_cq`.
    public func close() throws(RDMAError) {
        if case .soft(let queue, let soft) = handle {
            try children.closeAll()
            eventsAcknowledged = eventsReceived
            handle = .closed
            soft.destroyCompletionQueue(queue)
            return
        }
        guard let queue = verbsHandle else { return }
        try children.closeAll()
        acknowledgeEvents(eventsReceived &- eventsAcknowledged)
        handle = .closed
        try CReturn.returnedErrno("ibv_destroy_cq") { ibv_destroy_cq(queue) }.get()
    }

    deinit {
        try? close()
    }
}
