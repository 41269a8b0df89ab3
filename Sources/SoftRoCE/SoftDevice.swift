#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import RoCEWire

/// A userspace RoCEv2 device: one UDP socket bound to `address:port`, speaking RC and UD.
///
/// Progress: every `poll(_:into:)` drives the engine in the caller's thread (receive a
/// bounded batch of datagrams, run timers, transmit) — busy polling has the lowest latency.
/// For event-driven users, `startBackgroundProgress()` runs the same loop on a thread that
/// sleeps in `poll(2)` on the socket; completion channels are then signalled without the
/// user polling. Every entry point takes the device's lock.
///
/// ```swift
/// let device = try SoftDevice(configuration: SoftDeviceConfiguration(address: "127.0.0.2", port: 4791))
/// ```
public final class SoftDevice: @unchecked Sendable {
    public let name: String
    public let address: SoftAddress
    public let port: UInt16
    public let peerPort: UInt16
    public let configuration: SoftDeviceConfiguration
    public internal(set) var counters = SoftCounters()
    let socket: Int32
    let lock: UnsafeMutablePointer<pthread_mutex_t>

    static let maxPacket = 4096 + 128
    let sendBuffer: UnsafeMutableRawPointer
    let receiveBuffer: UnsafeMutableRawPointer
    var regions: [UInt32: SoftMemoryRegion] = [:]
    var queuePairs: [UInt32: SoftQueuePair] = [:]
    var queuePairList: ContiguousArray<SoftQueuePair> = []
    var nextDomain: UInt32 = 1
    var nextKeyIndex: UInt32 = 1
    var nextQueuePairNumber: UInt32 = 0x11
    var closed = false

    // Fault injection: xorshift state and held-back packets.
    var faults: SoftFaultInjection
    var random: UInt64
    static let delaySlots = 32
    let delayBuffers: UnsafeMutableRawPointer
    var delayLength = [Int](repeating: 0, count: SoftDevice.delaySlots)
    var delayRelease = [UInt64](repeating: 0, count: SoftDevice.delaySlots)
    var delayAddress = [SoftAddress](repeating: .ipv4(0), count: SoftDevice.delaySlots)
    var delayPort = [UInt16](repeating: 0, count: SoftDevice.delaySlots)
    var delayedCount = 0

    // Background progress.
    var progressThread: pthread_t?
    var progressStop = false

    /// Packets in flight per QP before the requester waits for ACKs.
    public static let window: UInt32 = 64
    /// An AckReq every this many packets of a long message (and on every last packet).
    static let ackRequestInterval = 16
    /// Response packets one READ request asks for (a longer READ is several requests).
    static let readChunkPackets = 16

