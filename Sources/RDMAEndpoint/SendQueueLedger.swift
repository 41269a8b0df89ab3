/// The send queue's work requests in posting order, and which of them ask for a completion
/// (selective signalling).
///
/// A reliable-connected send queue completes in order, so one signalled completion says
/// every request posted before it is done too. Most requests therefore go unsignalled: the
/// device writes no completion for them and nobody polls one (kernel rxe's completer makes
/// a CQE per signalled request; the endpoint polled two per call where `rdma-pingpong`
/// polls one). A request is signalled when `signalInterval` requests went without, or when
/// what is left after it (send buffers, queue room) is short — so whenever a send finds
/// the pool or the queue empty, a signalled request is in flight that will refill them.
struct SendQueueLedger: ~Copyable {
    /// One posted request: what it was, and the send buffer its completion frees (-1 none).
    struct Entry {
        var tag: RequestTag
        var sendSlot: Int32
    }

    /// Sequence numbers travel in the low 56 bits of the work request ID (the tag above).
    static let sequenceMask: UInt64 = (1 << 56) - 1
    /// A request is signalled at least this often.
    static let maximumSignalInterval = 16
    /// Send-queue entries a send may need (a rendezvous WRITE, its notice, and one kept for
    /// a control write): an unsignalled request must leave at least this much room.
    static let roomKept = 4

    let capacity: Int
    let signalInterval: Int
    private var entries: FixedRing<Entry>
    /// Requests posted so far; the next one's sequence number.
    private(set) var posted: UInt64 = 0
    private(set) var signalled: UInt64 = 0
    private var unsignalledRun = 0

    init(capacity: Int) {
        self.capacity = capacity
        signalInterval = max(1, min(Self.maximumSignalInterval, capacity / 4))
        entries = FixedRing(capacity: capacity, filler: Entry(tag: .eagerSend, sendSlot: -1))
    }

    /// Requests posted and not yet known complete: they hold queue room (and their buffers).
    var outstanding: Int { entries.count }
    var room: Int { capacity - entries.count }

    /// Whether the next request must ask for a completion: `always` (control writes, which
    /// `close` counts), a run of `signalInterval`, or little left after it (`sendSlotsLeft`
    /// free send buffers once this one is taken and not returned at posting).
    func mustSignal(always: Bool, sendSlotsLeft: Int) -> Bool {
        always || unsignalledRun + 1 >= signalInterval || sendSlotsLeft < 2 || room - 1 < Self.roomKept
    }

    /// The work request ID of the next request.
    func nextID(_ tag: RequestTag) -> UInt64 {
        tag.rawValue << 56 | (posted & Self.sequenceMask)
    }

    /// Records the request just posted under `nextID(entry.tag)`.
    mutating func record(_ entry: Entry, signalled isSignalled: Bool) {
        _ = entries.append(entry)
        posted += 1
        if isSignalled {
            signalled += 1
            unsignalledRun = 0
        } else {
            unsignalledRun += 1
        }
    }

    /// Retires every request up to and including the one `id` names, oldest first, calling
    /// `body` for each. A completion for a request already retired (a flush after an error,
    /// a repeat) retires nothing.
    mutating func retire(through id: UInt64, _ body: (Entry) -> Void) {
        let oldest = (posted &- UInt64(entries.count)) & Self.sequenceMask
        let distance = ((id & Self.sequenceMask) &- oldest) & Self.sequenceMask
        guard distance < UInt64(entries.count) else { return }
        for _ in 0...Int(distance) {
            body(entries.popFirst()!)
        }
    }
}
