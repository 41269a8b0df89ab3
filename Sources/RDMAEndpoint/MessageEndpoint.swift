#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import Metrics
import RDMA

/// A message and RPC endpoint over a connected reliable-connected queue pair.
///
/// The endpoint posts `receiveSlots` registered buffers and tells the peer so in its
/// `EndpointHandshake`: the peer may send that many messages (its credits), and gets a
/// credit back each time a buffer is re-posted — piggy-backed on the next message, or by an
/// RDMA WRITE into the peer's control block, which needs no receive buffer. So the engine
/// never sees an RNR NAK in steady state. Messages up to the eager threshold go by SEND;
/// larger ones by RDMA WRITE into the peer's rendezvous slots, announced by a SEND.
///
/// Received messages are `ReceivedMessage`s: non-copyable views of the registered buffer,
/// which return to the pool (and become a credit) when released.
///
/// Two ways to drive it: the run-to-completion poll mode (`start(peer:mode: .poll)`, then
/// `poll()`, `trySend`, `tryReceive`, `trySendRequest`/`takeResponse` from one thread, no
/// allocation per call), and async/await (`mode: .async`, the default: a driver thread
/// polls; `send`, `receive`, `call`, `respond` suspend when out of credits).
///
/// ```swift
/// let endpoint = try MessageEndpoint(queuePair: connectedQueuePair)
/// sendToPeer(endpoint.localHandshake.serialized)          // any channel, or CM private data
/// try endpoint.start(peer: EndpointHandshake(serialized: receiveFromPeer()))
/// let response = try await endpoint.call(Array("ping".utf8), timeout: .seconds(1))
/// print(response.bytes)
/// ```
///
/// Peer input is validated: credits it does not have, oversized messages, unknown call IDs,
/// bad rendezvous slots close the connection with `EndpointError.protocolViolation` naming
/// the field; the peer can only touch the control block and the rendezvous region it was
/// given, and no length it sends is used without a check against our buffers.
///
/// The endpoint owns the queue pair from `init` on (it closes it) and must be the only
/// user of its completion queues.
public final class MessageEndpoint: @unchecked Sendable {
    public enum DrivingMode: Sendable { case poll, async }

    /// The close reason `close()` sends by default, and the one sent to a peer that broke
    /// the protocol.
    public static let normalCloseReason: UInt32 = 1
    public static let protocolViolationCloseReason: UInt32 = 2

    public let queuePair: QueuePair
    public let configuration: EndpointConfiguration
    /// What to send the peer before `start(peer:)`.
    public let localHandshake: EndpointHandshake
    let memory: EndpointMemory
    let logger: Logger
    let metrics: EndpointMetrics
    let lock = EndpointLock()

    // MARK: state, touched only under `lock`
    // The lock is what keeps accesses exclusive, so the runtime's checks are off for these
    // (`@exclusivity(unchecked)`): each checked access was a `swift_beginAccess` call, ~60
    // sites on the call path, a good part of the endpoint's own work per call — which the
    // lab's emulated CPU multiplies.

    enum Phase {
        case created, running, failed(EndpointError), closed
    }
    @exclusivity(unchecked) var phase = Phase.created
    @exclusivity(unchecked) var mode = DrivingMode.poll
    @exclusivity(unchecked) var peer: EndpointHandshake?
    /// The eager threshold in force: the smaller of both sides' limits.
    @exclusivity(unchecked) var eagerLimit = 0
    /// Rendezvous slots and size usable toward the peer (0 when either side has none).
    @exclusivity(unchecked) var rendezvousSlotsOut = 0
    @exclusivity(unchecked) var rendezvousSizeOut = 0

    // Credits toward the peer.
    @exclusivity(unchecked) var peerGranted: UInt64 = 0
    @exclusivity(unchecked) var messagesSent: UInt64 = 0
    @exclusivity(unchecked) var sendSlots: FreeList
    /// Posted send-queue requests, retired by the signalled ones' completions.
    @exclusivity(unchecked) var sendQueue: SendQueueLedger
    /// The largest SEND (header and payload) posted inline: its buffer is free at once.
    let inlineLimit: Int

    // What we grant.
    @exclusivity(unchecked) var grantedTotal: UInt64
    @exclusivity(unchecked) var advertisedGranted: UInt64
    @exclusivity(unchecked) var messagesReceived: UInt64 = 0
    let grantThreshold: UInt64
    /// Released receive buffers not posted yet (poll mode): posted in one `ibv_post_recv`
    /// by the next round, off the path between a response and the next request — or at
    /// once when the peer may be running short of credits.
    let receivesToPost: ReceiveRequestChain
    /// Receive slots released in poll mode and not queued yet: a release only notes its
    /// slot here, and the next round builds the work requests (`postQueuedReceives`) —
    /// while the caller waits for its next response rather than between a response and
    /// the next request.
    @exclusivity(unchecked) var releasedReceives: FixedRing<Int32>
    /// Calls until the next timed one (`EndpointConfiguration.timedCallInterval`).
    @exclusivity(unchecked) var timedCallCountdown: Int