    /// Opens the device: binds a non-blocking UDP socket to the address and port.
    public init(configuration: SoftDeviceConfiguration) throws(SoftRoCEError) {
        guard let address = SoftAddress(configuration.address) else {
            throw SoftRoCEError("SoftDevice(\(configuration.address))", errno: EINVAL, "not an IPv4 or IPv6 address")
        }
        self.configuration = configuration
        self.address = address
        faults = configuration.faults
        random = configuration.faults.seed == 0 ? 0x9E37_79B9_7F4A_7C15 : configuration.faults.seed
        let family: Int32
        switch address {
        case .ipv4: family = AF_INET
        case .ipv6: family = AF_INET6
        }
        let fd = Glibc.socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SoftRoCEError("socket", errno: errno, "cannot create a UDP socket") }
        var size: Int32 = 8 << 20
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, 4) != 0 { _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, 4) }
        if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, 4) != 0 { _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, 4) }
        var result: Int32
        switch address {
        case .ipv4(let value):
            var discover = Int32(IP_PMTUDISC_DO)
            _ = setsockopt(fd, Int32(IPPROTO_IP), IP_MTU_DISCOVER, &discover, 4)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = configuration.port.bigEndian
            sa.sin_addr.s_addr = value.bigEndian
            result = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        case .ipv6(let high, let low):
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = configuration.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { bytes in
                for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i))) }
                for i in 0..<8 { bytes[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i))) }
            }
            result = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        }
        guard result == 0 else {
            let code = errno
            _ = Glibc.close(fd)
            throw SoftRoCEError("bind \(address) port \(configuration.port)", errno: code,
                                code == EADDRINUSE ? "the UDP port is taken (kernel rxe binds 4791 in its namespace): pick another port or address"
                                : "cannot bind the address: it must be assigned to a local interface (127.0.0.0/8 always is)")
        }
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let boundPort = withUnsafeBytes(of: &bound) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
        socket = fd
        port = boundPort
        peerPort = configuration.peerPort ?? (configuration.port == 0 ? boundPort : configuration.port)
        name = configuration.name ?? "soft_\(address)_\(boundPort)"
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        sendBuffer = .allocate(byteCount: Self.maxPacket, alignment: 16)
        receiveBuffer = .allocate(byteCount: 65536, alignment: 16)
        delayBuffers = .allocate(byteCount: Self.maxPacket * Self.delaySlots, alignment: 16)
        queuePairList.reserveCapacity(64)
    }

    deinit {
        close()
        pthread_mutex_destroy(lock)
        lock.deallocate()
        sendBuffer.deallocate()
        receiveBuffer.deallocate()
        delayBuffers.deallocate()
    }

    /// The RoCEv2 GID: the IPv4-mapped address, or the IPv6 address.
    public var gid: [UInt8] { address.gid }

    @inline(__always) func locked<T>(_ body: () throws(SoftRoCEError) -> T) throws(SoftRoCEError) -> T {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body()
    }

    /// A snapshot of the counters.
    public func snapshotCounters() -> SoftCounters {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return counters
    }

    /// True after `close()`.
    public var isClosed: Bool {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return closed
    }

    /// Changes fault injection (tests).
    public func setFaults(_ faults: SoftFaultInjection) {
        pthread_mutex_lock(lock)
        self.faults = faults
        random = faults.seed == 0 ? 0x9E37_79B9_7F4A_7C15 : faults.seed
        pthread_mutex_unlock(lock)
    }

    /// Closes the socket and stops background progress. Idempotent.
    public func close() {
        stopBackgroundProgress()
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard !closed else { return }
        closed = true
        _ = Glibc.close(socket)
        queuePairs.removeAll()
        queuePairList.removeAll()
        regions.removeAll()
    }

    // MARK: - Control path

    public func allocateProtectionDomain() -> UInt32 {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        nextDomain += 1
        return nextDomain - 1
    }

    /// Releases a protection domain number. Refused with EBUSY while a memory region or
    /// queue pair of the domain is still registered, as `ibv_dealloc_pd` refuses.
    public func deallocateProtectionDomain(_ domain: UInt32) throws(SoftRoCEError) {
        try locked { () throws(SoftRoCEError) in
            if regions.values.contains(where: { $0.domain == domain }) || queuePairList.contains(where: { $0.domain == domain }) {
                throw SoftRoCEError("deallocate PD", errno: EBUSY, "the protection domain still has memory regions or queue pairs")
            }
        }
    }

    public func registerMemory(domain: UInt32, bytes: UnsafeMutableRawBufferPointer, access: SoftAccess) throws(SoftRoCEError) -> SoftMemoryRegion {
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

    public func deregister(_ region: SoftMemoryRegion) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        region.valid = false
        regions[region.key] = nil
    }

    public func createCompletionChannel() throws(SoftRoCEError) -> SoftCompletionChannel {
        try SoftCompletionChannel()
    }

    public func destroyCompletionChannel(_ channel: SoftCompletionChannel) { channel.closeDescriptor() }

    public func createCompletionQueue(capacity: Int, channel: SoftCompletionChannel?) -> SoftCompletionQueue {
        SoftCompletionQueue(capacity: max(capacity, 1), channel: channel)
    }

    public func destroyCompletionQueue(_ queue: SoftCompletionQueue) {
        pthread_mutex_lock(lock)
        queue.valid = false
        pthread_mutex_unlock(lock)
    }

    public func createSharedReceiveQueue(domain: UInt32, capacity: Int, maxScatterGather: Int) -> SoftSharedReceiveQueue {
        SoftSharedReceiveQueue(domain: domain, capacity: capacity, maxScatterGather: maxScatterGather)
    }

    public func createQueuePair(domain: UInt32, type: SoftQueuePairType, sendQueue: SoftCompletionQueue,
                                receiveQueue: SoftCompletionQueue, sharedReceiveQueue: SoftSharedReceiveQueue?,
                                signalAll: Bool, sendCapacity: Int, receiveCapacity: Int,
                                maxScatterGather: Int, maxInline: Int) throws(SoftRoCEError) -> SoftQueuePair {
        try locked { () throws(SoftRoCEError) in
            guard !closed else { throw SoftRoCEError("create QP", errno: ENODEV, "the device is closed") }
            let number = nextQueuePairNumber
            nextQueuePairNumber = nextQueuePairNumber >= 0xFF_FFF0 ? 0x11 : nextQueuePairNumber + 1
            let qp = SoftQueuePair(number: number, type: type, domain: domain, sendQueue: sendQueue, receiveQueue: receiveQueue,
                                   sharedReceiveQueue: sharedReceiveQueue, signalAll: signalAll, sendCapacity: sendCapacity,
                                   receiveCapacity: receiveCapacity, maxScatterGather: maxScatterGather, maxInline: maxInline)
            queuePairs[number] = qp
            queuePairList.append(qp)
            return qp
        }
    }

    public func destroyQueuePair(_ qp: SoftQueuePair) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        queuePairs[qp.number] = nil
        queuePairList.removeAll { $0 === qp }
        qp.state = .reset
    }

    public func state(of qp: SoftQueuePair) -> SoftQueuePairState {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return qp.state
    }

    /// Applies a (validated) modification.
    public func modify(_ qp: SoftQueuePair, _ attributes: SoftQueuePairAttributes) throws(SoftRoCEError) {
        try locked { () throws(SoftRoCEError) in
            if let access = attributes.access { qp.access = access }
            if let qkey = attributes.qkey { qp.qkey = qkey }
            if let mtu = attributes.pathMTU {
                guard [256, 512, 1024, 2048, 4096].contains(mtu) else { throw SoftRoCEError("modify QP", errno: EINVAL, "path MTU \(mtu)") }
                qp.mtu = mtu
            }
            if let destination = attributes.destination { qp.destination = destination }
            if let number = attributes.destinationQueuePairNumber { qp.destinationQPN = number & 0xFF_FFFF }
            if let psn = attributes.receivePSN { qp.expectedPSN = psn & 0xFF_FFFF }
            if let timer = attributes.minRNRTimer { qp.minRNRTimer = timer }
            if let psn = attributes.sendPSN {
                qp.nextPSN = psn & 0xFF_FFFF
                qp.highestPSN = psn & 0xFF_FFFF
                qp.lastAckedPSN = (psn &- 1) & 0xFF_FFFF
            }
            if let timeout = attributes.timeout { qp.timeoutCode = timeout }
            if let retry = attributes.retryCount { qp.retryCount = retry; qp.retriesLeft = Int(retry) }
            if let rnr = attributes.rnrRetry { qp.rnrRetry = rnr; qp.rnrRetriesLeft = Int(rnr) }
            switch attributes.state {
            case .reset: reset(qp)
            case .error: if qp.state != .error { enterError(qp) }
            default: qp.state = attributes.state
            }
        }
    }

    func reset(_ qp: SoftQueuePair) {
        qp.state = .reset
        qp.head = 0; qp.tail = 0; qp.cursor = 0; qp.packetIndex = 0
        qp.timerDeadline = 0; qp.rnrUntil = 0
        qp.receiveRing.head = 0; qp.receiveRing.count = 0
        qp.currentReceive = nil; qp.currentReceiveRing = nil
        qp.inSendMessage = false; qp.inWriteMessage = false
        qp.messageSequenceNumber = 0
        qp.ackPending = false
    }

    // MARK: - Posting

    /// Posts one send request. Throws EINVAL (wrong state / bad request) or ENOMEM (full).
    public func postSend(_ qp: SoftQueuePair, _ request: SoftSendRequest, _ sges: UnsafeBufferPointer<SoftScatterGather>) throws(SoftRoCEError) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        if let error = enqueueSend(qp, request, sges) { throw error }
        // Start transmitting in the caller's thread, as rxe's post_send kicks its requester.
        if !closed && (qp.state == .readyToSend || qp.state == .sendQueueDrained) {
            if qp.type == .reliableConnected { transmit(qp, now: Self.now()) } else { transmitDatagrams(qp) }
        }
    }

    func enqueueSend(_ qp: SoftQueuePair, _ request: SoftSendRequest, _ sges: UnsafeBufferPointer<SoftScatterGather>) -> SoftRoCEError? {
        switch qp.state {
        case .readyToSend, .sendQueueDrained, .error: break
        default: return SoftRoCEError("post send", errno: EINVAL, "the QP is \(qp.state), must be RTS")
        }
        guard qp.tail - qp.head < qp.sendCapacity else { return SoftRoCEError("post send", errno: ENOMEM, "the send queue is full") }
        guard sges.count <= qp.maxScatterGather else { return SoftRoCEError("post send", errno: EINVAL, "too many scatter-gather elements") }
        if qp.type == .unreliableDatagram && (request.opcode != .send && request.opcode != .sendWithImmediate || request.destination == nil) {
            return SoftRoCEError("post send", errno: EINVAL, "a UD QP sends only SEND with an address handle")
        }
        var length = 0
        for element in sges { length += Int(element.length) }
        if qp.type == .unreliableDatagram && length > qp.mtu { return SoftRoCEError("post send", errno: EINVAL, "a UD message must fit the MTU") }
        if request.inline && length > qp.maxInline { return SoftRoCEError("post send", errno: EINVAL, "inline data longer than maxInline \(qp.maxInline)") }
        let index = qp.tail
        let slot = qp.slot(index)
        slot.pointee = SoftQueuePair.SendSlot()
        slot.pointee.request = request
        slot.pointee.length = length
        slot.pointee.sgeCount = sges.count
        if request.inline {
            var offset = 0
            for element in sges where element.length > 0 {
                guard let source = UnsafeRawPointer(bitPattern: UInt(element.address)) else { return SoftRoCEError("post send", errno: EINVAL, "null inline buffer") }
                (qp.inlinePointer(index) + offset).copyMemory(from: source, byteCount: Int(element.length))
                offset += Int(element.length)
            }
        } else {
            for i in 0..<sges.count { qp.elements[(index % qp.sendCapacity) * qp.maxScatterGather + i] = sges[i] }
        }
        switch request.opcode {
        case .read: slot.pointee.packetCount = max(1, (length + qp.mtu - 1) / qp.mtu)
        case .compareAndSwap, .fetchAndAdd: slot.pointee.packetCount = 1
        default: slot.pointee.packetCount = max(1, (length + qp.mtu - 1) / qp.mtu)
        }
        qp.tail += 1
        if qp.state == .error {
            // Posting to a QP in error completes the request as flushed (as rxe does).
            completeHead(qp, status: .flushed)
        }
        return nil
    }

    /// Posts one receive to a QP.
    public func postReceive(_ qp: SoftQueuePair, id: UInt64, _ sges: UnsafeBufferPointer<SoftScatterGather>) throws(SoftRoCEError) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard qp.state != .reset else { throw SoftRoCEError("post receive", errno: EINVAL, "the QP is in RESET") }
        if qp.state == .error {
            var completion = SoftCompletion()
            completion.id = id
            completion.status = .flushed
            completion.opcode = .receive
            completion.queuePairNumber = qp.number
            qp.receiveQueue.push(completion)
            return
        }
        guard qp.receiveRing.post(id: id, sges) else { throw SoftRoCEError("post receive", errno: ENOMEM, "the receive queue is full or too many scatter-gather elements") }
    }

    /// Posts one receive to a shared receive queue.
    public func postReceive(_ queue: SoftSharedReceiveQueue, id: UInt64, _ sges: UnsafeBufferPointer<SoftScatterGather>) throws(SoftRoCEError) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard queue.ring.post(id: id, sges) else { throw SoftRoCEError("post SRQ receive", errno: ENOMEM, "the shared receive queue is full") }
    }

    // MARK: - Completions

    /// Drives the engine, then moves up to `buffer.count` completions into it.
    public func poll(_ queue: SoftCompletionQueue, into buffer: UnsafeMutableBufferPointer<SoftCompletion>) -> Int {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        if queue.count < buffer.count { progressLocked() }
        return queue.pop(into: buffer)
    }

    /// Arms `queue`: its channel gets one event at the next completion.
    public func requestNotification(_ queue: SoftCompletionQueue, solicitedOnly: Bool) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        queue.armed = true
        queue.solicitedOnly = solicitedOnly
    }

    /// Waits for an event on `channel`, driving the engine meanwhile; returns the queue.
    public func waitForEvent(_ channel: SoftCompletionChannel, timeoutMilliseconds: Int32) -> SoftCompletionQueue? {
        let start = Self.now()
        let limit = timeoutMilliseconds < 0 ? UInt64.max : start + UInt64(timeoutMilliseconds) * 1_000_000
        while true {
            pthread_mutex_lock(lock)
            progressLocked()
            var queue: SoftCompletionQueue?
            if !channel.pending.isEmpty {
                _ = channel.consume()
                queue = channel.pending.removeFirst()
            }
            pthread_mutex_unlock(lock)
            if let queue { return queue }
            if Self.now() >= limit { return nil }
            var descriptors = (pollfd(fd: socket, events: Int16(POLLIN), revents: 0), pollfd(fd: channel.fileDescriptor, events: Int16(POLLIN), revents: 0))
            _ = withUnsafeMutableBytes(of: &descriptors) { Glibc.poll($0.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, 1) }
        }
    }

    /// Drives the engine once (receive, timers, transmit) without polling a queue.
    public func progress() {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        progressLocked()
    }

    // MARK: - Background progress

    /// Starts a thread that drives the engine whenever the socket is readable (and every
    /// millisecond for timers). For event-driven users of completion channels.
    public func startBackgroundProgress() {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard progressThread == nil, !closed else { return }
        progressStop = false
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(&thread, nil, { raw in
            let device = Unmanaged<SoftDevice>.fromOpaque(raw!).takeRetainedValue()
            device.backgroundLoop()
            return nil
        }, context)
        if result == 0 { progressThread = thread } else { Unmanaged<SoftDevice>.fromOpaque(context).release() }
    }

    public func stopBackgroundProgress() {
        pthread_mutex_lock(lock)
        guard let thread = progressThread else { pthread_mutex_unlock(lock); return }
        progressStop = true
        progressThread = nil
        pthread_mutex_unlock(lock)
        if pthread_self() != thread { pthread_join(thread, nil) }
    }

    func backgroundLoop() {
        while true {
            pthread_mutex_lock(lock)
            let stop = progressStop || closed
            if !stop { progressLocked() }
            pthread_mutex_unlock(lock)
            if stop { return }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            _ = Glibc.poll(&descriptor, 1, 1)
        }
    }

    @inline(__always) static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
