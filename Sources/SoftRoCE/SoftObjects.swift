#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A registered memory region of a soft device. lkey == rkey.
public final class SoftMemoryRegion: @unchecked Sendable {
    public let domain: UInt32
    public let base: UInt64
    public let length: Int
    public let access: SoftAccess
    public let key: UInt32
    public var lkey: UInt32 { key }
    public var rkey: UInt32 { key }
    var valid = true

    init(domain: UInt32, base: UInt64, length: Int, access: SoftAccess, key: UInt32) {
        self.domain = domain
        self.base = base
        self.length = length
        self.access = access
        self.key = key
    }

    /// True when [address, address+count) lies inside the region.
    @inline(__always)
    func contains(_ address: UInt64, _ count: Int) -> Bool {
        guard address >= base, count >= 0 else { return false }
        let offset = address - base
        return offset <= UInt64(length) && UInt64(count) <= UInt64(length) - offset
    }
}

/// A completion channel: a non-blocking pipe the engine writes one byte into when an armed
/// queue gets a completion. `fileDescriptor` (the read end) becomes readable.
public final class SoftCompletionChannel: @unchecked Sendable {
    public let fileDescriptor: Int32
    let writeDescriptor: Int32
    var pending: ContiguousArray<SoftCompletionQueue> = []

