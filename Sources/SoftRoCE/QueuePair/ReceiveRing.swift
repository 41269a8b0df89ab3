/// A ring of posted receives (a QP's receive queue or a shared receive queue).
///
/// A receive the responder starts filling is copied out of the ring (`ActiveReceive`), so no
/// later post can overwrite it; it still counts against the capacity until it completes, as a
/// verbs receive WQE does, so a post into a queue that is full *including* the receive in use
/// fails with ENOMEM.
final class ReceiveRing {
    struct Slot {
        var id: UInt64 = 0
        var elementCount = 0
    }
    let capacity: Int
    let maxScatterGather: Int
    private let slots: UnsafeMutablePointer<Slot>
    private let elements: UnsafeMutablePointer<SoftScatterGather>
    @exclusivity(unchecked) private var head = 0
    @exclusivity(unchecked) private(set) var count = 0
    /// Receives taken by a responder and not yet completed.
    @exclusivity(unchecked) private(set) var inUse = 0

    init(capacity: Int, maxScatterGather: Int) {
        self.capacity = max(capacity, 1)
        self.maxScatterGather = max(maxScatterGather, 1)
        slots = .allocate(capacity: self.capacity)
        slots.initialize(repeating: Slot(), count: self.capacity)
        elements = .allocate(capacity: self.capacity * self.maxScatterGather)
        elements.initialize(repeating: SoftScatterGather(address: 0, length: 0, lkey: 0), count: self.capacity * self.maxScatterGather)
    }

    deinit {
        slots.deallocate()
        elements.deallocate()
    }

    enum PostFailure { case full, tooManyElements }

    func post(id: UInt64, _ list: UnsafeBufferPointer<SoftScatterGather>) -> PostFailure? {
        guard list.count <= maxScatterGather else { return .tooManyElements }
        guard count + inUse < capacity else { return .full }
        let index = (head + count) % capacity
        slots[index] = Slot(id: id, elementCount: list.count)
        for i in 0..<list.count { elements[index * maxScatterGather + i] = list[i] }
        count += 1
        return nil
    }

    /// Moves the oldest receive into `active` (its elements into `storage`, which holds at
    /// least `maxScatterGather`); false when the ring is empty.
    func take(into active: inout ActiveReceive, storage: UnsafeMutablePointer<SoftScatterGather>) -> Bool {
        guard count > 0 else { return false }
        let slot = slots[head]
        storage.update(from: elements + head * maxScatterGather, count: slot.elementCount)
        active = ActiveReceive(id: slot.id, elementCount: slot.elementCount, ring: self)
        head = (head + 1) % capacity
        count -= 1
        inUse += 1
        return true
    }

    /// The responder finished (or flushed) a receive it took.
    func release() { inUse -= 1 }

    /// Removes the oldest receive's id without taking it (flushing a QP in error).
    func discardOldest() -> UInt64? {
        guard count > 0 else { return nil }
        let id = slots[head].id
        head = (head + 1) % capacity
        count -= 1
        return id
    }

    func removeAll() {
        head = 0
        count = 0
        inUse = 0
    }
}

/// A receive the responder is filling: copied out of its ring, elements in QP storage.
struct ActiveReceive {
    var id: UInt64 = 0
    var elementCount = 0
    /// The ring it came from, released when the receive completes.
    var ring: ReceiveRing? = nil
    /// Bytes placed so far.
    var offset = 0
}
