/// One pool of receive requests that several queue pairs draw from: memory for receives
/// scales with traffic instead of with the number of connections.
///
/// ```swift
/// let srq = try SharedReceiveQueue(protectionDomain: pd, maxWorkRequests: 1024)
/// try srq.postReceive(id: 1, scatterGather: region.scatterGather(length: 4096))
/// let qp = try QueuePair(protectionDomain: pd, kind: .reliableConnected,
///                        sendCompletionQueue: cq, receiveCompletionQueue: cq, sharedReceiveQueue: srq)
/// ```
/// Keeps its protection domain alive; `close()` closes the QPs using it first.
public final class SharedReceiveQueue: ClosableResource, @unchecked Sendable {
    /// The backend's queue: a `let`, so that a call through it needs no retain;
    /// it outlives `close()`, and every use checks `isClosed` first.
    private let operations: any SharedReceiveQueueOperations
    /// True after `close()` — set once the destroy call succeeded.
    public private(set) var isClosed = false
    public let protectionDomain: ProtectionDomain
    /// What the device granted.
    public let maxWorkRequests: UInt32
    public let maxScatterGather: UInt32
    let children = ChildRegistry()

    /// Creates the queue. The corresponding C function is `ibv_create_srq`.
    public init(protectionDomain: ProtectionDomain, maxWorkRequests: UInt32, maxScatterGather: UInt32 = 1) throws(RDMAError) {
        self.protectionDomain = protectionDomain
        let created = try protectionDomain.operations("ibv_create_srq").createSharedReceiveQueue(maxWorkRequests: maxWorkRequests,
                                                                                                maxScatterGather: maxScatterGather)
        operations = created.operations
        self.maxWorkRequests = created.maxWorkRequests
        self.maxScatterGather = created.maxScatterGather
        protectionDomain.children.add(self)
    }

    /// The backend's queue, or a `.closed` error naming `operation`.
    func operations(_ operation: StaticString) throws(RDMAError) -> any SharedReceiveQueueOperations {
        if isClosed { throw RDMAError.closed(operation, "SharedReceiveQueue") }
        return operations
    }

    /// Posts receives. The corresponding C function is `ibv_post_srq_recv`.
    public func postReceive(_ chain: ReceiveRequestChain) throws(RDMAError) {
        if isClosed { throw RDMAError.closed("ibv_post_srq_recv", "SharedReceiveQueue") }
        guard chain.count > 0 else { return }
        try operations.postReceive(chain)
    }

    /// Posts one receive into one buffer. Allocates nothing.
    /// The corresponding C function is `ibv_post_srq_recv`.
    public func postReceive(id: UInt64, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        if isClosed { throw RDMAError.closed("ibv_post_srq_recv", "SharedReceiveQueue") }
        try operations.postReceive(id: id, scatterGather: element)
    }

    /// Closes the queue pairs that use it, then destroys it. Idempotent; after a failure
    /// the queue stays open and `close()` may be retried.
    /// The corresponding C function is `ibv_destroy_srq`.
    public func close() throws(RDMAError) {
        if isClosed { return }
        try children.closeAll()
        try operations.destroy()
        isClosed = true
    }

    deinit {
        LeakCheck.objectDeinitialized("SharedReceiveQueue", isOpen: !isClosed, detail: "\(maxWorkRequests) work requests")
        try? close()
    }
}
