#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CIBVerbs
import SoftRoCE

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
    private enum Handle {
        case verbs(UnsafeMutablePointer<ibv_comp_channel>)
        case soft(SoftCompletionChannel, SoftDevice)
        case closed
    }

    private var handle: Handle
    public let context: Context
    let children = ChildRegistry()

    /// Creates the channel. The corresponding C function is `ibv_create_comp_channel`.
    public init(context: Context) throws(RDMAError) {
        self.context = context
        if let soft = try context.softEngine("ibv_create_comp_channel") {
            do throws(SoftRoCEError) { handle = .soft(try soft.createCompletionChannel(), soft) } catch { throw RDMAError(soft: error) }
            context.children.add(self)
            return
        }
        let verbsContext = try context.verbsContext("ibv_create_comp_channel")
        handle = .verbs(try CReturn.nonNull("ibv_create_comp_channel") { ibv_create_comp_channel(verbsContext) }.get())
        context.children.add(self)
    }

    func softChannel(_ operation: StaticString) throws(RDMAError) -> SoftCompletionChannel? {
        switch handle {
        case .soft(let channel, _): return channel
        case .verbs: return nil
        case .closed: throw RDMAError(operation: "\(operation)", kind: .closed, hint: "the CompletionChannel was closed")
        }
    }

    func verbsChannel(_ operation: StaticString) throws(RDMAError) -> UnsafeMutablePointer<ibv_comp_channel> {
        switch handle {
        case .verbs(let pointer): return pointer
        case .soft: throw RDMAError(operation: "\(operation)", kind: .unsupported, hint: "a soft channel has no verbs handle")
        case .closed: throw RDMAError(operation: "\(operation)", kind: .closed, hint: "the CompletionChannel was closed")
        }
    }

    /// The descriptor to watch for readability; -1 once closed.
    public var fileDescriptor: Int32 {
        if case .verbs(let pointer) = handle { return pointer.pointee.fd }
        if case .soft(let channel, _) = handle { return channel.fileDescriptor }
        return -1
    }

    /// Waits up to `timeoutMilliseconds` (negative: forever) for an event and returns the
    /// queue it belongs to, or nil on timeout. The caller must acknowledge the event
    /// (`acknowledgeEvents`) before that queue can be closed.
    /// The corresponding C function is `ibv_get_cq_event`.
    ///
    /// On a soft device the wait also drives the engine (so a single thread may post, then
    /// wait); with `Context.startBackgroundProgress()` the descriptor becomes readable by
    /// itself and may be watched by an event loop.
    public func waitForEvent(timeoutMilliseconds: Int32) throws(RDMAError) -> CompletionQueue? {
        if case .soft(let channel, let soft) = handle {
            guard let queue = soft.waitForEvent(channel, timeoutMilliseconds: timeoutMilliseconds),
                  let owner = queue.userContext else { return nil }
            let completionQueue = Unmanaged<CompletionQueue>.fromOpaque(owner).takeUnretainedValue()
            completionQueue.noteEventReceived()
            return completionQueue
        }
        let channel = try verbsChannel("ibv_get_cq_event")
        var descriptor = pollfd(fd: channel.pointee.fd, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = try CReturn.minusOneErrno("poll(completion channel)") { poll(&descriptor, 1, timeoutMilliseconds) }
                .flatMapError { error in error.errno == EINTR ? .success(-1) : .failure(error) }.get()
            if ready == 0 { return nil }
            if ready > 0 { break }
        }
        var queue: UnsafeMutablePointer<ibv_cq>?
        var queueContext: UnsafeMutableRawPointer?
        _ = try CReturn.minusOneErrno("ibv_get_cq_event") { ibv_get_cq_event(channel, &queue, &queueContext) }.get()
        guard let queueContext else { return nil }
        // cq_context holds an unretained reference set by CompletionQueue.init; the queue
        // is alive because it is registered with (and closed before) this channel.
        let completionQueue = Unmanaged<CompletionQueue>.fromOpaque(queueContext).takeUnretainedValue()
        completionQueue.noteEventReceived()
        return completionQueue
    }

    /// Closes the queues attached to this channel, then the channel. Idempotent.
    /// The corresponding C function is `ibv_destroy_comp_channel`.
    public func close() throws(RDMAError) {
        if case .soft(let channel, let soft) = handle {
            try children.closeAll()
            handle = .closed
            soft.destroyCompletionChannel(channel)
            return
        }
        guard case .verbs(let pointer) = handle else { return }
        try children.closeAll()
        handle = .closed
        try CReturn.returnedErrno("ibv_destroy_comp_channel") { ibv_destroy_comp_channel(pointer) }.get()
    }

    deinit {
        try? close()
    }
}
