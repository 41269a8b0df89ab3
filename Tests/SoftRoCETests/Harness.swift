#if canImport(Glibc)
import Glibc
#endif
import RoCEWire
import Testing
@testable import SoftRoCE

/// How the two engines of a test reach each other.
enum Transport {
    /// An `InMemoryNetwork` and a `ManualClock`: one thread, deterministic, no sockets.
    case memory
    /// Real UDP sockets on 127.0.0.1 and 127.0.0.2 and the monotonic clock.
    case udp
}

/// Two soft devices, A (127.0.0.1) and B (127.0.0.2), each with one RC queue pair connected
/// to the other, one CQ per side and one region per side.
final class EnginePair {
    let network: InMemoryNetwork?
    let clock: ManualClock?
    let deviceA: SoftDevice
    let deviceB: SoftDevice
    let cqA: SoftCompletionQueue
    let cqB: SoftCompletionQueue
    let qpA: SoftQueuePair
    let qpB: SoftQueuePair
    let memoryA: UnsafeMutableRawBufferPointer
    let memoryB: UnsafeMutableRawBufferPointer
    let regionA: SoftMemoryRegion
    let regionB: SoftMemoryRegion
    let domainA: UInt32
    let domainB: UInt32
    static let addressA = SoftAddress.ipv4(0x7F00_0001)
    static let addressB = SoftAddress.ipv4(0x7F00_0002)

    init(transport: Transport = .memory, regionBytes: Int = 1 << 20, faults: SoftFaultInjection = .none, timeout: UInt8 = 12,
         retryCount: UInt8 = 7, rnrRetry: UInt8 = 7, accessB: SoftAccess = [.localWrite, .remoteWrite, .remoteRead, .remoteAtomic],
         mtu: Int = 4096, depth: Int = 64, destinationQPNOffsetA: UInt32 = 0, icrc: ICRCVerification = .automatic,
         segmentationOffload: Bool = true, udpAddresses: (SoftAddress, SoftAddress) = (addressA, addressB)) throws {
        var faultsB = faults
        faultsB.seed = faults.seed &+ 77
        switch transport {
        case .memory:
            let network = InMemoryNetwork()
            network.recording = false
            let clock = ManualClock()
            self.network = network
            self.clock = clock
            deviceA = SoftDevice(wire: network.attach(WireEndpoint(Self.addressA, port: 4791)),
                                 configuration: SoftDeviceConfiguration(address: "127.0.0.1", faults: faults), clock: .manual(clock))
            deviceB = SoftDevice(wire: network.attach(WireEndpoint(Self.addressB, port: 4791)),
                                 configuration: SoftDeviceConfiguration(address: "127.0.0.2", faults: faultsB), clock: .manual(clock))
        case .udp:
            network = nil
            clock = nil
            (deviceA, deviceB) = try loopbackDevices(faultsA: faults, faultsB: faultsB, icrc: icrc, segmentationOffload: segmentationOffload,
                                                     addresses: ("\(udpAddresses.0)", "\(udpAddresses.1)"))
        }
        domainA = deviceA.allocateProtectionDomain()
        domainB = deviceB.allocateProtectionDomain()
        memoryA = .allocate(byteCount: regionBytes, alignment: 4096)
        memoryB = .allocate(byteCount: regionBytes, alignment: 4096)
        memoryA.initializeMemory(as: UInt8.self, repeating: 0)
        memoryB.initializeMemory(as: UInt8.self, repeating: 0)
        regionA = try deviceA.registerMemory(domain: domainA, bytes: memoryA, access: [.localWrite, .remoteWrite, .remoteRead, .remoteAtomic])
        regionB = try deviceB.registerMemory(domain: domainB, bytes: memoryB, access: accessB)
        cqA = deviceA.createCompletionQueue(capacity: 4096, channel: nil)
        cqB = deviceB.createCompletionQueue(capacity: 4096, channel: nil)
        qpA = try deviceA.createQueuePair(domain: domainA, type: .reliableConnected, sendQueue: cqA, receiveQueue: cqA,
                                          sharedReceiveQueue: nil, signalAll: false, sendCapacity: depth, receiveCapacity: depth,
                                          maxScatterGather: 2, maxInline: 64)
        qpB = try deviceB.createQueuePair(domain: domainB, type: .reliableConnected, sendQueue: cqB, receiveQueue: cqB,
                                          sharedReceiveQueue: nil, signalAll: false, sendCapacity: depth, receiveCapacity: depth,
                                          maxScatterGather: 2, maxInline: 64)
        let (addressA, addressB) = transport == .udp ? udpAddresses : (Self.addressA, Self.addressB)
        try connect(deviceA, qpA, to: addressB, qpn: qpB.number + destinationQPNOffsetA, sendPSN: 0xFF_FF00, receivePSN: 0x00_0100,
                    mtu: mtu, timeout: timeout, retry: retryCount, rnr: rnrRetry)
        try connect(deviceB, qpB, to: addressA, qpn: qpA.number, sendPSN: 0x00_0100, receivePSN: 0xFF_FF00,
                    mtu: mtu, timeout: timeout, retry: retryCount, rnr: rnrRetry)
    }

