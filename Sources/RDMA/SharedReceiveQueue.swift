import CIBVerbs
import SoftRoCE

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
        case soft(SoftSharedReceiveQueue, SoftDevice)
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
        if let (domain, soft) = try protectionDomain.softDomain("ibv_create_srq") {
            let queue = soft.createSharedReceiveQueue(domain: domain, capacity: Int(maxWorkRequests), maxScatterGather: Int(maxScatterGather))
            handle = .soft(queue, soft)
            self.maxWorkRequests = UInt32(queue.capacity)
            self.maxScatterGather = max(maxScatterGather, 1)
            protectionDomain.children.add(self)
            return
        }
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
        case .soft: throw RDMAError(operation: "\(operation)", kind: .unsupported, hint: "a soft SRQ has no verbs handle")
        case .closed: throw RDMAError(operation: "\(operation)", kind: .closed, hint: "the SharedReceiveQueue was closed")
        }
    }

    /// Posts receives. The corresponding C function is `ibv_post_srq_recv`.
    var softQueue: SoftSharedReceiveQueue? {
        if case .soft(let queue, _) = handle { return queue }
        return nil
    }

    public func postReceive(_ chain: ReceiveRequestChain) throws(RDMAError) {
        guard chain.count > 0 else { return }
        if case .soft(let queue, let soft) = handle {
            var request: UnsafeMutablePointer<ibv_recv_wr>? = chain.requests
            while let current = request {
                try SoftPost.receive(current) { id, sges throws(SoftRoCEError) in try soft.postReceive(queue, id: id, sges) }
                request = current.pointee.next
            }
            return
        }
        let queue = try verbsQueue("ibv_post_srq_recv")
        var bad: UnsafeMutablePointer<ibv_recv_wr>?
        try CReturn.returnedErrno("ibv_post_srq_recv") { ibv_post_srq_recv(queue, chain.requests, &bad) }.get()
    }

    /// Posts one receive into one buffer. Allocates nothing.
    /// The corresponding C function is `ibv_post_srq_recv`.
    public func postReceive(id: UInt64, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        if case .soft(let queue, let soft) = handle {
            var sge = SoftScatterGather(address: element.address, length: element.length, lkey: element.lkey)
            do throws(SoftRoCEError) {
                try withUnsafePointer(to: &sge) { pointer throws(SoftRoCEError) in try soft.postReceive(queue, id: id, UnsafeBufferPointer(start: pointer, count: 1)) }
            } catch { throw RDMAError(soft: error) }
            return
        }
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
        if case .soft = handle {
            try children.closeAll()
            handle = .closed
            return
        }
        guard case .verbs(let pointer) = handle else { return }
        try children.closeAll()
        handle = .closed
        try CReturn.returnedErrno("ibv_destroy_srq") { ibv_destroy_srq(pointer) }.get()
    }

    deinit {
        try? close()
    }
}
