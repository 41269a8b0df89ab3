import RoCEWire

/// A QP's send queue: a ring of work requests with monotonic indices (slot = index %
/// capacity). `head` is the oldest request not yet completed, `tail` the next free index.
/// Each entry keeps the request, its gather list (or inline bytes) and what the requester
/// and completer learned about it on the wire.
final class SendQueue {
    struct Entry {
        var request = SoftSendRequest(id: 0)
        var elementCount = 0
        var length = 0
        /// Set when the requester first transmits it.
        var firstPSN: PacketSequenceNumber = 0
        var packetCount = 1
        /// READ: response packets placed so far, in order.
        var responsesReceived = 0
        /// READ/atomic: the whole response arrived.
        var responseComplete = false
        /// The requester gave it PSNs.
        var assigned = false

        var lastPSN: PacketSequenceNumber { firstPSN + (packetCount - 1) }
    }

    let capacity: Int
    let maxScatterGather: Int
    let maxInline: Int
    private let entries: UnsafeMutablePointer<Entry>
    private let elements: UnsafeMutablePointer<SoftScatterGather>
    private let inlineBytes: UnsafeMutableRawPointer
    @exclusivity(unchecked) var head = 0
    @exclusivity(unchecked) var tail = 0

    init(capacity: Int, maxScatterGather: Int, maxInline: Int) {
        self.capacity = max(capacity, 1)
        self.maxScatterGather = max(maxScatterGather, 1)
        self.maxInline = max(maxInline, 0)
        entries = .allocate(capacity: self.capacity)
        entries.initialize(repeating: Entry(), count: self.capacity)
        elements = .allocate(capacity: self.capacity * self.maxScatterGather)
        elements.initialize(repeating: SoftScatterGather(address: 0, length: 0, lkey: 0), count: self.capacity * self.maxScatterGather)
        inlineBytes = .allocate(byteCount: max(self.capacity * self.maxInline, 1), alignment: 16)
    }

    deinit {
        entries.deallocate()
        elements.deallocate()
        inlineBytes.deallocate()
    }

    var outstanding: Int { tail - head }
    var isFull: Bool { tail - head >= capacity }

    @inline(__always) func entry(_ index: Int) -> UnsafeMutablePointer<Entry> { entries + (index % capacity) }
    @inline(__always) func elements(of index: Int) -> UnsafeMutablePointer<SoftScatterGather> {
        elements + (index % capacity) * maxScatterGather
    }
    @inline(__always) func inlineData(of index: Int) -> UnsafeMutableRawPointer { inlineBytes + (index % capacity) * maxInline }

    /// The first request at or after `head` whose PSN range holds `psn`.
    func index(holding psn: PacketSequenceNumber) -> Int? {
        var index = head
        while index < tail {
            let entry = entry(index)
            guard entry.pointee.assigned else { return nil }
            if psn.isInWindow(startingAt: entry.pointee.firstPSN, count: entry.pointee.packetCount) { return index }
            index += 1
        }
        return nil
    }
}
