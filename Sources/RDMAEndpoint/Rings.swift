/// Where a received payload lives: receive slot `index`, or rendezvous slot `index`.
struct PayloadLocation: Equatable {
    var isRendezvous: Bool
    var index: Int32
}

/// A received message waiting for its reader: what `ReceivedMessage` is built from.
struct InboundEntry {
    var kind: MessageHeader.Kind
    var location: PayloadLocation
    var length: Int
    var callID: UInt64

    static let empty = InboundEntry(kind: .message, location: PayloadLocation(isRendezvous: false, index: 0), length: 0, callID: 0)
}

/// A first-in first-out ring of fixed capacity, allocated once.
///
/// Non-copyable, over memory it owns: a copyable ring over an array was copied — its
/// buffer retained and released — by reads through the endpoint's properties (the
/// ledger's once per send), an atomic pair the lab's emulated CPU makes dear. Borrowed,
/// it is read in place.
struct FixedRing<Element>: ~Copyable {
    private let storage: UnsafeMutableBufferPointer<Element>
    private var head = 0
    private(set) var count = 0

    init(capacity: Int, filler: Element) {
        storage = .allocate(capacity: max(capacity, 1))
        storage.initialize(repeating: filler)
    }

    deinit {
        _ = storage.deinitialize()
        storage.deallocate()
    }

    var capacity: Int { storage.count }
    var isEmpty: Bool { count == 0 }

    mutating func append(_ element: Element) -> Bool {
        guard count < storage.count else { return false }
        // A compare instead of `%`: a division is a helper call on the lab's emulated CPU.
        var tail = head + count
        if tail >= storage.count { tail -= storage.count }
        storage[tail] = element
        count += 1
        return true
    }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        head += 1
        if head == storage.count { head = 0 }
        count -= 1
        return element
    }

    var first: Element? { count > 0 ? storage[head] : nil }
}

/// Free indices of a pool, as a stack allocated once (non-copyable like `FixedRing`).
struct FreeList: ~Copyable {
    private let stack: UnsafeMutableBufferPointer<Int32>
    private(set) var available: Int

    init(count: Int) {
        stack = .allocate(capacity: max(count, 1))
        for index in 0..<count { stack[index] = Int32(count - 1 - index) }
        available = count
    }

    deinit { stack.deallocate() }

    mutating func take() -> Int32? {
        guard available > 0 else { return nil }
        available -= 1
        return stack[available]
    }

    /// Returns `index` to the pool; it must have come from `take`, so the stack never
    /// holds more than it was made with.
    mutating func put(_ index: Int32) {
        precondition(available < stack.count, "FreeList.put: more indices returned than taken")
        stack[available] = index
        available += 1
    }
}
