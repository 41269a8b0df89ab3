import CIBVerbs

/// The `ibv_sge` storage of a request chain: `perRequest` slots for each of `capacity`
/// requests, allocated once. Shared by the send and receive chains, which differ only in
/// the work-request struct that points here.
struct ScatterGatherSlots {
    let base: UnsafeMutablePointer<ibv_sge>
    let perRequest: Int
    let capacity: Int

    init(capacity: Int, perRequest: Int) {
        self.capacity = capacity
        self.perRequest = perRequest
        base = .allocate(capacity: capacity * perRequest)
        base.initialize(repeating: ibv_sge(), count: capacity * perRequest)
    }

    func deallocate() { base.deallocate() }

    /// Checks the chain's limits, copies `elements` into the slots of request `index`, and
    /// returns the list to point the request at (nil when empty) and its total byte count.
    @inline(__always)
    func store(_ elements: UnsafeBufferPointer<ScatterGatherElement>, forRequest index: Int,
               operation: StaticString) throws(RDMAError) -> (list: UnsafeMutablePointer<ibv_sge>?, bytes: UInt64) {
        guard index < capacity else {
            throw RDMAError(operation: "\(operation)", kind: .invalidArgument,
                            hint: "the chain is full (capacity \(capacity)): post it and call removeAll()")
        }
        guard elements.count <= perRequest else {
            throw RDMAError(operation: "\(operation)", kind: .invalidArgument,
                            hint: "\(elements.count) scatter-gather elements, the chain allows \(perRequest)")
        }
        guard !elements.isEmpty else { return (nil, 0) }
        let slot = base + index * perRequest
        var total: UInt64 = 0
        for offset in 0..<elements.count {
            slot[offset] = elements[offset].verbs
            total &+= UInt64(elements[offset].length)
        }
        return (slot, total)
    }

    /// The first `count` elements of request `index`, as the public type (layout-identical
    /// to `ibv_sge`: the memory is rebound for the call, not copied).
    @inline(__always)
    func withElements<R>(ofRequest index: Int, count: Int,
                         _ body: (UnsafeBufferPointer<ScatterGatherElement>) throws(RDMAError) -> R) throws(RDMAError) -> R {
        let slot = base + index * perRequest
        return try slot.withMemoryRebound(to: ScatterGatherElement.self, capacity: perRequest) { elements throws(RDMAError) in
            try body(UnsafeBufferPointer(start: elements, count: count))
        }
    }
}