    // Rendezvous both ways.
    @exclusivity(unchecked) var rendezvousSent: UInt64 = 0
    @exclusivity(unchecked) var peerReleased: UInt64 = 0
    @exclusivity(unchecked) var rendezvousReceived: UInt64 = 0
    @exclusivity(unchecked) var rendezvousReleasedFlags: [Bool]
    @exclusivity(unchecked) var releasedTotal: UInt64 = 0
    @exclusivity(unchecked) var advertisedReleased: UInt64 = 0

    // Control writes toward the peer.
    @exclusivity(unchecked) var controlWritesPosted: UInt64 = 0
    @exclusivity(unchecked) var controlWritesCompleted: UInt64 = 0
    @exclusivity(unchecked) var closeReasonToSend: UInt32 = 0
    @exclusivity(unchecked) var probeRequested = false
    /// The peer's close reason, seen in our control block and acted on after the CQ drained.
    @exclusivity(unchecked) var peerCloseReason: UInt32 = 0

    // Receiving.
    @exclusivity(unchecked) var inbound: FixedRing<InboundEntry>
    @exclusivity(unchecked) var calls: CallTable
    let completions: UnsafeMutableBufferPointer<WorkCompletion>
    /// `queuePair`'s completion queues, unretained (`queuePair` keeps them alive). Every
    /// RDMA object is held weakly by its parent's `ChildRegistry`, so its reference count
    /// lives in a side table and each retain or release takes the slow atomic path: reached
    /// through `queuePair`, the two queues cost two of each per round, ~340 of an empty
    /// round's ~870 instructions beyond the poll itself (callgrind, soft engine).
    let sendCompletionQueue: Unmanaged<CompletionQueue>
    let receiveCompletionQueue: Unmanaged<CompletionQueue>
    /// What was asked of the device (`statistics`).
    @exclusivity(unchecked) var counts = EndpointStatistics()

    // Async mode (see MessageEndpoint+Async.swift).
    @exclusivity(unchecked) var callContinuations: [UnsafeContinuation<CallOutcome, Never>?]
    @exclusivity(unchecked) var receiveWaiterList: [ReceiveWaiter] = []
    @exclusivity(unchecked) var pendingSends: [PendingSend] = []
    @exclusivity(unchecked) var pendingSendsHead = 0
    @exclusivity(unchecked) var nextWaiterID: UInt64 = 1
    @exclusivity(unchecked) var lastActivityNanoseconds: UInt64 = 0
    @exclusivity(unchecked) var driver: EndpointDriver?

    // Connected by address (see MessageEndpoint+Connect.swift): ended by `close()` too.
    @exclusivity(unchecked) var connection: Connection?
    @exclusivity(unchecked) var connectionObjects: EndpointObjects?

