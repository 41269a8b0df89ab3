#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import RoCEWire

/// A userspace RoCEv2 device: the engine's facade. It owns the wire, the registries of
/// memory regions and queue pairs, the counters and the lock every entry point takes.
///
/// The data path is split the way Linux rxe splits it, one file per role:
/// `Receive.swift` (parse, ICRC, address and key checks, dispatch), `Requester.swift`
/// (segmentation, go-back-N, UD sends), `Completer.swift` (ACK/NAK/RNR, READ and atomic
/// responses, timers, flush), `Responder.swift` (PSN checks, duplicates, READ replay,
/// atomics), `LocalMemory.swift` (key checks and the one copy routine), `Transmit.swift`
/// (headers → ICRC → wire). `Progress.swift` drives them: every `poll(_:into:)` runs one
/// round in the caller's thread; `startBackgroundProgress()` runs rounds on a thread.
///
/// Mutable state of the device, its queue pairs, rings and queues is only touched under the
/// device's lock, so the hot stored properties are `@exclusivity(unchecked)`: the dynamic
/// exclusivity checks (`swift_beginAccess`) were 12 % of the engine's instructions per message.
///
/// ```swift
/// let device = try SoftDevice(configuration: SoftDeviceConfiguration(address: "127.0.0.2", port: 4791))
/// ```
package final class SoftDevice: @unchecked Sendable {
    package let name: String
    package let address: SoftAddress
    package let port: UInt16
    /// The UDP port peers listen on.
    package let peerPort: UInt16
    package let configuration: SoftDeviceConfiguration
    let clock: EngineClock
    /// How received ICRCs are checked here: `.strict`, `.assumeZeroIdentification` or `.off`
    /// (what `.automatic` resolved to on this wire).
    package let icrcVerification: ICRCVerification
    @exclusivity(unchecked) var counters = SoftCounters()
    /// The DSCP/ECN bits of every packet but CNPs (`configuration.congestion`).
    let dataTrafficClass: TrafficClass
    /// True when received packets' ECN bits are looked at (the notification point is on).
    let readsECN: Bool
    let lock: UnsafeMutablePointer<pthread_mutex_t>

    /// The socket (or in-memory) wire — wrapped in a `CapturingWire` when capturing — and
    /// what is sent through: itself, or a fault injector around it while faults are
    /// configured (so a capture shows what really left: no drops, corruptions visible).
    let baseWire: any Wire
    /// `baseWire` or `faultWire`, whichever owns it: unowned(unsafe), because a strong
    /// existential `var` is retained and released around every call through it — four pairs of
    /// atomic operations in each empty poll (callgrind, softroce-bench).
    @exclusivity(unchecked) unowned(unsafe) var wire: any Wire
    /// The fault injector around `baseWire` while faults are configured (`wire` then points here).
    var faultWire: FaultInjectingWire?
    /// Injections of fault wires that were replaced (`setFaults`), so counters never go back.
    var retiredFaultTally = FaultInjectingWire.Tally()

    static let maxPacket = 4096 + 512
    /// Where the requester, completer and responder build the packet being sent.
    let sendBuffer: UnsafeMutableRawPointer
    let batch: ReceiveBatch

    @exclusivity(unchecked) var regions: [UInt32: SoftMemoryRegion] = [:]
    /// The region the last key lookup found (`region(keyed:)`).
    @exclusivity(unchecked) var lastRegionLookup = LastLookup<SoftMemoryRegion>()
    @exclusivity(unchecked) var queuePairs: [UInt32: SoftQueuePair] = [:]
    /// The QP the last received packet was for (`queuePair(numbered:)`).
    @exclusivity(unchecked) var lastQueuePairLookup = LastLookup<SoftQueuePair>()
    @exclusivity(unchecked) var queuePairList: ContiguousArray<SoftQueuePair> = []
    /// The QPs with sends outstanding: the only ones a progress round visits, so a device
    /// with 1,000 idle QPs polls as fast as one with a single QP.
    @exclusivity(unchecked) var activeQueuePairs: ContiguousArray<SoftQueuePair> = []
    /// QPs whose responder owes an ACK, sent once after the receive batch that earned it.
    @exclusivity(unchecked) var acknowledgementsDue: ContiguousArray<SoftQueuePair> = []
    /// When a poll first deferred the ACKs now due (0: none deferred). See `AcknowledgementFlush.swift`.
    @exclusivity(unchecked) var acknowledgementsDeferredSince: UInt64 = 0
    @exclusivity(unchecked) var flusherAwake = false
    var flusherIdleTicks = 0
    /// Polls and posts so far, and their number at the flusher's last look (`AcknowledgementFlush.swift`).
    @exclusivity(unchecked) var engineEntries: UInt64 = 0
    var flusherSeenEntries: UInt64 = 0
    let acknowledgementFlusher = AcknowledgementFlusher()
    var nextDomain: UInt32 = 1
    var nextKeyIndex: UInt32 = 1
    var nextQueuePairNumber: UInt32 = 0x11
    @exclusivity(unchecked) var closed = false

    /// The IB connection manager's state (QP 1), once a `SoftConnectionManager` was opened.
    @exclusivity(unchecked) var connectionManagement: ConnectionManagerCore?

    var progressThread: pthread_t?
    var progressStop = false

    /// Packets in flight per QP before the requester waits for acknowledgements: 1 MiB at MTU
    /// 4096, more than one ACK round trip of a receiver whose thread sleeps in `poll(2)` between
    /// bursts (with 64 the sender sat idle for much of each round trip). Go-back-N resends at
    /// most this many after a loss; the device's byte budget below bounds many QPs together.
    package static let window = 256
    /// Packets in flight beyond which no READ request is sent: at most 4 of its 16-packet
    /// requests, well inside the responder's replay memory (`ReadRequestCache`, 16 requests).
    package static let readWindow = 64
    /// Data in flight across all QPs of the device (see `transmit(_:now:)`): half of the
    /// 8 MB receive buffer each engine asks for, since the kernel charges a datagram about
    /// twice its payload.
    package static let inFlightByteBudget = 4 << 20
    /// The device's estimate of data in flight, and where the next progress round starts.
    @exclusivity(unchecked) var inFlightBytes = 0
    @exclusivity(unchecked) var roundStart = 0
    /// An AckReq every this many packets of a long message (and on the last one when its ACK
    /// is wanted: `asksForAcknowledgement`).
    static let ackRequestInterval = 16
    /// How long packets that asked for no ACK may wait, with nothing sent after them, before
    /// the tail probe asks (`probeUnrequestedTail`): far above a ping-pong's round trip, far
    /// below a retransmit timeout (timeout 14 is 67 ms).
    static let acknowledgementProbeDelay: UInt64 = 500_000
    /// Response packets one READ request asks for (a longer READ is several requests).
    static let readChunkPackets = 16

    /// Opens a device on a UDP socket bound to the configuration's address and port.
    package convenience init(configuration: SoftDeviceConfiguration) throws(SoftRoCEError) {
        guard let address = SoftAddress(configuration.address) else {
            throw SoftRoCEError("SoftDevice(\(configuration.address))", errno: EINVAL, "not an IPv4 or IPv6 address")
        }
        if let problem = configuration.congestion.problems.first {
            throw SoftRoCEError("SoftDevice(\(configuration.address))", errno: EINVAL, "congestion.\(problem.field) \(problem.problem)")
        }
        let rawReceive: UDPWire.RawReceive = switch configuration.icrc {
        case .strict: .required
        case .automatic: .ifPermitted
        case .assumeZeroIdentification, .off: .never
        }
        var wire: any Wire = try UDPWire(address: address, port: configuration.port, rawReceive: rawReceive,
                                         trafficClass: configuration.congestion.dataTrafficClass,
                                         readsTrafficClass: configuration.congestion.readsECN,
                                         segmentationOffload: configuration.segmentationOffload)
        if let capture = configuration.capture {
            do { wire = try CapturingWire(wrapping: wire, capture: capture) } catch { wire.close(); throw error }
        }
        self.init(wire: wire, configuration: configuration)
    }

    /// Opens a device on any wire (tests: an `InMemoryWire` and a `ManualClock`).
    /// The congestion configuration must have no `problems` (the other initializer refuses them).
    package init(wire: any Wire, configuration: SoftDeviceConfiguration = SoftDeviceConfiguration(), clock: EngineClock = .monotonic) {
        precondition(configuration.congestion.problems.isEmpty, "congestion: \(configuration.congestion.problems)")
        self.configuration = configuration
        dataTrafficClass = configuration.congestion.dataTrafficClass
        readsECN = configuration.congestion.readsECN
        self.clock = clock
        icrcVerification = configuration.icrc == .off ? .off : wire.deliversRealHeaders ? .strict : .assumeZeroIdentification
        baseWire = wire
        self.wire = wire
        address = wire.local.address
        port = wire.local.port
        peerPort = configuration.peerPort ?? (configuration.port == 0 ? wire.local.port : configuration.port)
        name = configuration.name ?? "soft_\(address)_\(port)"
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        sendBuffer = .allocate(byteCount: Self.maxPacket, alignment: 64)
        batch = ReceiveBatch(capacity: 64)
        queuePairList.reserveCapacity(64)
        activeQueuePairs.reserveCapacity(64)
        acknowledgementsDue.reserveCapacity(64)
        installFaults(configuration.faults)
    }

    deinit {
        close()
        pthread_mutex_destroy(lock)
        lock.deallocate()
        sendBuffer.deallocate()
    }

    /// The RoCEv2 GID: the IPv4-mapped address, or the IPv6 address.
    package var gid: [UInt8] { address.gid }

    @inline(__always) func locked<T>(_ body: () throws(SoftRoCEError) -> T) throws(SoftRoCEError) -> T {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body()
    }

    @inline(__always) func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return body()
    }

    /// A snapshot of the counters.
    package func snapshotCounters() -> SoftCounters {
        locked {
            var snapshot = counters
            var tally = retiredFaultTally
            if let faultWire { tally.add(faultWire.tally) }
            snapshot.injectedDrops = tally.drops
            snapshot.injectedDuplicates = tally.duplicates
            snapshot.injectedReorders = tally.reorders
            snapshot.injectedCorruptions = tally.corruptions
            snapshot.injectedDelays = tally.delays
            snapshot.captureDropped = (baseWire as? CapturingWire)?.droppedRecords ?? 0
            snapshot.superDatagramsSent = baseWire.superDatagramsSent
            snapshot.sendSystemCalls = baseWire.sendSystemCalls
            snapshot.queuePairRates = queuePairRates(at: clock.now())
            return snapshot
        }
    }

    package var isClosed: Bool { locked { closed } }

    /// Changes fault injection (tests, `--faults`). Held-back datagrams of the previous
    /// injector are released first.
    package func setFaults(_ faults: SoftFaultInjection) {
        locked { installFaults(faults) }
    }

    private func installFaults(_ faults: SoftFaultInjection) {
        if let previous = faultWire {
            previous.service(now: .max)
            retiredFaultTally.add(previous.tally)
        }
        faultWire = faults.isActive ? FaultInjectingWire(wrapping: baseWire, faults: faults, clock: clock) : nil
        wire = faultWire ?? baseWire
    }

    /// Closes the wire and stops background progress. Idempotent.
    package func close() {
        stopBackgroundProgress()
        acknowledgementFlusher.stop()
        locked {
            guard !closed else { return }
            closed = true
            connectionManagement?.close()
            wire.close()
            lastQueuePairLookup.forgetAll()
            queuePairs.removeAll()
            queuePairList.removeAll()
            activeQueuePairs.removeAll()
            acknowledgementsDue.removeAll()
            acknowledgementsDeferredSince = 0
            lastRegionLookup.forgetAll()
            regions.removeAll()
        }
    }

    // MARK: - Control path

    package func allocateProtectionDomain() -> UInt32 {
        locked {
            nextDomain += 1
            return nextDomain - 1
        }
    }

    /// Releases a protection domain number. Refused with EBUSY while a memory region or
    /// queue pair of the domain is still registered, as `ibv_dealloc_pd` refuses.
    package func deallocateProtectionDomain(_ domain: UInt32) throws(SoftRoCEError) {
        try locked { () throws(SoftRoCEError) in
            if regions.values.contains(where: { $0.domain == domain }) || queuePairList.contains(where: { $0.domain == domain }) {
                throw SoftRoCEError("deallocate PD", errno: EBUSY, "the protection domain still has memory regions or queue pairs")
            }
        }
    }

    package func registerMemory(domain: UInt32, bytes: UnsafeMutableRawBufferPointer, access: SoftAccess) throws(SoftRoCEError) -> SoftMemoryRegion {
        try locked { () throws(SoftRoCEError) in
            guard let base = bytes.baseAddress, bytes.count > 0 else {
                throw SoftRoCEError("register memory", errno: EINVAL, "empty buffer")
            }
            if !access.isDisjoint(with: [.remoteWrite, .remoteAtomic]) && !access.contains(.localWrite) {
                throw SoftRoCEError("register memory", errno: EINVAL, "remote write or atomic access needs local write")
            }
            // Keys: index << 12 | 0x5A5, so a key off by a few bits names no region.
            let key = nextKeyIndex << 12 | 0x5A5
            nextKeyIndex += 1
            let region = SoftMemoryRegion(domain: domain, base: UInt64(UInt(bitPattern: base)), length: bytes.count, access: access, key: key)
            regions[key] = region
            return region
        }
    }

    package func deregister(_ region: SoftMemoryRegion) {
        locked {
            region.valid = false
            lastRegionLookup.forget(region)
            regions[region.key] = nil
        }
    }

    package func createCompletionChannel() throws(SoftRoCEError) -> SoftCompletionChannel {
        try SoftCompletionChannel()
    }

    /// The channel's pending events go with it: each holds its queue, which holds the channel
    /// (a cycle that leaked both when a queue's last event was never waited for). Closed under
    /// the lock the engine signals under, so no event is written into a freed descriptor.
    package func destroyCompletionChannel(_ channel: SoftCompletionChannel) {
        locked {
            channel.pending.removeAll()
            channel.closeDescriptors()
        }
    }

    package func createCompletionQueue(capacity: Int, channel: SoftCompletionChannel?) -> SoftCompletionQueue {
        SoftCompletionQueue(capacity: capacity, channel: channel)
    }

    package func destroyCompletionQueue(_ queue: SoftCompletionQueue) {
        locked {
            queue.valid = false
            queue.channel?.pending.removeAll { $0 === queue }
        }
    }

    package func createSharedReceiveQueue(domain: UInt32, capacity: Int, maxScatterGather: Int) -> SoftSharedReceiveQueue {
        SoftSharedReceiveQueue(domain: domain, capacity: capacity, maxScatterGather: maxScatterGather)
    }

    package func createQueuePair(domain: UInt32, type: SoftQueuePairType, sendQueue: SoftCompletionQueue,
                                 receiveQueue: SoftCompletionQueue, sharedReceiveQueue: SoftSharedReceiveQueue?,
                                 signalAll: Bool, sendCapacity: Int, receiveCapacity: Int,
                                 maxScatterGather: Int, maxInline: Int) throws(SoftRoCEError) -> SoftQueuePair {
        try locked { () throws(SoftRoCEError) in
            guard !closed else { throw SoftRoCEError("create QP", errno: ENODEV, "the device is closed") }
            var number = nextQueuePairNumber
            // Never hand out a number still in use after the counter wrapped.
            var tries = 0
            while queuePairs[number] != nil {
                number = number >= 0xFF_FFF0 ? 0x11 : number + 1
                tries += 1
                guard tries < 0xFF_FFE0 else { throw SoftRoCEError("create QP", errno: ENOMEM, "every QP number is in use") }
            }
            nextQueuePairNumber = number >= 0xFF_FFF0 ? 0x11 : number + 1
            let qp = SoftQueuePair(number: QueuePairNumber(exactly: number)!, type: type, domain: domain, sendQueue: sendQueue,
                                   receiveQueue: receiveQueue, sharedReceiveQueue: sharedReceiveQueue, signalAll: signalAll,
                                   sendCapacity: sendCapacity, receiveCapacity: receiveCapacity,
                                   maxScatterGather: maxScatterGather, maxInline: maxInline)
            if type == .reliableConnected { qp.pacer = newPacer() }
            // A UD QP is given no path MTU: its datagrams may be as large as the port's
            // active MTU (4096, what `SoftTranslate.portAttributes` reports), as on rxe.
            if type == .unreliableDatagram { qp.mtu = 4096 }
            queuePairs[number] = qp
            queuePairList.append(qp)
            return qp
        }
    }

    package func destroyQueuePair(_ qp: SoftQueuePair) {
        locked {
            lastQueuePairLookup.forget(qp)
            queuePairs[qp.number] = nil
            queuePairList.removeAll { $0 === qp }
            deactivate(qp)
            acknowledgementsDue.removeAll { $0 === qp }
            qp.state = .reset
        }
    }

    package func state(of qp: SoftQueuePair) -> SoftQueuePairState {
        locked { qp.state }
    }

    /// Applies a (validated) modification.
    package func modify(_ qp: SoftQueuePair, _ attributes: SoftQueuePairAttributes) throws(SoftRoCEError) {
        try locked { () throws(SoftRoCEError) in try modifyLocked(qp, attributes) }
    }

    /// `modify` for callers already under the lock (the connection manager).
    func modifyLocked(_ qp: SoftQueuePair, _ attributes: SoftQueuePairAttributes) throws(SoftRoCEError) {
        if let mtu = attributes.pathMTU {
            guard [256, 512, 1024, 2048, 4096].contains(mtu) else { throw SoftRoCEError("modify QP", errno: EINVAL, "path MTU \(mtu)") }
            qp.mtu = mtu
        }
        if let access = attributes.access { qp.access = access }
        if let qkey = attributes.qkey { qp.qkey = qkey }
        if let destination = attributes.destination { qp.peer = WireEndpoint(destination, port: peerPort) }
        if let number = attributes.destinationQueuePairNumber {
            qp.destinationQueuePair = QueuePairNumber(exactly: number & QueuePairNumber.mask)!
        }
        if let psn = attributes.receivePSN { qp.responder.expectedPSN = PacketSequenceNumber(truncating: psn) }
        if let timer = attributes.minRNRTimer { qp.minRNRTimer = timer }
        if let psn = attributes.sendPSN { startSending(qp, at: PacketSequenceNumber(truncating: psn)) }
        if let timeout = attributes.timeout { qp.timeoutCode = timeout }
        if let retry = attributes.retryCount { qp.retryCount = retry; qp.completer.retriesLeft = Int(retry) }
        if let rnr = attributes.rnrRetry { qp.rnrRetry = rnr; qp.completer.rnrRetriesLeft = Int(rnr) }
        switch attributes.state {
        case .reset: reset(qp)
        case .error: if qp.state != .error { enterError(qp) }
        default: qp.state = attributes.state
        }
    }

    private func reset(_ qp: SoftQueuePair) {
        qp.state = .reset
        qp.sendQueue.head = 0
        qp.sendQueue.tail = 0
        qp.requester = RequesterState()
        qp.completer = CompleterState()
        if let ring = qp.responder.activeReceive?.ring { ring.release() }
        qp.responder = ResponderState()
        if let pacer = qp.pacer { qp.pacer = RatePacer(parameters: pacer.reactionPoint.parameters, lineRateBitsPerSecond: pacer.reactionPoint.lineRateBitsPerSecond) }
        qp.notificationPoint = nil
        qp.receiveRing.removeAll()
        deactivate(qp)
        acknowledgementsDue.removeAll { $0 === qp }
    }

    /// Puts `qp` on the list progress rounds visit (it has sends outstanding).
    func activate(_ qp: SoftQueuePair) {
        guard !qp.isActive else { return }
        qp.isActive = true
        activeQueuePairs.append(qp)
    }

    func deactivate(_ qp: SoftQueuePair) {
        guard qp.isActive else { return }
        qp.isActive = false
        activeQueuePairs.removeAll { $0 === qp }
    }
}

extension SoftDevice {
    /// The reaction point a new RC QP starts with: the device's, if configured.
    fileprivate func newPacer() -> RatePacer? {
        configuration.congestion.reactionPoint.map { RatePacer(parameters: $0, lineRateBitsPerSecond: configuration.congestion.lineRateBitsPerSecond) }
    }
}

extension FaultInjectingWire.Tally {
    mutating func add(_ other: Self) {
        drops += other.drops
        duplicates += other.duplicates
        reorders += other.reorders
        corruptions += other.corruptions
        delays += other.delays
    }
}
