#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SoftRoCE

/// Two soft devices, A on 127.0.0.1 and B on 127.0.0.2 (same UDP port), each with one RC
/// queue pair connected to the other, one CQ per side and one region per side.
final class EnginePair {
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

    init(regionBytes: Int = 1 << 20, faults: SoftFaultInjection = .none, timeout: UInt8 = 12, retryCount: UInt8 = 7,
         rnrRetry: UInt8 = 7, accessB: SoftAccess = [.localWrite, .remoteWrite, .remoteRead, .remoteAtomic],
         mtu: Int = 4096, depth: Int = 64, destinationQPNOffsetA: UInt32 = 0) throws {
        // A takes a free port; B binds the same port on 127.0.0.2.
        var configA = SoftDeviceConfiguration(address: "127.0.0.1", port: 0, faults: faults)
        var attempt = 0
        while true {
            let a = try SoftDevice(configuration: configA)
            var configB = SoftDeviceConfiguration(address: "127.0.0.2", port: a.port, faults: faults)
            configB.faults.seed = faults.seed &+ 77
            if let b = try? SoftDevice(configuration: configB) {
                deviceA = a
                deviceB = b
                break
            }
            a.close()
            attempt += 1
            try #require(attempt < 10, "no common free UDP port on 127.0.0.1 and 127.0.0.2")
            configA.port = 0
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
        try Self.connect(deviceA, qpA, to: .ipv4(0x7F00_0002), qpn: qpB.number + destinationQPNOffsetA, sendPSN: 0xFF_FF00, receivePSN: 0x00_0100,
                         mtu: mtu, timeout: timeout, retry: retryCount, rnr: rnrRetry)
        try Self.connect(deviceB, qpB, to: .ipv4(0x7F00_0001), qpn: qpA.number, sendPSN: 0x00_0100, receivePSN: 0xFF_FF00,
                         mtu: mtu, timeout: timeout, retry: retryCount, rnr: rnrRetry)
    }

    static func connect(_ device: SoftDevice, _ qp: SoftQueuePair, to address: SoftAddress, qpn: UInt32, sendPSN: UInt32,
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

    deinit {
        deviceA.close()
        deviceB.close()
        memoryA.deallocate()
        memoryB.deallocate()
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
        var element = sge
        try withUnsafePointer(to: &element) { try deviceA.postSend(qpA, request, UnsafeBufferPointer(start: $0, count: 1)) }
    }

    func receiveB(id: UInt64, _ sge: SoftScatterGather) throws {
        var element = sge
        try withUnsafePointer(to: &element) { try deviceB.postReceive(qpB, id: id, UnsafeBufferPointer(start: $0, count: 1)) }
    }

    /// Polls both sides until `count` completions came from `queue` or `seconds` passed.
    func completions(from queue: SoftCompletionQueue, count: Int, seconds: Double = 10) -> [SoftCompletion] {
        var results = [SoftCompletion]()
        let deadline = SoftDevice.now() + UInt64(seconds * 1e9)
        let buffer = UnsafeMutableBufferPointer<SoftCompletion>.allocate(capacity: 16)
        defer { buffer.deallocate() }
        while results.count < count && SoftDevice.now() < deadline {
            let other = queue === cqA ? cqB : cqA
            let otherDevice = queue === cqA ? deviceB : deviceA
            let device = queue === cqA ? deviceA : deviceB
            otherDevice.progress()
            _ = other  // the other side's completions stay queued for its own poll
            let n = device.poll(queue, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<min(16, count - results.count)]))
            for i in 0..<n { results.append(buffer[i]) }
        }
        return results
    }
}
