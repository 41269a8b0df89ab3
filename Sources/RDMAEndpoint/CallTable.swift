/// The calls this endpoint has outstanding, indexed by `callID & mask`: a call ID is a
/// sequence number, so a response names its slot directly and no lookup allocates.
/// Non-copyable over memory it owns, like `FixedRing`: a read through the endpoint's
/// property then borrows it instead of retaining and releasing an array.
struct CallTable: ~Copyable {
    enum State: UInt8 {
        case free
        /// The request is queued behind others (async mode: no credit yet).
        case queued
        /// The request is sent; the response has not arrived.
        case waiting
        /// The response arrived and waits for `takeResponse` (poll mode).
        case completed
        /// The caller gave up (timeout, cancellation); the response is dropped on arrival.
        case abandoned
    }

    struct Slot {
        var state: State = .free
        var id: UInt64 = 0
        /// 0 for an untimed call (see `EndpointConfiguration.timedCallInterval`).
        var startNanoseconds: UInt64 = 0
        /// 0 for none.
        var deadlineNanoseconds: UInt64 = 0
        var response = InboundEntry.empty
    }

    private let slots: UnsafeMutableBufferPointer<Slot>
    let mask: UInt64
    private(set) var nextID: UInt64 = 1
    /// Slots not `.free`.
    private(set) var occupied = 0
    /// No deadline of an outstanding call falls before this (`UInt64.max`: none does): the
    /// async driver sweeps the table only once it has passed. A sweep visits every slot
    /// (16,384 by default) under the endpoint's lock; done every millisecond, as it was,
    /// it took the driver's time and the lock from the calls themselves — under emulation
    /// (kernel rxe in the lab VM) 10,000 calls then ran into their 60 s timeouts.
    var earliestDeadline = UInt64.max
    /// Sweeps done (see `earliestDeadline`).
    var deadlineSweeps = 0

    init(capacity: Int) {
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot())
        mask = UInt64(capacity - 1)
    }

    deinit { slots.deallocate() }

    @inline(__always) func index(_ id: UInt64) -> Int { Int(id & mask) }

    /// A new call ID, or nil while the slot it would use is still taken.
    mutating func open(start: UInt64, deadline: UInt64, state: State) -> UInt64? {
        let id = nextID
        let slot = index(id)
        guard slots[slot].state == .free else { return nil }
        nextID &+= 1
        slots[slot] = Slot(state: state, id: id, startNanoseconds: start, deadlineNanoseconds: deadline)
        occupied += 1
        if deadline != 0 { earliestDeadline = min(earliestDeadline, deadline) }
        return id
    }

    /// The slot of an outstanding call `id`, nil when no such call is outstanding.
    func outstanding(_ id: UInt64) -> Int? {
        let slot = index(id)
        let entry = slots[slot]
        guard entry.id == id, entry.state != .free else { return nil }
        return slot
    }

    subscript(slot: Int) -> Slot {
        get { slots[slot] }
        set { slots[slot] = newValue }
    }

    mutating func free(_ slot: Int) {
        if slots[slot].state != .free { occupied -= 1 }
        slots[slot].state = .free
    }
}