    deinit {
        deviceA.close()
        deviceB.close()
        memoryA.deallocate()
        memoryB.deallocate()
    }

    /// Engine time in nanoseconds (the manual clock in memory, the monotonic clock on UDP).
    func now() -> UInt64 { clock?.nanoseconds ?? EngineClock.monotonicNanoseconds() }

    /// Lets time pass between two rounds: on the in-memory network 1 µs while datagrams are
    /// in flight, or a jump to the next timer when the network is idle (nil: nothing will
    /// ever happen again). On UDP, nothing (the clock runs by itself).
    @discardableResult
    func advance() -> Bool {
        guard let network, let clock else { return true }
        if network.pending(for: deviceA.baseWire.local) + network.pending(for: deviceB.baseWire.local) > 0 {
            clock.advance(nanoseconds: 1000)
            return true
        }
        let deadlines = [deviceA.nextDeadline(), deviceB.nextDeadline()].compactMap { $0 }
        guard let next = deadlines.min() else { return false }
        clock.nanoseconds = max(clock.nanoseconds + 1000, next)
        return true
    }

    func address(_ memory: UnsafeMutableRawBufferPointer, _ offset: Int) -> UInt64 {
        UInt64(UInt(bitPattern: memory.baseAddress!)) + UInt64(offset)
    }

    func sgeA(_ offset: Int, _ length: Int) -> SoftScatterGather {
        SoftScatterGather(address: address(memoryA, offset), length: UInt32(length), lkey: regionA.lkey)
    }

    func sgeB(_ offset: Int, _ length: Int) -> SoftScatterGather {
        SoftScatterGather(address: address(memoryB, offset), length: UInt32(length), lkey: regionB.lkey)
    }

    func postA(_ request: SoftSendRequest, _ sge: SoftScatterGather) throws {
        try withUnsafePointer(to: sge) { try deviceA.postSend(qpA, request, UnsafeBufferPointer(start: $0, count: 1)) }
    }

    func receiveB(id: UInt64, _ sge: SoftScatterGather) throws {
        try withUnsafePointer(to: sge) { try deviceB.postReceive(qpB, id: id, UnsafeBufferPointer(start: $0, count: 1)) }
    }

    /// Runs both engines until `count` completions came from `queue`, or `seconds` of engine
    /// time passed, or (in memory) nothing is left to happen. Bounded in rounds too.
    func completions(from queue: SoftCompletionQueue, count: Int, seconds: Double = 10) -> [SoftCompletion] {
        var results = [SoftCompletion]()
        let deadline = now() + UInt64(seconds * 1e9)
        let buffer = UnsafeMutableBufferPointer<SoftCompletion>.allocate(capacity: 16)
        defer { buffer.deallocate() }
        let device = queue === cqA ? deviceA : deviceB
        let other = queue === cqA ? deviceB : deviceA
        var rounds = 0
        while results.count < count && now() < deadline && rounds < 5_000_000 {
            rounds += 1
            other.progress()
            let taken = device.poll(queue, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<min(16, count - results.count)]))
            for i in 0..<taken { results.append(buffer[i]) }
            // A full poll may leave more completions queued: poll again before giving up.
            if results.count < count && taken < 16 && !advance() { break }
        }
        return results
    }
}

/// A packet an engine sent, parsed (for tests that read the wire).
struct CapturedPacket {
    var headers: TransportHeaders
    var payload: [UInt8]
    var destination: WireEndpoint
    /// The DSCP/ECN bits it was sent with, and the datagram itself (BTH to ICRC).
    var trafficClass = TrafficClass.unmarked
    var bytes: [UInt8] = []
    var opcode: Opcode { headers.bth.opcode }
    var psn: PacketSequenceNumber { headers.bth.psn }
}

