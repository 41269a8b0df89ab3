/// A file descriptor that becomes readable when an armed completion queue gets a
/// completion: the way to wait for completions without spinning a core.
///
/// The protocol, as verbs defines it: arm the queue (`requestNotification()`), wait for
/// the event, acknowledge it, re-arm, then poll until empty — in that order, so that no
/// completion slips between the last poll and the re-arm.
///
/// ```swift
/// let channel = try CompletionChannel(context: context)
/// let queue = try CompletionQueue(context: context, minimumEntries: 64, channel: channel)
/// try queue.requestNotification()
/// if let ready = try channel.waitForEvent(timeoutMilliseconds: 1000) {
///     ready.acknowledgeEvents(1)
///     try ready.requestNotification()
///     while let completion = try ready.pollOne() { print(completion) }
/// }
/// ```
/// The channel's `fileDescriptor` can also be watched by an event loop (epoll, NIO).
public final class CompletionChannel: ClosableResource, @unchecked Sendable {
    /// The backend's channel: a `let`, so that a call through it needs no retain;
    /// it outlives `close()`, and every use checks `isClosed` first.
    private let operations: any CompletionChannelOperations
    /// True after `close()` — set once the destroy call succeeded.
    public private(set) var isClosed = false
    public let context: Context
    let children = ChildRegistry()

    /// Creates the channel. The corresponding C function is `ibv_create_comp_channel`.
    public init(context: Context) throws(RDMAError) {
        self.context = context
        operations = try context.operations("ibv_create_comp_channel").createCompletionChannel()
        context.children.add(self)
    }

    /// The backend's channel, or a `.closed` error naming `operation`.
    func operations(_ operation: StaticString) throws(RDMAError) -> any CompletionChannelOperations {
        if isClosed { throw RDMAError.closed(operation, "CompletionChannel") }
        return operations
    }

    /// The descriptor to watch for readability; -1 once closed.
    public var fileDescriptor: Int32 { isClosed ? -1 : operations.fileDescriptor }

    /// Waits up to `timeoutMilliseconds` (negative: forever) for an event and returns the
    /// queue it belongs to, or nil on timeout. The caller must acknowledge the event
    /// (`acknowledgeEvents`) before that queue can be closed.
    /// The corresponding C function is `ibv_get_cq_event`.
    ///
    /// On a soft device the wait also drives the engine (so a single thread may post, then
    /// wait); with `Context.startBackgroundProgress()` the descriptor becomes readable by
    /// itself and may be watched by an event loop.
    public func waitForEvent(timeoutMilliseconds: Int32) throws(RDMAError) -> CompletionQueue? {
        guard let queue = try operations("ibv_get_cq_event").waitForEvent(timeoutMilliseconds: timeoutMilliseconds) else { return nil }
        queue.noteEventReceived()
        return queue
    }

    /// Makes a `waitForEvent` blocked in another thread return nil now — or, when none is
    /// waiting, the next one at once: for a thread that parks on the channel but also runs
    /// work handed to it (a task executor). Any thread; calls before the wait takes the
    /// wake count once. On a verbs device it writes an `eventfd(2)` the wait polls beside
    /// the channel's descriptor; on a soft device, the channel's own pipe.
    ///
    /// ```swift
    /// // another thread: hand over work, then
    /// channel.wake()   // its waitForEvent(timeoutMilliseconds: 1000) returns nil now
    /// ```
    public func wake() {
        guard !isClosed else { return }
        operations.wake()
    }

    /// Closes the queues attached to this channel, then the channel. Idempotent; after a
    /// failure the channel stays open and `close()` may be retried.
    /// The corresponding C function is `ibv_destroy_comp_channel`.
    public func close() throws(RDMAError) {
        if isClosed { return }
        try children.closeAll()
        try operations.destroy()
        isClosed = true
    }

    deinit {
        LeakCheck.objectDeinitialized("CompletionChannel", isOpen: !isClosed, detail: "descriptor \(fileDescriptor)")
        try? close()
    }
}
