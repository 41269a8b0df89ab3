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
    /// Receives appended since the last `removeAll`.
    public var count: Int { appended }
    /// Unchecked exclusivity: a chain is used from one thread at a time (it is not
    /// Sendable), and the dynamic check was a `swift_beginAccess` call — ~76 instructions —
    /// on every read, including the endpoint's "anything to post?" in every poll round.
    /// (Behind a getter: on a public stored property, other modules emit the check anyway.)
    @exclusivity(unchecked) private var appended = 0

    let requests: UnsafeMutablePointer<ibv_recv_wr>
    private let slots: ScatterGatherSlots

    public init(capacity: Int, maxScatterGather: Int = 1) {
        precondition(capacity > 0 && maxScatterGather > 0, "ReceiveRequestChain needs a positive capacity and maxScatterGather")
        self.capacity = capacity
        self.maxScatterGather = maxScatterGather
        requests = .allocate(capacity: capacity)
        requests.initialize(repeating: ibv_recv_wr(), count: capacity)
        slots = ScatterGatherSlots(capacity: capacity, perRequest: maxScatterGather)
    }

    deinit {
        requests.deallocate()
        slots.deallocate()
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
        let (list, _) = try slots.store(elements, forRequest: appended, operation: "ReceiveRequestChain.append")
        var wr = ibv_recv_wr()
        wr.wr_id = id
        wr.sg_list = list
        wr.num_sge = Int32(elements.count)
        requests[appended] = wr
        if appended > 0 { requests[appended - 1].next = requests + appended }
        appended += 1
    }

    /// Empties the chain for reuse, keeping its storage.
    public func removeAll() { appended = 0 }

    /// Calls `body` with the id of receive `index` and its scatter-gather list.
    @inline(__always)
    func withRequest<R>(at index: Int, _ body: (UInt64, UnsafeBufferPointer<ScatterGatherElement>) throws(RDMAError) -> R) throws(RDMAError) -> R {
        try slots.withElements(ofRequest: index, count: Int(requests[index].num_sge)) { elements throws(RDMAError) in
            try body(requests[index].wr_id, elements)
        }
    }

    func index(of request: UnsafeMutablePointer<ibv_recv_wr>?) -> Int? {
        guard let request else { return nil }
        let offset = request - requests
        return (0..<count).contains(offset) ? offset : nil
    }
}