    init() throws(SoftRoCEError) {
        var fds: (Int32, Int32) = (-1, -1)
        let result = withUnsafeMutableBytes(of: &fds) { pipe($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        guard result == 0 else { throw SoftRoCEError("pipe2", errno: errno, "cannot create the completion channel's descriptor") }
        for fd in [fds.0, fds.1] {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        fileDescriptor = fds.0
        writeDescriptor = fds.1
        pending.reserveCapacity(64)
    }

    func signal(_ queue: SoftCompletionQueue) {
        if pending.count < pending.capacity { pending.append(queue) }
        var one: UInt8 = 1
        _ = write(writeDescriptor, &one, 1)
    }

    /// Consumes one event byte; true if there was one.
    func consume() -> Bool {
        var byte: UInt8 = 0
        return read(fileDescriptor, &byte, 1) == 1
    }

    func closeDescriptor() {
        _ = Glibc.close(fileDescriptor)
        _ = Glibc.close(writeDescriptor)
    }
}

/// A completion queue: a fixed ring of completions.
public final class SoftCompletionQueue: @unchecked Sendable {
    public let capacity: Int
    let ring: UnsafeMutablePointer<SoftCompletion>
    var head = 0
    var count = 0
    var armed = false
    var solicitedOnly = false
    public let channel: SoftCompletionChannel?
    /// Free for the owner (the RDMA module keeps its CompletionQueue here, like cq_context).
    public var userContext: UnsafeMutableRawPointer?
    var overruns: UInt64 = 0
    var valid = true

    init(capacity: Int, channel: SoftCompletionChannel?) {
        self.capacity = capacity
        self.channel = channel
        ring = .allocate(capacity: capacity)
        ring.initialize(repeating: SoftCompletion(), count: capacity)
    }

    deinit { ring.deallocate() }

    func push(_ completion: SoftCompletion) {
        guard count < capacity else { overruns += 1; return }
        ring[(head + count) % capacity] = completion
        count += 1
        if armed, let channel {
            armed = false
            channel.signal(self)
        }
    }

    func pop(into buffer: UnsafeMutableBufferPointer<SoftCompletion>) -> Int {
        var n = 0
        while n < buffer.count && count > 0 {
            buffer[n] = ring[head]
            head = (head + 1) % capacity
            count -= 1
            n += 1
        }
        return n
    }
}

/// A ring of posted receives (a QP's receive queue or a shared receive queue).
final class ReceiveRing {
    struct Slot {
        var id: UInt64 = 0
        var sgeCount = 0
    }
    let capacity: Int
    let maxScatterGather: Int
    let slots: UnsafeMutablePointer<Slot>
    let elements: UnsafeMutablePointer<SoftScatterGather>
    var head = 0
    var count = 0

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

    func post(id: UInt64, _ sges: UnsafeBufferPointer<SoftScatterGather>) -> Bool {
        guard count < capacity, sges.count <= maxScatterGather else { return false }
        let index = (head + count) % capacity
        slots[index] = Slot(id: id, sgeCount: sges.count)
        for i in 0..<sges.count { elements[index * maxScatterGather + i] = sges[i] }
        count += 1
        return true
    }

    /// Removes the oldest receive; returns its slot index (valid until the next post).
    func take() -> Int? {
        guard count > 0 else { return nil }
        let index = head
        head = (head + 1) % capacity
        count -= 1
        return index
    }
}

/// A shared receive queue.
public final class SoftSharedReceiveQueue: @unchecked Sendable {
    let ring: ReceiveRing
    public let domain: UInt32
    init(domain: UInt32, capacity: Int, maxScatterGather: Int) {
        self.domain = domain
        ring = ReceiveRing(capacity: capacity, maxScatterGather: maxScatterGather)
    }
    public var capacity: Int { ring.capacity }
}

/// The engine's side of a queue pair. Its fields are driven by SoftDevice under its lock.
public final class SoftQueuePair: @unchecked Sendable {
    struct SendSlot {
        var request = SoftSendRequest(id: 0)
        var sgeCount = 0
        var length = 0
        var firstPSN: UInt32 = 0
        var packetCount = 1
        var received = 0
        var done = false
        var assigned = false
    }

    public let number: UInt32
    public let type: SoftQueuePairType
    public let domain: UInt32
    let sendQueue: SoftCompletionQueue
    let receiveQueue: SoftCompletionQueue
    let sharedReceiveQueue: SoftSharedReceiveQueue?
    let signalAll: Bool
    public let sendCapacity: Int
    public let maxScatterGather: Int
    public let maxInline: Int

    public internal(set) var state: SoftQueuePairState = .reset
    var access: SoftAccess = []
    var qkey: UInt32 = 0
    var mtu = 1024
    var destination: SoftAddress?
    var destinationQPN: UInt32 = 0
    var minRNRTimer: UInt8 = 0
    var timeoutCode: UInt8 = 14
    var retryCount: UInt8 = 7
    var rnrRetry: UInt8 = 7

    // Send queue ring (monotonic indices; slot = index % sendCapacity).
    let slots: UnsafeMutablePointer<SendSlot>
    let elements: UnsafeMutablePointer<SoftScatterGather>
    let inlineData: UnsafeMutableRawPointer
    var head = 0            // oldest not completed
    var tail = 0            // next free
    var cursor = 0          // being transmitted
    var packetIndex = 0     // within cursor
    // Requester PSN state.
    var nextPSN: UInt32 = 0
    var lastAckedPSN: UInt32 = 0   // everything up to here is acknowledged
    var highestPSN: UInt32 = 0     // one past the highest PSN ever sent
    var timerDeadline: UInt64 = 0
    var retriesLeft = 7
    var rnrRetriesLeft = 7
    var rnrUntil: UInt64 = 0
    var readGoBackPSN: UInt32 = 0xFFFF_FFFF
    /// After a retransmit timeout the first packet re-sent goes out twice.
    var duplicateNextPacket = false

    // Responder state.
    let receiveRing: ReceiveRing
    var expectedPSN: UInt32 = 0
    var messageSequenceNumber: UInt32 = 0
    var nakSequenceSent = false
    var ackPending = false
    var currentReceive: Int? = nil          // slot index in the ring that supplied it
    var currentReceiveRing: ReceiveRing? = nil
    var currentReceiveOffset = 0
    var inSendMessage = false
    var inWriteMessage = false
    var writeAddress: UInt64 = 0
    var writeRemaining = 0
    var writeTotal = 0
    var writeRegion: SoftMemoryRegion? = nil
    // Saved atomic results for duplicate requests: answered, not re-executed.
    var atomicPSN = [UInt32](repeating: 0xFFFF_FFFF, count: 64)
    var atomicResult = [UInt64](repeating: 0, count: 64)
    var atomicNext = 0

    init(number: UInt32, type: SoftQueuePairType, domain: UInt32, sendQueue: SoftCompletionQueue,
         receiveQueue: SoftCompletionQueue, sharedReceiveQueue: SoftSharedReceiveQueue?, signalAll: Bool,
         sendCapacity: Int, receiveCapacity: Int, maxScatterGather: Int, maxInline: Int) {
        self.number = number
        self.type = type
        self.domain = domain
        self.sendQueue = sendQueue
        self.receiveQueue = receiveQueue
        self.sharedReceiveQueue = sharedReceiveQueue
        self.signalAll = signalAll
        self.sendCapacity = max(sendCapacity, 1)
        self.maxScatterGather = max(maxScatterGather, 1)
        self.maxInline = maxInline
        slots = .allocate(capacity: self.sendCapacity)
        slots.initialize(repeating: SendSlot(), count: self.sendCapacity)
        elements = .allocate(capacity: self.sendCapacity * self.maxScatterGather)
        elements.initialize(repeating: SoftScatterGather(address: 0, length: 0, lkey: 0), count: self.sendCapacity * self.maxScatterGather)
        inlineData = .allocate(byteCount: max(self.sendCapacity * maxInline, 1), alignment: 16)
        receiveRing = ReceiveRing(capacity: receiveCapacity, maxScatterGather: maxScatterGather)
    }

    deinit {
        slots.deallocate()
        elements.deallocate()
        inlineData.deallocate()
    }

    @inline(__always) func slot(_ index: Int) -> UnsafeMutablePointer<SendSlot> { slots + (index % sendCapacity) }
    @inline(__always) func sge(_ index: Int, _ element: Int) -> SoftScatterGather {
        elements[(index % sendCapacity) * maxScatterGather + element]
    }
    @inline(__always) func inlinePointer(_ index: Int) -> UnsafeMutableRawPointer {
        inlineData + (index % sendCapacity) * maxInline
    }

    public var outstandingSends: Int { tail - head }
}
