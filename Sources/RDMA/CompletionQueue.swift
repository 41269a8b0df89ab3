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
    /// The backend's queue: a `let`, so that a call through it needs no retain;
    /// it outlives `close()`, and every use checks `isClosed` first.
    private let operations: any CompletionQueueOperations
    /// True after `close()` — set once the destroy call succeeded.
    /// Unchecked exclusivity: read on every poll, written once by `close()`; a dynamic check
    /// was one in four of an empty soft-engine poll's runtime calls.
    @exclusivity(unchecked) public private(set) var isClosed = false
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
        let queue = try context.operations("ibv_create_cq").createCompletionQueue(minimumEntries: minimumEntries, channel: channel,
                                                                                 completionVector: completionVector)
        capacity = queue.capacity
        operations = queue
        queue.setOwner(Unmanaged.passUnretained(self))
        context.children.add(self)
        channel?.children.add(self)
    }

    /// The backend's queue, or a `.closed` error naming `operation`.
    @inline(__always)
    func operations(_ operation: StaticString) throws(RDMAError) -> any CompletionQueueOperations {
        if isClosed { throw RDMAError.closed(operation, "CompletionQueue") }
        return operations
    }

    /// Moves up to `buffer.count` completions into `buffer` and returns how many.
    /// Never blocks and never allocates. The corresponding C function is `ibv_poll_cq`.
    @inline(__always)
    public func poll(into buffer: UnsafeMutableBufferPointer<WorkCompletion>) throws(RDMAError) -> Int {
        if isClosed { throw RDMAError.closed("ibv_poll_cq", "CompletionQueue") }
        return try operations.poll(into: buffer)
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
        let operations = try operations("ibv_req_notify_cq")
        guard channel != nil else {
            throw RDMAError(operation: "ibv_req_notify_cq", kind: .invalidArgument,
                            hint: "the queue has no CompletionChannel: create it with `channel:` to use events")
        }
        try operations.requestNotification(solicitedOnly: solicitedOnly)
    }

    func noteEventReceived() { eventsReceived &+= 1 }

    /// Acknowledges events returned by `CompletionChannel.waitForEvent`. Acknowledging in
    /// batches is cheaper: the C call takes a mutex.
    /// The corresponding C function is `ibv_ack_cq_events`.
    public func acknowledgeEvents(_ count: UInt32) {
        guard count > 0, !isClosed else { return }
        operations.acknowledgeEvents(count)
        eventsAcknowledged &+= count
    }

    /// Closes the queue pairs using this queue, acknowledges outstanding events, then
    /// destroys the queue. Idempotent; after a failure the queue stays open and `close()`
    /// may be retried. The corresponding C function is `ibv_destroy_cq`.
    public func close() throws(RDMAError) {
        if isClosed { return }
        try children.closeAll()
        acknowledgeEvents(eventsReceived &- eventsAcknowledged)
        try operations.destroy()
        isClosed = true
    }

    deinit {
        LeakCheck.objectDeinitialized("CompletionQueue", isOpen: !isClosed, detail: "capacity \(capacity)")
        try? close()
    }
}
