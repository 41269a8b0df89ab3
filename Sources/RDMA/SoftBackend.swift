import SoftRoCE
import Synchronization

// The soft backend's table (see Backend.swift): each class drives one SoftRoCE engine
// object through the `SoftDevice` facade. The posts translate the public value types
// (`SendWorkRequest`, `ScatterGatherElement`) straight into the engine's
// (`SoftSendRequest`, `SoftScatterGather`) on the stack: nothing allocates, no verbs C
// struct is read back, and a UD destination is the address the `AddressHandle` resolved.

/// The engine's configuration, fault settings and counters are the only SoftRoCE types
/// the public API names.
public typealias SoftDeviceConfiguration = SoftRoCE.SoftDeviceConfiguration
public typealias SoftFaultInjection = SoftRoCE.SoftFaultInjection
public typealias SoftCounters = SoftRoCE.SoftCounters
public typealias ICRCVerification = SoftRoCE.ICRCVerification
public typealias PacketCapture = SoftRoCE.PacketCapture
public typealias SoftCongestionControl = SoftRoCE.SoftCongestionControl
public typealias SoftQueuePairRate = SoftRoCE.SoftQueuePairRate

extension RDMAError {
    init(soft error: SoftRoCEError) {
        self.init(operation: error.operation, kind: .system(errno: error.errno), hint: error.message)
    }
}

/// Soft devices open in this process, so that `Device.all()` lists them next to verbs ones.
enum SoftDeviceRegistry {
    private struct Weak: @unchecked Sendable { weak var device: SoftDevice? }
    private static let devices = Mutex<[Weak]>([])

    static func add(_ device: SoftDevice) {
        devices.withLock { list in
            list.removeAll { $0.device == nil }
            list.append(Weak(device: device))
        }
    }

    static var all: [SoftDevice] {
        devices.withLock { list in list.compactMap(\.device).filter { !$0.isClosed } }
    }
}

final class SoftBackendDevice: DeviceOperations, @unchecked Sendable {
    let device: SoftDevice
    /// True when this context opened the engine (`Context(soft:)`) and so closes it.
    let owned: Bool

    init(device: SoftDevice, owned: Bool) {
        self.device = device
        self.owned = owned
    }

    var kind: BackendKind { .soft }
    func deviceAttributes() throws(RDMAError) -> DeviceAttributes { SoftTranslate.deviceAttributes(device) }

    func portAttributes(port: UInt8) throws(RDMAError) -> PortAttributes {
        guard port == 1 else { throw RDMAError(operation: "ibv_query_port", kind: .invalidArgument, hint: "a soft device has one port, 1; got \(port)") }
        return SoftTranslate.portAttributes(device)
    }

    func gidTable() throws(RDMAError) -> [GIDEntry] { SoftTranslate.gidTable(device) }

    func allocateProtectionDomain() throws(RDMAError) -> any ProtectionDomainOperations {
        SoftBackendProtectionDomain(domain: device.allocateProtectionDomain(), device: device)
    }

    func createCompletionChannel() throws(RDMAError) -> any CompletionChannelOperations {
        do throws(SoftRoCEError) {
            return SoftBackendCompletionChannel(channel: try device.createCompletionChannel(), device: device)
        } catch { throw RDMAError(soft: error) }
    }

    func createCompletionQueue(minimumEntries: Int, channel: CompletionChannel?,
                               completionVector: Int32) throws(RDMAError) -> any CompletionQueueOperations {
        var softChannel: SoftCompletionChannel?
        if let channel {
            guard let soft = try channel.operations("ibv_create_cq") as? SoftBackendCompletionChannel else {
                throw RDMAError(operation: "ibv_create_cq", kind: .invalidArgument, hint: "the CompletionChannel belongs to another backend")
            }
            softChannel = soft.channel
        }
        return SoftBackendCompletionQueue(queue: device.createCompletionQueue(capacity: minimumEntries, channel: softChannel), device: device)
    }

    func close() throws(RDMAError) {
        if owned { device.close() }
    }
}

final class SoftBackendProtectionDomain: ProtectionDomainOperations, @unchecked Sendable {
    let domain: UInt32
    let device: SoftDevice

    init(domain: UInt32, device: SoftDevice) {
        self.domain = domain
        self.device = device
    }

    func registerMemory(_ bytes: UnsafeMutableRawBufferPointer, access: AccessFlags) throws(RDMAError) -> any MemoryRegionOperations {
        do throws(SoftRoCEError) {
            let region = try device.registerMemory(domain: domain, bytes: bytes, access: SoftAccess(rawValue: access.rawValue & 0xF))
            return SoftBackendMemoryRegion(region: region, device: device)
        } catch { throw RDMAError(soft: error) }
    }

