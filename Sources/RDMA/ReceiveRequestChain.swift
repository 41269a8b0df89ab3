import CIBVerbs

/// A reusable list of receive work requests, built straight into the C structs and posted
/// in one call (to a queue pair or a shared receive queue). Allocates only at creation.
///
/// ```swift
/// let receives = ReceiveRequestChain(capacity: 64)
/// for slot in 0..<64 {
///     try receives.append(id: UInt64(slot), scatterGather: region.scatterGather(offset: slot * 4096, length: 4096))
/// }
/// try queuePair.postReceive(receives)
/// ```
/// - Important: the buffers must stay registered and unread until the receive completes.
public final class ReceiveRequestChain {
    public let capacity: Int
    public let maxScatterGather: Int
    public private(set) var count = 0

    let requests: UnsafeMutablePointer<ibv_recv_wr>
    private let elements: UnsafeMutablePointer<ibv_sge>

    public init(capacity: Int, maxScatterGather: Int = 1) {
        precondition(capacity > 0 && maxScatterGather > 0, "ReceiveRequestChain needs a positive capacity and maxScatterGather")
        self.capacity = capacity
        self.maxScatterGather = maxScatterGather
        requests = .allocate(capacity: capacity)
        requests.initialize(repeating: ibv_recv_wr(), count: capacity)
        elements = .allocate(capacity: capacity * maxScatterGather)
        elements.initialize(repeating: ibv_sge(), count: capacity * maxScatterGather)
    }

    deinit {
        requests.deallocate()
        elements.deallocate()
    }

    /// Appends a receive into one buffer.
    @inlinable
    public func append(id: UInt64, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        try withUnsafePointer(to: element) { pointer throws(RDMAError) in
            try append(id: id, scatterGather: UnsafeBufferPointer(start: pointer, count: 1))
        }
    }

    /// Appends a receive scattering into `elements` (at most `maxScatterGather`).
    public func append(id: UInt64, scatterGather elements: UnsafeBufferPointer<ScatterGatherElement>) throws(RDMAError) {
        guard count < capacity else {
            throw RDMAError(operation: "ReceiveRequestChain.append", kind: .invalidArgument,
                            hint: "the chain is full (capacity \(capacity)): post it and call removeAll()")
        }
        guard elements.count <= maxScatterGather else {
            throw RDMAError(operation: "ReceiveRequestChain.append", kind: .invalidArgument,
                            hint: "\(elements.count) scatter-gather elements, the chain allows \(maxScatterGather)")
        }
        let slot = elements.count == 0 ? nil : self.elements + count * maxScatterGather
        for (index, element) in elements.enumerated() { slot![index] = element.verbs }
        var wr = ibv_recv_wr()
        wr.wr_id = id
        wr.sg_list = slot
        wr.num_sge = Int32(elements.count)
        requests[count] = wr
        if count > 0 { requests[count - 1].next = requests + count }
        count += 1
    }

    /// Empties the chain for reuse, keeping its storage.
    public func removeAll() { count = 0 }

    func index(of request: UnsafeMutablePointer<ibv_recv_wr>?) -> Int? {
        guard let request else { return nil }
        let offset = request - requests
        return (0..<count).contains(offset) ? offset : nil
    }
}