    /// Creates the endpoint on `queuePair` (RC, in INIT or later, connected or about to
    /// be): registers the pools and posts every receive buffer, so the peer may send as
    /// soon as it has `localHandshake`. Logs go to `logger` (default: label
    /// `configuration.label`), metrics to `metricsFactory` (default: `MetricsSystem`).
    public init(queuePair: QueuePair, configuration: EndpointConfiguration = EndpointConfiguration(),
                logger: Logger? = nil, metricsFactory: (any MetricsFactory)? = nil) throws(EndpointError) {
        try configuration.validate()
        guard queuePair.kind == .reliableConnected else {
            throw .invalidConfiguration(field: "queuePair.kind", detail: "an endpoint needs a reliable-connected QP, got \(queuePair.kind)")
        }
        guard queuePair.sharedReceiveQueue == nil else {
            throw .invalidConfiguration(field: "queuePair.sharedReceiveQueue", detail: "the endpoint posts its own receives: create the QP without an SRQ")
        }
        let maxReceives = Int(queuePair.capabilities.maxReceiveWorkRequests), maxSends = Int(queuePair.capabilities.maxSendWorkRequests)
        guard maxReceives >= configuration.receiveSlots else {
            throw .invalidConfiguration(field: "receiveSlots", detail: "\(configuration.receiveSlots) exceeds the QP's \(maxReceives) receive requests: create the QP with maxReceiveWorkRequests ≥ receiveSlots")
        }
        guard maxSends >= 4 else {
            throw .invalidConfiguration(field: "queuePair.maxSendWorkRequests", detail: "\(maxSends) < 4")
        }
        let sendCapacity = queuePair.sendCompletionQueue.capacity, receiveCapacity = queuePair.receiveCompletionQueue.capacity
        let needed = queuePair.sendCompletionQueue === queuePair.receiveCompletionQueue
            ? (sendCapacity >= maxSends + configuration.receiveSlots)
            : (sendCapacity >= maxSends && receiveCapacity >= configuration.receiveSlots)
        guard needed else {
            throw .invalidConfiguration(field: "completionQueue.capacity", detail: "the completion queues cannot hold every send (\(maxSends)) and receive (\(configuration.receiveSlots)) completion: enlarge them")
        }
        self.queuePair = queuePair
        self.configuration = configuration
        self.logger = logger ?? Logger(label: configuration.label)
        metrics = EndpointMetrics(label: configuration.label, factory: metricsFactory)
        memory = try EndpointMemory(domain: queuePair.protectionDomain, configuration: configuration)
        sendSlots = FreeList(count: configuration.sendSlots)
        sendQueue = SendQueueLedger(capacity: maxSends)
        inlineLimit = Int(queuePair.capabilities.maxInlineData)
        receivesToPost = ReceiveRequestChain(capacity: configuration.receiveSlots)
        releasedReceives = FixedRing(capacity: configuration.receiveSlots, filler: 0)
        grantedTotal = 0   // counted as the receives are posted, below
        advertisedGranted = UInt64(configuration.receiveSlots)
        grantThreshold = UInt64(max(1, configuration.receiveSlots / 4))
        timedCallCountdown = configuration.timedCallInterval
        rendezvousReleasedFlags = Array(repeating: false, count: max(1, configuration.rendezvousSlots))
        inbound = FixedRing(capacity: configuration.receiveSlots + configuration.rendezvousSlots, filler: .empty)
        calls = CallTable(capacity: configuration.maxOutstandingCalls)
        callContinuations = Array(repeating: nil, count: configuration.maxOutstandingCalls)
        completions = .allocate(capacity: 64)
        completions.initialize(repeating: WorkCompletion())
        sendCompletionQueue = Unmanaged.passUnretained(queuePair.sendCompletionQueue)
        receiveCompletionQueue = Unmanaged.passUnretained(queuePair.receiveCompletionQueue)
        pendingSends.reserveCapacity(64)
        localHandshake = EndpointHandshake(
            receiveSlots: UInt16(configuration.receiveSlots), eagerLimit: UInt32(configuration.eagerLimit),
            controlBlock: RemoteMemory(address: memory.controlIn.region.address, rkey: memory.controlIn.region.rkey,
                                       length: UInt32(ControlBlock.size)),
            rendezvousRegion: memory.rendezvousIn.map {
                RemoteMemory(address: $0.region.address, rkey: $0.region.rkey,
                             length: UInt32(configuration.rendezvousSlots * configuration.rendezvousSlotSize))
            } ?? RemoteMemory(address: 0, rkey: 0, length: 0),
            rendezvousSlots: UInt16(configuration.rendezvousSlots),
            rendezvousSlotSize: configuration.rendezvousSlots > 0 ? UInt32(configuration.rendezvousSlotSize) : 0)
        do throws(EndpointError) {
            for slot in 0..<configuration.receiveSlots { try queueReceive(Int32(slot)) }
            try postQueuedReceives()
        } catch {
            memory.deregister()
            completions.deallocate()
            throw error
        }
    }

    deinit {
        driver?.stop()
        completions.deallocate()
    }

    /// Starts the connection with the peer's handshake. In `.async` mode a driver thread
    /// polls the completion queues; in `.poll` mode the caller's `poll()` does.
    public func start(peer: EndpointHandshake, mode: DrivingMode = .async) throws(EndpointError) {
        try peer.validate()
        try lock.locked { () throws(EndpointError) in
            guard case .created = phase else {
                throw .invalidConfiguration(field: "start", detail: "the endpoint was already started or closed")
            }
            self.peer = peer
            self.mode = mode
            eagerLimit = min(configuration.eagerLimit, Int(peer.eagerLimit))
            if peer.rendezvousSlots > 0 && configuration.rendezvousSlots > 0 {
                rendezvousSlotsOut = min(Int(peer.rendezvousSlots), configuration.rendezvousSlots)
                rendezvousSizeOut = min(Int(peer.rendezvousSlotSize), configuration.rendezvousSlotSize)
            }
            peerGranted = UInt64(peer.receiveSlots)
            lastActivityNanoseconds = monotonicNanoseconds()
            phase = .running
        }
        logger.debug("endpoint started", metadata: [
            "qpn": "\(queuePair.number)", "eager": "\(eagerLimit)", "credits": "\(peer.receiveSlots)",
            "rendezvous": "\(rendezvousSlotsOut)×\(rendezvousSizeOut)", "mode": "\(mode)"])
        if mode == .async { lock.locked { driver = EndpointDriver(endpoint: self) } }
    }

