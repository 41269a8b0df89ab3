import CIBVerbs

/// A reusable list of send work requests, built straight into the C structs and posted in
/// one call.
///
/// The chain allocates its storage once, at creation; `append` and `removeAll` only write
/// into it, so a loop that refills and posts a chain allocates nothing.
///
/// ```swift
/// let chain = SendRequestChain(capacity: 16)
/// for index in 0..<16 {
///     try chain.append(SendWorkRequest(id: UInt64(index), flags: index == 15 ? .signaled : []),
///                      scatterGather: region.scatterGather(offset: index * 64, length: 64))
/// }
/// try queuePair.post(chain)
/// chain.removeAll()
/// ```
/// - Important: the memory named by a posted request must stay registered and untouched
///   until its completion is polled (or, for unsignaled requests, a later signaled one).
public final class SendRequestChain {
    /// How many requests the chain holds.
    public let capacity: Int
    /// How many scatter-gather elements each request may have.
    public let maxScatterGather: Int
    /// How many requests are in the chain now.
    public private(set) var count = 0

    let requests: UnsafeMutablePointer<ibv_send_wr>
    private let slots: ScatterGatherSlots
    // UD requests point at address handles; the chain keeps them alive until it is reused.
    private var addressHandles: ContiguousArray<AddressHandle?>

    public init(capacity: Int, maxScatterGather: Int = 1) {
        precondition(capacity > 0 && maxScatterGather > 0, "SendRequestChain needs a positive capacity and maxScatterGather")
        self.capacity = capacity
        self.maxScatterGather = maxScatterGather
        requests = .allocate(capacity: capacity)
        requests.initialize(repeating: ibv_send_wr(), count: capacity)
        slots = ScatterGatherSlots(capacity: capacity, perRequest: maxScatterGather)
        addressHandles = ContiguousArray(repeating: nil, count: capacity)
    }

    deinit {
        requests.deallocate()
        slots.deallocate()
    }

    /// Appends a request with one scatter-gather element.
    @inlinable
    public func append(_ request: SendWorkRequest, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        try withUnsafePointer(to: element) { pointer throws(RDMAError) in
            try append(request, scatterGather: UnsafeBufferPointer(start: pointer, count: 1))
        }
    }

    /// Appends a request with no payload (a zero-byte SEND, for instance).
    @inlinable
    public func append(_ request: SendWorkRequest) throws(RDMAError) {
        try append(request, scatterGather: UnsafeBufferPointer<ScatterGatherElement>(start: nil, count: 0))
    }

    /// Appends a request gathering from `elements` (at most `maxScatterGather`).
    public func append(_ request: SendWorkRequest, scatterGather elements: UnsafeBufferPointer<ScatterGatherElement>) throws(RDMAError) {
        let (list, total) = try slots.store(elements, forRequest: count, operation: "SendRequestChain.append")
        var wr = ibv_send_wr()
        wr.sg_list = list
        wr.num_sge = Int32(elements.count)
        try request.fill(&wr, totalLength: total, operationName: "SendRequestChain.append")
        requests[count] = wr
        addressHandles[count] = request.datagram?.addressHandle
        if count > 0 { requests[count - 1].next = requests + count }
        count += 1
    }

    /// Empties the chain for reuse, keeping its storage.
    public func removeAll() {
        for index in 0..<count { addressHandles[index] = nil }
        count = 0
    }

    /// The request at `index` that a failed post pointed at.
    func index(of request: UnsafeMutablePointer<ibv_send_wr>?) -> Int? {
        guard let request else { return nil }
        let offset = request - requests
        return (0..<count).contains(offset) ? offset : nil
    }
}
