import CIBVerbs

/// A reusable list of send work requests, built straight into the C structs and posted in
/// one call. (The soft backend posts the `SendWorkRequest` values the chain keeps beside
/// the C structs.)
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

    /// The verbs backend's view: `ibv_send_wr`s linked through `next`.
    let requests: UnsafeMutablePointer<ibv_send_wr>
    /// The soft backend's view: the requests as given. They also keep the address handles
    /// of UD requests alive until the chain is reused.
    private let values: UnsafeMutablePointer<SendWorkRequest>
    private let slots: ScatterGatherSlots

    public init(capacity: Int, maxScatterGather: Int = 1) {
        precondition(capacity > 0 && maxScatterGather > 0, "SendRequestChain needs a positive capacity and maxScatterGather")
        self.capacity = capacity
        self.maxScatterGather = maxScatterGather
        requests = .allocate(capacity: capacity)
        requests.initialize(repeating: ibv_send_wr(), count: capacity)
        values = .allocate(capacity: capacity)
        values.initialize(repeating: SendWorkRequest(id: 0), count: capacity)
        slots = ScatterGatherSlots(capacity: capacity, perRequest: maxScatterGather)
    }

    deinit {
        requests.deallocate()
        values.deinitialize(count: capacity)
        values.deallocate()
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
        try request.validate(totalLength: total, operationName: "SendRequestChain.append")
        var wr = ibv_send_wr()
        wr.sg_list = list
        wr.num_sge = Int32(elements.count)
        request.fill(&wr)
        requests[count] = wr
        values[count] = request
        if count > 0 { requests[count - 1].next = requests + count }
        count += 1
    }

    /// Empties the chain for reuse, keeping its storage.
    public func removeAll() {
        for index in 0..<count { values[index].datagram = nil }
        count = 0
    }

    /// Calls `body` with request `index` and its scatter-gather list.
    @inline(__always)
    func withRequest<R>(at index: Int, _ body: (SendWorkRequest, UnsafeBufferPointer<ScatterGatherElement>) throws(RDMAError) -> R) throws(RDMAError) -> R {
        try slots.withElements(ofRequest: index, count: Int(requests[index].num_sge)) { elements throws(RDMAError) in
            try body(values[index], elements)
        }
    }

    /// The request at `index` that a failed post pointed at.
    func index(of request: UnsafeMutablePointer<ibv_send_wr>?) -> Int? {
        guard let request else { return nil }
        let offset = request - requests
        return (0..<count).contains(offset) ? offset : nil
    }
}
