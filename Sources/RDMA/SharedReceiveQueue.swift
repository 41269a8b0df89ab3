import CIBVerbs

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
    private enum Handle {
        case verbs(UnsafeMutablePointer<ibv_srq>)
        case closed
    }

    private var handle: Handle
    public let protectionDomain: ProtectionDomain
    /// What the device granted.
    public let maxWorkRequests: UInt32
    public let maxScatterGather: UInt32
    let children = ChildRegistry()

    /// Creates the queue. The corresponding C function is `ibv_create_srq`.
    public init(protectionDomain: ProtectionDomain, maxWorkRequests: UInt32, maxScatterGather: UInt32 = 1) throws(RDMAError) {
        self.protectionDomain = protectionDomain
        let domain = try protectionDomain.verbsDomain("ibv_create_srq")
        var attributes = ibv_srq_init_attr()
        attributes.attr.max_wr = maxWorkRequests
        attributes.attr.max_sge = maxScatterGather
        handle = .verbs(try CReturn.nonNull("ibv_create_srq") { ibv_create_srq(domain, &attributes) }.get())
        self.maxWorkRequests = attributes.attr.max_wr
        self.maxScatterGather = attributes.attr.max_sge
        protectionDomain.children.add(self)
    }

    func verbsQueue(_ operation: StaticString) throws(RDMAError) -> UnsafeMutablePointer<ibv_srq> {
        switch handle {
        case .verbs(let pointer): return pointer
        case .closed: throw RDMAError(operation: "\(operation)", kind: .closed, hint: "the SharedReceiveQueue was closed")
        }
    }

    /// Posts receives. The corresponding C function is `ibv_post_srq_recv`.
    public func postReceive(_ chain: ReceiveRequestChain) throws(RDMAError) {
        guard chain.count > 0 else { return }
        let queue = try verbsQueue("ibv_post_srq_recv")
        var bad: UnsafeMutablePointer<ibv_recv_wr>?
        try CReturn.returnedErrno("ibv_post_srq_recv") { ibv_post_srq_recv(queue, chain.requests, &bad) }.get()
    }

    /// Posts one receive into one buffer. Allocates nothing.
    /// The corresponding C function is `ibv_post_srq_recv`.
    public func postReceive(id: UInt64, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        let queue = try verbsQueue("ibv_post_srq_recv")
        var sge = element.verbs
        try CReturn.returnedErrno("ibv_post_srq_recv") {
            withUnsafeMutablePointer(to: &sge) { sgePointer in
                var wr = ibv_recv_wr(wr_id: id, next: nil, sg_list: sgePointer, num_sge: 1)
                var bad: UnsafeMutablePointer<ibv_recv_wr>?
                return ibv_post_srq_recv(queue, &wr, &bad)
            }
        }.get()
    }

    /// Closes the queue pairs that use it, then destroys it. Idempotent.
    /// The corresponding C function is `ibv_destroy_srq`.
    public func close() throws(RDMAError) {
        guard case .verbs(let pointer) = handle else { return }
        try children.closeAll()
        handle = .closed
        try CReturn.returnedErrno("ibv_destroy_srq") { ibv_destroy_srq(pointer) }.get()
    }

    deinit {
        try? close()
    }
}