/// One engine under test (A, 127.0.0.1) whose RC QP is connected to a scripted peer
/// (127.0.0.2, QPN 0x99) that is not an engine: the test reads every packet A sends and
/// answers with packets it builds itself — any PSN, any syndrome, from any address.
final class ScriptedPeer {
    let network = InMemoryNetwork()
    let clock = ManualClock()
    let device: SoftDevice
    let cq: SoftCompletionQueue
    let qp: SoftQueuePair
    let memory: UnsafeMutableRawBufferPointer
    let region: SoftMemoryRegion
    let engine = WireEndpoint(.ipv4(0x7F00_0001), port: 4791)
    let peer = WireEndpoint(.ipv4(0x7F00_0002), port: 4791)
    let peerQueuePair: QueuePairNumber = 0x99
    /// The first PSN A sends, and the first PSN A expects from the peer.
    let sendPSN: PacketSequenceNumber
    let receivePSN: PacketSequenceNumber
    private let peerWire: InMemoryWire

    init(sendPSN: PacketSequenceNumber = 0x00_0010, receivePSN: PacketSequenceNumber = 0x00_0500, mtu: Int = 1024,
         timeout: UInt8 = 14, retryCount: UInt8 = 7, rnrRetry: UInt8 = 7, depth: Int = 16, signalAll: Bool = true,
         monotonicClock: Bool = false, congestion: SoftCongestionControl = .off) throws {
        self.sendPSN = sendPSN
        self.receivePSN = receivePSN
        device = SoftDevice(wire: network.attach(engine), configuration: SoftDeviceConfiguration(address: "127.0.0.1", congestion: congestion),
                            clock: monotonicClock ? .monotonic : .manual(clock))
        peerWire = network.attach(peer)
        let domain = device.allocateProtectionDomain()
        memory = .allocate(byteCount: 1 << 20, alignment: 4096)
        memory.initializeMemory(as: UInt8.self, repeating: 0)
        region = try device.registerMemory(domain: domain, bytes: memory, access: [.localWrite, .remoteWrite, .remoteRead, .remoteAtomic])
        cq = device.createCompletionQueue(capacity: 256, channel: nil)
        qp = try device.createQueuePair(domain: domain, type: .reliableConnected, sendQueue: cq, receiveQueue: cq, sharedReceiveQueue: nil,
                                        signalAll: signalAll, sendCapacity: depth, receiveCapacity: depth, maxScatterGather: 2, maxInline: 64)
        try connect(device, qp, to: peer.address, qpn: peerQueuePair.rawValue, sendPSN: sendPSN.rawValue, receivePSN: receivePSN.rawValue,
                    mtu: mtu, timeout: timeout, retry: retryCount, rnr: rnrRetry)
    }

    deinit {
        device.close()
        memory.deallocate()
    }

    var address: UInt64 { UInt64(UInt(bitPattern: memory.baseAddress!)) }

    func element(_ offset: Int, _ length: Int) -> SoftScatterGather {
        SoftScatterGather(address: address + UInt64(offset), length: UInt32(length), lkey: region.lkey)
    }

    func post(_ request: SoftSendRequest, _ element: SoftScatterGather) throws {
        try withUnsafePointer(to: element) { try device.postSend(qp, request, UnsafeBufferPointer(start: $0, count: 1)) }
    }

    func postReceive(id: UInt64, _ element: SoftScatterGather) throws {
        try withUnsafePointer(to: element) { try device.postReceive(qp, id: id, UnsafeBufferPointer(start: $0, count: 1)) }
    }

    /// Every packet the engine sent to the peer since the last call, in order.
    func sent() -> [CapturedPacket] {
        network.take(for: peer).map { datagram in
            datagram.bytes.withUnsafeBytes { bytes in
                let packet = try! RoCEPacket(parsing: bytes)
                return CapturedPacket(headers: packet.headers, payload: Array(packet.payload(in: bytes)), destination: datagram.destination,
                                      trafficClass: datagram.trafficClass, bytes: datagram.bytes)
            }
        }
    }

    /// Builds a packet with a valid ICRC for the path `source` → engine and delivers it;
    /// then runs one engine round.
    func deliver(_ headers: TransportHeaders, payload: [UInt8] = [], from source: WireEndpoint? = nil, corruptByte: Int? = nil,
                 trafficClass: TrafficClass = .unmarked, round: Bool = true) {
        let from = source ?? peer
        var bytes = sealed(headers, payload: payload, from: from)
        if let corruptByte { bytes[corruptByte] ^= 0x5A }
        network.inject(bytes, from: from, to: engine, trafficClass: trafficClass)
        if round { device.progress() }
    }