    func createQueuePair(kind: QueuePairKind, sendCompletionQueue: CompletionQueue, receiveCompletionQueue: CompletionQueue,
                         capabilities: QueuePairCapabilities, sharedReceiveQueue: SharedReceiveQueue?,
                         signalAllSends: Bool) throws(RDMAError) -> (operations: any QueuePairOperations, number: UInt32, granted: QueuePairCapabilities) {
        let type: SoftQueuePairType
        switch kind {
        case .reliableConnected: type = .reliableConnected
        case .unreliableDatagram: type = .unreliableDatagram
        default: throw RDMAError(operation: "ibv_create_qp", kind: .unsupported, hint: "the soft engine implements RC and UD queue pairs, not \(kind)")
        }
        let sendQueue = try Self.queue(sendCompletionQueue)
        let receiveQueue = try Self.queue(receiveCompletionQueue)
        var pool: SoftSharedReceiveQueue?
        if let sharedReceiveQueue {
            guard let soft = try sharedReceiveQueue.operations("ibv_create_qp") as? SoftBackendSharedReceiveQueue else {
                throw RDMAError(operation: "ibv_create_qp", kind: .invalidArgument, hint: "the SharedReceiveQueue belongs to another backend")
            }
            pool = soft.queue
        }
        var granted = capabilities
        granted.maxInlineData = max(capabilities.maxInlineData, 256)
        do throws(SoftRoCEError) {
            let queuePair = try device.createQueuePair(domain: domain, type: type, sendQueue: sendQueue, receiveQueue: receiveQueue,
                                                       sharedReceiveQueue: pool, signalAll: signalAllSends,
                                                       sendCapacity: Int(capabilities.maxSendWorkRequests),
                                                       receiveCapacity: Int(capabilities.maxReceiveWorkRequests),
                                                       maxScatterGather: Int(max(capabilities.maxSendScatterGather, capabilities.maxReceiveScatterGather)),
                                                       maxInline: Int(granted.maxInlineData))
            return (SoftBackendQueuePair(queuePair: queuePair, device: device), queuePair.number, granted)
        } catch { throw RDMAError(soft: error) }
    }

    private static func queue(_ queue: CompletionQueue) throws(RDMAError) -> SoftCompletionQueue {
        guard let soft = try queue.operations("ibv_create_qp") as? SoftBackendCompletionQueue else {
            throw RDMAError(operation: "ibv_create_qp", kind: .invalidArgument, hint: "a CompletionQueue belongs to another backend")
        }
        return soft.queue
    }

    func createAddressHandle(_ addressVector: AddressVector) throws(RDMAError) -> any AddressHandleOperations {
        SoftBackendAddressHandle(destination: SoftTranslate.address(of: addressVector.destinationGID))
    }

    func createSharedReceiveQueue(maxWorkRequests: UInt32, maxScatterGather: UInt32) throws(RDMAError)
        -> (operations: any SharedReceiveQueueOperations, maxWorkRequests: UInt32, maxScatterGather: UInt32) {
        let queue = device.createSharedReceiveQueue(domain: domain, capacity: Int(maxWorkRequests), maxScatterGather: Int(maxScatterGather))
        return (SoftBackendSharedReceiveQueue(queue: queue, device: device), UInt32(queue.capacity), max(maxScatterGather, 1))
    }

    /// Refused with EBUSY while the engine still holds a region or queue pair of the
    /// domain, as `ibv_dealloc_pd` is.
    func deallocate() throws(RDMAError) {
        do throws(SoftRoCEError) { try device.deallocateProtectionDomain(domain) } catch { throw RDMAError(soft: error) }
    }
}

final class SoftBackendMemoryRegion: MemoryRegionOperations, @unchecked Sendable {
    let region: SoftMemoryRegion
    let device: SoftDevice

    init(region: SoftMemoryRegion, device: SoftDevice) {
        self.region = region
        self.device = device
    }

    var lkey: UInt32 { region.lkey }
    var rkey: UInt32 { region.rkey }
    func deregister() throws(RDMAError) { device.deregister(region) }
}

final class SoftBackendCompletionChannel: CompletionChannelOperations, @unchecked Sendable {
    let channel: SoftCompletionChannel
    let device: SoftDevice

    init(channel: SoftCompletionChannel, device: SoftDevice) {
        self.channel = channel
        self.device = device
    }

    var fileDescriptor: Int32 { channel.fileDescriptor }

    /// Drives the engine while it waits, so a single thread may post, then wait.
    func waitForEvent(timeoutMilliseconds: Int32) throws(RDMAError) -> CompletionQueue? {
        guard let queue = device.waitForEvent(channel, timeoutMilliseconds: timeoutMilliseconds),
              let owner = queue.userContext else { return nil }
        return Unmanaged<CompletionQueue>.fromOpaque(owner).takeUnretainedValue()
    }

    func wake() { channel.wake() }

    func destroy() throws(RDMAError) { device.destroyCompletionChannel(channel) }
}

final class SoftBackendCompletionQueue: CompletionQueueOperations, @unchecked Sendable {
    let queue: SoftCompletionQueue
    let device: SoftDevice

    init(queue: SoftCompletionQueue, device: SoftDevice) {
        self.queue = queue
        self.device = device
    }

    var capacity: Int { queue.capacity }
    func setOwner(_ owner: Unmanaged<CompletionQueue>) { queue.userContext = owner.toOpaque() }

