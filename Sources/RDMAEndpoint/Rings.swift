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
struct FixedRing<Element> {
    private var storage: [Element]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int, filler: Element) {
        storage = Array(repeating: filler, count: max(capacity, 1))
    }

    var capacity: Int { storage.count }
    var isEmpty: Bool { count == 0 }

    mutating func append(_ element: Element) -> Bool {
        guard count < storage.count else { return false }
        storage[(head + count) % storage.count] = element
        count += 1
        return true
    }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        head = (head + 1) % storage.count
        count -= 1
        return element
    }

    var first: Element? { count > 0 ? storage[head] : nil }
}

/// Free indices of a pool, as a stack allocated once.
struct FreeList {
    private var stack: [Int32]

    init(count: Int) {
        stack = (0..<Int32(count)).reversed()
        stack.reserveCapacity(count)
    }

    var available: Int { stack.count }
    mutating func take() -> Int32? { stack.popLast() }
    mutating func put(_ index: Int32) { stack.append(index) }
}