    /// A packet from `source` to the engine with a valid ICRC over an IPv4 header carrying
    /// `identification` (a soft sender's 0 unless it is segment k of a GSO batch).
    func sealed(_ headers: TransportHeaders, payload: [UInt8] = [], from source: WireEndpoint? = nil, identification: UInt16 = 0) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: RoCEPacket.serializedByteCount(headers: headers, payloadLength: payload.count))
        bytes.withUnsafeMutableBytes { buffer in
            let length = payload.withUnsafeBytes { try! RoCEPacket.serialize(headers: headers, payload: $0, into: buffer) }
            try! ICRC.seal(transportPacket: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]),
                           encapsulation: SoftDevice.encapsulation(from: source ?? peer, to: engine,
                                                                   ipv4: IPv4HeaderFields(identification: identification)))
        }
        return bytes
    }

    /// A response from the peer: an ACK (or NAK, RNR NAK) for `psn`.
    func acknowledge(_ psn: PacketSequenceNumber, _ syndrome: AETH.Syndrome = .ack(), from source: WireEndpoint? = nil) {
        var headers = TransportHeaders(BaseTransportHeader(opcode: .rcAcknowledge, destinationQP: qp.queuePairNumber, psn: psn))
        headers.acknowledge = AETH(syndrome: syndrome, messageSequenceNumber: 0)
        deliver(headers, from: source)
    }

    /// A request from the peer to the engine's responder.
    func request(_ opcode: Opcode, psn: PacketSequenceNumber, ackRequest: Bool = true, rdma: RETH? = nil, atomic: AtomicETH? = nil,
                 immediate: UInt32? = nil, payload: [UInt8] = [], from source: WireEndpoint? = nil, trafficClass: TrafficClass = .unmarked,
                 round: Bool = true) {
        var headers = TransportHeaders(BaseTransportHeader(opcode: opcode, destinationQP: qp.queuePairNumber, ackRequest: ackRequest, psn: psn))
        headers.rdma = rdma
        headers.atomic = atomic
        headers.immediateData = immediate.map { ImmDt($0) }
        deliver(headers, payload: payload, from: source, trafficClass: trafficClass, round: round)
    }

    /// Completions waiting in the CQ (no engine round).
    func completions() -> [SoftCompletion] {
        var results = [SoftCompletion]()
        let buffer = UnsafeMutableBufferPointer<SoftCompletion>.allocate(capacity: 64)
        defer { buffer.deallocate() }
        let taken = device.locked { device.cq(cq, popInto: buffer) }
        for i in 0..<taken { results.append(buffer[i]) }
        return results
    }

    /// Advances the engine's clock and runs one round.
    func wait(nanoseconds: UInt64) {
        clock.advance(nanoseconds: nanoseconds)
        device.progress()
    }
}

/// Two UDP soft devices, on 127.0.0.1 (a free port) and 127.0.0.2 (the same port).
func loopbackDevices(faultsA: SoftFaultInjection = .none, faultsB: SoftFaultInjection = .none, icrc: ICRCVerification = .automatic,
                     segmentationOffload: Bool = true, addresses: (String, String) = ("127.0.0.1", "127.0.0.2")) throws -> (SoftDevice, SoftDevice) {
    func configuration(_ address: String, port: UInt16, faults: SoftFaultInjection) -> SoftDeviceConfiguration {
        var configuration = SoftDeviceConfiguration(address: address, port: port, icrc: icrc, faults: faults)
        configuration.segmentationOffload = segmentationOffload
        return configuration
    }
    for _ in 0..<10 {
        let a = try SoftDevice(configuration: configuration(addresses.0, port: 0, faults: faultsA))
        if let b = try? SoftDevice(configuration: configuration(addresses.1, port: a.port, faults: faultsB)) { return (a, b) }
        a.close()
    }
    throw SoftRoCEError("test setup", errno: EADDRINUSE, "no common free UDP port on 127.0.0.1 and 127.0.0.2")
}

func connect(_ device: SoftDevice, _ qp: SoftQueuePair, to address: SoftAddress, qpn: UInt32, sendPSN: UInt32,
             receivePSN: UInt32, mtu: Int, timeout: UInt8, retry: UInt8, rnr: UInt8) throws {
    var initial = SoftQueuePairAttributes(state: .initialized)
    initial.access = [.remoteWrite, .remoteRead, .remoteAtomic]
    try device.modify(qp, initial)
    var ready = SoftQueuePairAttributes(state: .readyToReceive)
    ready.pathMTU = mtu
    ready.destination = address
    ready.destinationQueuePairNumber = qpn
    ready.receivePSN = receivePSN
    ready.minRNRTimer = 1
    try device.modify(qp, ready)
    var send = SoftQueuePairAttributes(state: .readyToSend)
    send.sendPSN = sendPSN
    send.timeout = timeout
    send.retryCount = retry
    send.rnrRetry = rnr
    try device.modify(qp, send)
}

extension SoftDevice {
    /// Pops completions without driving the engine (tests that control every round).
    func cq(_ queue: SoftCompletionQueue, popInto buffer: UnsafeMutableBufferPointer<SoftCompletion>) -> Int {
        queue.pop(into: buffer)
    }
}