    /// In async mode, the driver thread as a task executor (nil before `start` and in poll
    /// mode). A task that prefers it is resumed on that thread right after the round that
    /// completed its call or receive, not handed to the global pool: one thread wake-up
    /// less per resumption. Its code then runs on the driver, which polls nothing
    /// meanwhile: keep it short and never block in it.
    ///
    /// ```swift
    /// let response = try await withTaskExecutorPreference(endpoint.taskExecutor) {
    ///     try await endpoint.call(request)
    /// }
    /// ```
    public var taskExecutor: (any TaskExecutor)? { lock.locked { driver } }

    /// What the endpoint asked of the device so far (work requests, completions polled).
    public var statistics: EndpointStatistics { lock.locked { counts } }

    /// The largest message `send` accepts toward this peer (after `start`).
    public var maxMessageSize: Int { lock.locked { max(eagerLimit, rendezvousSizeOut) } }

    /// The error that ended the connection, nil while it is usable.
    public var failure: EndpointError? {
        lock.locked {
            switch phase {
            case .failed(let error): error
            case .closed: .closed
            case .created, .running: nil
            }
        }
    }

    /// Closes the connection: tells the peer (a WRITE of the close reason into its control
    /// block, waited for briefly), fails every waiter with `.closed`, closes the queue pair
    /// and deregisters the pools. Messages still held stay readable until released.
    /// Idempotent.
    public func close(reason: UInt32 = normalCloseReason) {
        let wasRunning: Bool = lock.locked {
            if case .closed = phase { return false }
            let running: Bool
            if case .running = phase { running = true } else { running = false }
            if running {
                closeReasonToSend = max(reason, 1)
                flushControlLocked()
            }
            failLocked(.closed, log: false)
            phase = .closed
            return running
        }
        driver?.stop()   // kept: tasks may still prefer it as their executor (it forwards to the global one now)
        if wasRunning {
            // Let the close write leave before the QP goes away; bounded.
            let deadline = monotonicNanoseconds() + 200_000_000
            while monotonicNanoseconds() < deadline {
                let done: Bool = lock.locked {
                    drainSendCompletionsAfterClose()
                    if closeReasonToSend != 0 { flushControlLocked() }   // no room at first: try again
                    return closeReasonToSend == 0 && controlWritesCompleted == controlWritesPosted
                }
                if done { break }
            }
        }
        try? queuePair.close()
        memory.deregister()
        closeConnection()
        logger.debug("endpoint closed", metadata: ["qpn": "\(queuePair.number)"])
    }

    /// Opens a call in the table. The clock is read only for a deadline or a timed call
    /// (one in `timedCallInterval`).
    func newCallLocked(timeout: Duration?, state: CallTable.State) -> UInt64? {
        timedCallCountdown -= 1
        let timed = timedCallCountdown == 0
        if timed { timedCallCountdown = configuration.timedCallInterval }
        let now = timeout != nil || timed ? monotonicNanoseconds() : 0
        return calls.open(start: timed ? now : 0, deadline: deadline(now, timeout), state: state)
    }

    func deadline(_ now: UInt64, _ timeout: Duration?) -> UInt64 {
        guard let timeout else { return 0 }
        let (seconds, attoseconds) = timeout.components
        return now &+ UInt64(max(0, seconds)) &* 1_000_000_000 &+ UInt64(max(0, attoseconds / 1_000_000_000))
    }

    func requireRunningLocked() throws(EndpointError) {
        switch phase {
        case .running: return
        case .failed(let error): throw error
        case .closed: throw .closed
        case .created: throw .invalidConfiguration(field: "start", detail: "call start(peer:) first")
        }
    }
}

/// A pthread mutex: the endpoint's one lock (the poll-mode thread, the async driver and
/// tasks releasing messages meet here).
final class EndpointLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        // Error-checking: a thread that locks again (an `answerPolling` answer or a
        // `readingResponse` body calling its endpoint) gets EDEADLK, and a clear trap, instead
        // of hanging forever. Its fast path costs what the default type's does.
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ERRORCHECK))
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always)
    func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        if pthread_mutex_lock(mutex) != 0 {
            preconditionFailure("MessageEndpoint called from inside its own answerPolling answer or callPolling readingResponse body (they run under the endpoint's lock)")
        }
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// CLOCK_MONOTONIC in nanoseconds (no allocation, no Foundation).
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}
