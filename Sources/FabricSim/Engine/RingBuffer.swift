/// A first-in-first-out queue over a growable circular array: O(1) at both ends, and no
/// allocation once it has grown to the deepest the queue gets.
struct RingBuffer<Element> {
    private var storage: [Element]
    private var head = 0
    private(set) var count = 0
    private let filler: Element

    /// `filler` occupies empty slots; it is never returned.
    init(filler: Element, capacity: Int = 16) {
        self.filler = filler
        storage = Array(repeating: filler, count: max(capacity, 1))
    }

    var isEmpty: Bool { count == 0 }

    mutating func append(_ element: Element) {
        if count == storage.count { grow() }
        var slot = head + count
        if slot >= storage.count { slot -= storage.count }
        storage[slot] = element
        count += 1
    }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        head += 1
        if head == storage.count { head = 0 }
        count -= 1
        return element
    }

    private mutating func grow() {
        var larger = Array(repeating: filler, count: storage.count * 2)
        for offset in 0..<count {
            var slot = head + offset
            if slot >= storage.count { slot -= storage.count }
            larger[offset] = storage[slot]
        }
        storage = larger
        head = 0
    }
}
