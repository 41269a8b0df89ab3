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

    // MARK: poll mode

    /// Runs one round: drains the completion queues (driving the soft engine), applies the
    /// peer's credits, posts credit grants that are due. Returns how many completions it
    /// handled. Throws the connection's error once it failed.
    ///
    /// With `rounds` > 1, runs up to that many rounds under one lock, stopping after the
    /// first that handled a completion: a poll loop's empty rounds then pay one lock
    /// (two atomic operations) per `rounds` instead of one each. Another thread using the
    /// endpoint meanwhile (releasing a message, reading `statistics`) waits for them.
    ///
    /// ```swift
    /// var emptyRounds = 0
    /// while running {
    ///     let rounds = MessageEndpoint.emptyRoundsPerLock
    ///     if try endpoint.poll(rounds: rounds) == 0 { MessageEndpoint.idle(&emptyRounds, rounds: rounds); continue }
    ///     while let request = try endpoint.tryReceive() { answer(request) }
    /// }
    /// ```
    @discardableResult
    public func poll(rounds: Int = 1) throws(EndpointError) -> Int {
        try lock.locked { () throws(EndpointError) -> Int in
            let handled = progressLocked(rounds: rounds)
            if case .failed(let error) = phase, inbound.isEmpty { throw error }
            if case .closed = phase { throw .closed }
            return handled
        }
    }

    /// Rounds a poll-mode caller runs under one lock while nothing happens (`callPolling`;
    /// `poll(rounds:)` for loops of your own): a lock and unlock took 60-80 ns in the lab's
    /// emulated VM (7 ns on the host), per round on both sides of every call.
    public static let emptyRoundsPerLock = 32

    /// Up to `rounds` rounds, until one handles a completion or the connection stops running.
    func progressLocked(rounds: Int) -> Int {
        var handled = progressLocked()
        var done = 1
        while handled == 0, done < rounds, isRunningLocked {
            handled = progressLocked()
            done += 1
        }
        return handled
    }

    var isRunningLocked: Bool {
        if case .running = phase { return true }
        return false
    }

    /// Sends a one-way message if a credit and a buffer are free now; false otherwise
    /// (poll, then try again). Messages arrive in the order they were sent.
    public func trySend(_ bytes: UnsafeRawBufferPointer) throws(EndpointError) -> Bool {
        try lock.locked { () throws(EndpointError) in
            try sendLocked(kind: .message, callID: 0, length: bytes.count) { $0.copyMemory(from: bytes) }
        }
    }

    /// Zero-copy send: `fill` writes the payload straight into the registered send
    /// buffer (`length` bytes). False when no credit or buffer is free now.
    public func trySend(length: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) throws(EndpointError) -> Bool {
        try lock.locked { () throws(EndpointError) in
            try sendLocked(kind: .message, callID: 0, length: length, fill: fill)
        }
    }

    /// Sends a request and returns its call ID, or nil when no credit, buffer or call slot
    /// is free now. Collect the response with `takeResponse(_:)`.
    public func trySendRequest(_ bytes: UnsafeRawBufferPointer, timeout: Duration? = nil) throws(EndpointError) -> UInt64? {
        try lock.locked { () throws(EndpointError) -> UInt64? in
            try requireRunningLocked()
            guard let id = newCallLocked(timeout: timeout, state: .waiting) else { return nil }
            if try sendLocked(kind: .request, callID: id, length: bytes.count, fill: { $0.copyMemory(from: bytes) }) {
                return id
            }
            calls.free(calls.index(id))
            return nil
        }
    }

    /// The response to call `id` if it arrived, nil if not yet. Throws when the call
    /// timed out (checked against its deadline here) or the connection failed.
    public func takeResponse(_ id: UInt64) throws(EndpointError) -> ReceivedMessage? {
        let entry: InboundEntry? = try lock.locked { () throws(EndpointError) -> InboundEntry? in try takeResponseLocked(id) }
        guard let entry else { return nil }
        return ReceivedMessage(endpoint: self, entry: entry)
    }

    func takeResponseLocked(_ id: UInt64) throws(EndpointError) -> InboundEntry? {
        guard let slot = calls.outstanding(id) else {
            throw .invalidConfiguration(field: "callID", detail: "call \(id) is not outstanding")
        }
        let call = calls[slot]
        if call.state == .completed {
            calls.free(slot)
            return call.response
        }
        if case .failed(let error) = phase { calls.free(slot); throw error }
        if case .closed = phase { calls.free(slot); throw .closed }
        if call.deadlineNanoseconds != 0 && monotonicNanoseconds() >= call.deadlineNanoseconds {
            calls[slot].state = .abandoned
            throw .timedOut
        }
        return nil
    }

    /// Gives up on call `id`: its response, if it ever comes, is released on arrival.
    public func abandonCall(_ id: UInt64) {
        lock.locked {
            guard let slot = calls.outstanding(id) else { return }
            if calls[slot].state == .completed {
                let response = calls[slot].response
                calls.free(slot)
                releaseLocked(response.location)
            } else {
                calls[slot].state = .abandoned
            }
        }
    }

    /// Sends the response to call `callID` (a request's `callID`) if a credit and a buffer
    /// are free now; false otherwise.
    public func trySendResponse(to callID: UInt64, _ bytes: UnsafeRawBufferPointer) throws(EndpointError) -> Bool {
        try lock.locked { () throws(EndpointError) in
            try sendLocked(kind: .response, callID: callID, length: bytes.count) { $0.copyMemory(from: bytes) }
        }
    }

    /// The next one-way message or request, in arrival order; nil when none is waiting.
    public func tryReceive() throws(EndpointError) -> ReceivedMessage? {
        let entry: InboundEntry? = try lock.locked { () throws(EndpointError) -> InboundEntry? in
            if let entry = inbound.popFirst() { return entry }
            if case .failed(let error) = phase { throw error }
            if case .closed = phase { throw .closed }
            return nil
        }
        guard let entry else { return nil }
        return ReceivedMessage(endpoint: self, entry: entry)
    }

    /// Run-to-completion call: sends `bytes` as a request and polls until its response
    /// arrives, in the caller's thread. Allocates nothing. After every 256 empty rounds it
    /// yields the CPU (`sched_yield`), as rdma-pingpong does: kernel rxe's deferred work
    /// (ksoftirqd) on this CPU then runs at once, not at the next scheduler tick — 4 ms at
    /// HZ=250, which a spinning caller made the p50 of whole runs in the lab VM.
    public func callPolling(_ bytes: UnsafeRawBufferPointer, timeout: Duration? = nil) throws(EndpointError) -> ReceivedMessage {
        let id = try sendRequestPolling(bytes, timeout: timeout)
        let entry = try waitForResponsePolling(id, timeout: timeout) { $0 }
        return ReceivedMessage(endpoint: self, entry: entry)
    }

    /// `callPolling` that hands the response to `read` in place and gives its buffer back
    /// in the same lock: no `ReceivedMessage`, one lock less per call. `read` runs under the
    /// endpoint's lock — calling the endpoint from it traps — and must not keep the pointer.
    ///
    /// ```swift
    /// let value = try endpoint.callPolling(request) { response in response.load(as: UInt64.self) }
    /// ```
    @inlinable
    public func callPolling<Result>(_ bytes: UnsafeRawBufferPointer, timeout: Duration? = nil,
                                    readingResponse read: (UnsafeRawBufferPointer) -> Result) throws(EndpointError) -> Result {
        // Generic only here, inlined into the caller: an unspecialised generic path would look
        // up the result's type metadata on every call.
        var result: Result?
        try callPollingInPlace(bytes, timeout: timeout) { result = read($0) }
        return result!
    }

    @usableFromInline
    func callPollingInPlace(_ bytes: UnsafeRawBufferPointer, timeout: Duration?,
                            _ read: (UnsafeRawBufferPointer) -> Void) throws(EndpointError) {
        let id = try sendRequestPolling(bytes, timeout: timeout)
        try waitForResponsePolling(id, timeout: timeout) { entry in
            read(UnsafeRawBufferPointer(start: payloadAddress(entry.location), count: entry.length))
            releaseLocked(entry.location)
        }
    }

    /// Sends the request of a poll-mode call, polling while no credit, buffer or call slot is free.
    private func sendRequestPolling(_ bytes: UnsafeRawBufferPointer, timeout: Duration?) throws(EndpointError) -> UInt64 {
        var emptyRounds = 0
        while true {
            if let id = try trySendRequest(bytes, timeout: timeout) { return id }
            if try poll() == 0 { MessageEndpoint.idle(&emptyRounds) }
        }
    }

    /// Polls until call `id`'s response arrived, then hands its entry to `take` under the lock.
    /// One lock per round that handled something (up to `emptyRoundsPerLock` empty ones
    /// before it), the rounds and the look at the call together. A round that handled
    /// nothing cannot have completed the call; only a deadline or a failure needs the look
    /// then.
    private func waitForResponsePolling<Result>(_ id: UInt64, timeout: Duration?,
                                                _ take: (InboundEntry) -> Result) throws(EndpointError) -> Result {
        var emptyRounds = 0
        let untimed = timeout == nil
        let rounds = untimed ? Self.emptyRoundsPerLock : 1
        while true {
            let (handled, result) = try lock.locked { () throws(EndpointError) -> (Int, Result?) in
                let handled = progressLocked(rounds: rounds)
                if handled == 0, untimed, isRunningLocked { return (0, nil) }
                guard let entry = try takeResponseLocked(id) else { return (handled, nil) }
                return (handled, take(entry))
            }
            if let result { return result }
            if handled == 0 { MessageEndpoint.idle(&emptyRounds, rounds: rounds) }
        }
    }

    /// Run-to-completion serving: one `poll(rounds:)`, then the requests waiting at the head
    /// of the queue are answered in place — `answer` reads a request's payload and writes
    /// the response's straight into a registered send buffer (up to the eager limit; it
    /// returns the length), the SEND goes out and the request's buffer goes back, all under
    /// one lock, with no `ReceivedMessage` and no copy. eRPC's dispatch-thread handlers are
    /// the model. Returns the completions handled, as `poll(rounds:)` does (0: idle).
    ///
    /// It stops at a one-way message, left for `tryReceive` so that arrival order holds,
    /// and when no credit or send buffer is free (the request waits for the next call).
    /// `answer` runs under the endpoint's lock: calling the endpoint from it traps. For a
    /// response above the eager limit, use `tryReceive` and `trySendResponse`.
    ///
    /// ```swift
    /// var emptyRounds = 0
    /// while running {
    ///     let rounds = MessageEndpoint.emptyRoundsPerLock
    ///     let handled = try endpoint.answerPolling(rounds: rounds) { request, response in
    ///         response.copyMemory(from: request)     // an echo
    ///         return request.count
    ///     }
    ///     if handled == 0 { MessageEndpoint.idle(&emptyRounds, rounds: rounds) }
    /// }
    /// ```
    @discardableResult
    public func answerPolling(rounds: Int = 1,
                              _ answer: (_ request: UnsafeRawBufferPointer, _ response: UnsafeMutableRawBufferPointer) -> Int) throws(EndpointError) -> Int {
        try lock.locked { () throws(EndpointError) -> Int in
            let handled = progressLocked(rounds: rounds)
            if case .failed(let error) = phase, inbound.isEmpty { throw error }
            if case .closed = phase { throw .closed }
            while isRunningLocked, let entry = inbound.first, entry.kind == .request {
                guard canSendEagerLocked else {
                    metrics.creditStalls.increment()
                    break
                }
                _ = inbound.popFirst()
                let slot = sendSlots.take()!
                let room = UnsafeMutableRawBufferPointer(start: memory.send.base + Int(slot) * memory.slotStride + MessageHeader.size,
                                                         count: eagerLimit)
                let length = answer(UnsafeRawBufferPointer(start: payloadAddress(entry.location), count: entry.length), room)
                precondition((0...eagerLimit).contains(length),
                             "answerPolling: the answer's length \(length) is outside 0...\(eagerLimit) (the eager limit)")
                let header = MessageHeader(kind: .response, isRendezvous: false, rendezvousSlot: 0, payloadLength: UInt32(length),
                                           callID: entry.callID, granted: grantedTotal, released: releasedTotal)
                do throws(EndpointError) {
                    try postMessageLocked(slot: slot, header: header, length: length)
                } catch {
                    releaseLocked(entry.location)
                    throw error
                }
                releaseLocked(entry.location)
            }
            return handled
        }
    }

    /// For a poll loop's empty round (or `rounds` of them, after `poll(rounds:)`): counts
    /// them, and every 256th yields the CPU (`sched_yield`), so that kernel work deferred
    /// to this CPU runs now rather than at the next scheduler tick (see `callPolling`).
    /// Poll loops of your own can call it.
    ///
    /// ```swift
    /// var emptyRounds = 0
    /// while running {
    ///     if try endpoint.poll() == 0 { MessageEndpoint.idle(&emptyRounds) }
    ///     while let request = try endpoint.tryReceive() { answer(request) }
    /// }
    /// ```
    @inline(__always)
    public static func idle(_ emptyRounds: inout Int, rounds: Int = 1) {
        let before = emptyRounds
        emptyRounds &+= rounds
        if before >> 8 != emptyRounds >> 8 { sched_yield() }
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
