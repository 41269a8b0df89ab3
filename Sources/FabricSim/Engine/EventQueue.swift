/// A binary min-heap of events in one contiguous array, ordered by time then by scheduling
/// order.
struct EventQueue {
    private var heap: [ScheduledEvent] = []
    private var nextSequence: UInt64 = 0

    init(capacity: Int = 1024) { heap.reserveCapacity(capacity) }

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var firstTime: Int64? { heap.first?.time }

    mutating func schedule(_ event: SimulationEvent, at time: Int64) {
        let item = ScheduledEvent(time: time, sequence: nextSequence, event: event)
        nextSequence &+= 1
        heap.append(item)
        heap.withUnsafeMutableBufferPointer { buffer in
            // Move the hole up instead of swapping: one write per level.
            var child = buffer.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard item.precedes(buffer[parent]) else { break }
                buffer[child] = buffer[parent]
                child = parent
            }
            buffer[child] = item
        }
    }

    mutating func popFirst() -> ScheduledEvent? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        let first = heap[0]
        heap.withUnsafeMutableBufferPointer { buffer in
            let count = buffer.count
            var parent = 0
            while true {
                var child = 2 * parent + 1
                if child >= count { break }
                if child + 1 < count && buffer[child + 1].precedes(buffer[child]) { child += 1 }
                guard buffer[child].precedes(last) else { break }
                buffer[parent] = buffer[child]
                parent = child
            }
            buffer[parent] = last
        }
        return first
    }
}