    /// Polls the engine (which drives its progress first) into a small stack batch and
    /// translates each completion into the caller's buffer.
    @inline(__always)
    func poll(into buffer: UnsafeMutableBufferPointer<WorkCompletion>) throws(RDMAError) -> Int {
        guard buffer.count > 0 else { return 0 }
        return withUnsafeTemporaryAllocation(of: SoftCompletion.self, capacity: min(buffer.count, 16)) { scratch in
            let count = device.poll(queue, into: scratch)
            for index in 0..<count { SoftTranslate.completion(scratch[index], into: &buffer[index].raw) }
            return count
        }
    }

    func requestNotification(solicitedOnly: Bool) throws(RDMAError) {
        device.requestNotification(queue, solicitedOnly: solicitedOnly)
    }

    /// The engine keeps no per-event state to release.
    func acknowledgeEvents(_ count: UInt32) {}

    func destroy() throws(RDMAError) { device.destroyCompletionQueue(queue) }
}

final class SoftBackendQueuePair: QueuePairOperations, @unchecked Sendable {
    let queuePair: SoftQueuePair
    let device: SoftDevice

    init(queuePair: SoftQueuePair, device: SoftDevice) {
        self.queuePair = queuePair
        self.device = device
    }

    func state() throws(RDMAError) -> QueuePairState { SoftTranslate.state(device.state(of: queuePair)) }

    func modify(_ attributes: QueuePairAttributes) throws(RDMAError) {
        do throws(SoftRoCEError) { try device.modify(queuePair, SoftTranslate.attributes(attributes)) } catch { throw RDMAError(soft: error) }
    }

    @inline(__always)
    func post(_ chain: SendRequestChain) throws(RDMAError) {
        for index in 0..<chain.count {
            let code = try chain.withRequest(at: index) { request, elements in send(request, elements) }
            if code != 0 { throw RDMAError.postFailure("ibv_post_send", code, index, of: chain.count) }
        }
    }

    @inline(__always)
    func post(_ request: SendWorkRequest, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        let code = withUnsafePointer(to: element) { pointer in send(request, UnsafeBufferPointer(start: pointer, count: 1)) }
        if code != 0 { throw RDMAError.postFailure("ibv_post_send", code, 0, of: 1) }
    }

    /// Posts one request; returns the engine's errno, 0 on success.
    @inline(__always)
    private func send(_ request: SendWorkRequest, _ elements: UnsafeBufferPointer<ScatterGatherElement>) -> Int32 {
        var soft = SoftTranslate.request(request)
        if queuePair.type == .unreliableDatagram, let datagram = request.datagram {
            // A closed handle, or one of another backend, leaves no destination: the engine
            // refuses the request with EINVAL, as a provider refuses a NULL ah.
            soft.destination = (datagram.addressHandle.currentOperations as? SoftBackendAddressHandle)?.destination
            soft.remoteQueuePairNumber = datagram.remoteQueuePairNumber
            soft.remoteQKey = datagram.remoteQKey
        }
        do throws(SoftRoCEError) {
            try SoftTranslate.withElements(elements) { sges throws(SoftRoCEError) in try device.postSend(queuePair, soft, sges) }
            return 0
        } catch {
            return error.errno
        }
    }

    @inline(__always)
    func postReceive(_ chain: ReceiveRequestChain) throws(RDMAError) {
        try SoftTranslate.postReceives(chain, "ibv_post_recv") { id, sges throws(SoftRoCEError) in try device.postReceive(queuePair, id: id, sges) }
    }

    @inline(__always)
    func postReceive(id: UInt64, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        try SoftTranslate.postReceive(id: id, element, "ibv_post_recv") { id, sges throws(SoftRoCEError) in try device.postReceive(queuePair, id: id, sges) }
    }

    func destroy() throws(RDMAError) { device.destroyQueuePair(queuePair) }
}

/// A soft address handle is its resolved peer address: the engine keeps no object for it.
final class SoftBackendAddressHandle: AddressHandleOperations, @unchecked Sendable {
    let destination: SoftAddress
    init(destination: SoftAddress) { self.destination = destination }
    func destroy() throws(RDMAError) {}
}

final class SoftBackendSharedReceiveQueue: SharedReceiveQueueOperations, @unchecked Sendable {
    let queue: SoftSharedReceiveQueue
    let device: SoftDevice

    init(queue: SoftSharedReceiveQueue, device: SoftDevice) {
        self.queue = queue
        self.device = device
    }

    func postReceive(_ chain: ReceiveRequestChain) throws(RDMAError) {
        try SoftTranslate.postReceives(chain, "ibv_post_srq_recv") { id, sges throws(SoftRoCEError) in try device.postReceive(queue, id: id, sges) }
    }

    func postReceive(id: UInt64, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        try SoftTranslate.postReceive(id: id, element, "ibv_post_srq_recv") { id, sges throws(SoftRoCEError) in try device.postReceive(queue, id: id, sges) }
    }

    /// The engine keeps no state for a pool beyond its queue pairs, closed before it.
    func destroy() throws(RDMAError) {}
}
