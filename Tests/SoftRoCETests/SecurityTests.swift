#if canImport(Glibc)
import Glibc
#endif
import RoCEWire
import Testing
@testable import SoftRoCE

/// Bad keys, bad ranges, bad permissions, bad addressing: rejected as IBTA says (NAK or
/// silent drop), counted, the target memory untouched, the requester told the right status.
@Suite("SoftRoCE security", .serialized)
struct SecurityTests {
    func untouched(_ pair: EnginePair) -> Bool {
        !UnsafeRawBufferPointer(pair.memoryB).contains { $0 != 0 }
    }

    func write(_ pair: EnginePair, to address: UInt64, rkey: UInt32, length: Int = 64) throws -> SoftCompletion? {
        for i in 0..<length { pair.memoryA[i] = 0xAB }
        var request = SoftSendRequest(id: 1, opcode: .write)
        request.remoteAddress = address
        request.remoteKey = rkey
        try pair.postA(request, pair.sgeA(0, length))
        return pair.completions(from: pair.cqA, count: 1, seconds: 5).first
    }

    @Test func wrongRemoteKeyIsNAKedAndCounted() throws {
        let pair = try EnginePair(regionBytes: 65536)
        let completion = try write(pair, to: pair.address(pair.memoryB, 0), rkey: pair.regionB.rkey &+ 0x100)
        #expect(completion?.status == .remoteAccessError)
        #expect(pair.deviceB.snapshotCounters().remoteAccessNAKsSent == 1)
        #expect(pair.deviceA.state(of: pair.qpA) == .error)
        #expect(untouched(pair))
    }

    @Test func accessOutsideTheRegionIsNAKedAndCounted() throws {
        let pair = try EnginePair(regionBytes: 65536)
        let completion = try write(pair, to: pair.address(pair.memoryB, 65536 - 4), rkey: pair.regionB.rkey)
        #expect(completion?.status == .remoteAccessError)
        #expect(pair.deviceB.snapshotCounters().remoteAccessNAKsSent == 1)
        #expect(untouched(pair))
    }

    @Test func writeToARegionWithoutRemoteWriteIsNAKed() throws {
        let pair = try EnginePair(regionBytes: 65536, accessB: [.localWrite, .remoteRead])
        let completion = try write(pair, to: pair.address(pair.memoryB, 0), rkey: pair.regionB.rkey)
        #expect(completion?.status == .remoteAccessError)
        #expect(pair.deviceB.snapshotCounters().remoteAccessNAKsSent == 1)
        #expect(untouched(pair))
    }

    @Test func atomicOnAReadOnlyRegionAndMisalignedAtomicAreRejected() throws {
        let pair = try EnginePair(regionBytes: 65536, accessB: [.localWrite, .remoteRead])
        var request = SoftSendRequest(id: 1, opcode: .fetchAndAdd, compareAdd: 5)
        request.remoteAddress = pair.address(pair.memoryB, 0)
        request.remoteKey = pair.regionB.rkey
        try pair.postA(request, pair.sgeA(0, 8))
        #expect(pair.completions(from: pair.cqA, count: 1).first?.status == .remoteAccessError)
        #expect(untouched(pair))

        let aligned = try EnginePair(regionBytes: 65536)
        var misaligned = SoftSendRequest(id: 2, opcode: .fetchAndAdd, compareAdd: 5)
        misaligned.remoteAddress = aligned.address(aligned.memoryB, 4)
        misaligned.remoteKey = aligned.regionB.rkey
        try aligned.postA(misaligned, aligned.sgeA(0, 8))
        #expect(aligned.completions(from: aligned.cqA, count: 1).first?.status == .remoteInvalidRequest)
        #expect(aligned.deviceB.snapshotCounters().invalidRequestNAKsSent == 1)
        #expect(untouched(aligned))
    }

    @Test func wrongDestinationQueuePairIsDroppedAndTheRequesterTimesOut() throws {
        let pair = try EnginePair(regionBytes: 65536, timeout: 8, retryCount: 1, destinationQPNOffsetA: 100)
        let completion = try write(pair, to: pair.address(pair.memoryB, 0), rkey: pair.regionB.rkey)
        #expect(completion?.status == .retryExceeded)
        #expect(pair.deviceB.snapshotCounters().unknownQueuePair >= 2)   // the first try and one retry
        #expect(untouched(pair))
    }

    /// Hand-built packets (valid rkey and range) with a wrong P_Key, a wrong QPN and a bad ICRC.
    @Test func badPartitionKeyAndBadICRCAreDroppedAndCounted() throws {
        let pair = try EnginePair(regionBytes: 65536)
        let device = pair.deviceA
        func inject(pkey: UInt16 = 0xFFFF, qpn: UInt32, corrupt: Bool = false) {
            var headers = TransportHeaders(BaseTransportHeader(opcode: .rcRDMAWriteOnly, partitionKey: pkey,
                                                               destinationQP: QueuePairNumber(exactly: qpn)!, ackRequest: true,
                                                               psn: PacketSequenceNumber(truncating: pair.qpB.expectedPSN)))
            headers.rdma = RETH(virtualAddress: pair.address(pair.memoryB, 0), remoteKey: pair.regionB.rkey, dmaLength: 16)
            (device.sendBuffer + headers.byteCount).initializeMemory(as: UInt8.self, repeating: 0xEE, count: 16)
            if corrupt { device.faults = SoftFaultInjection(seed: 3, corrupt: 1.0) }
            device.emit(headers, payloadLength: 16, to: .ipv4(0x7F00_0002), port: pair.deviceB.port)
            device.faults = .none
        }
        inject(pkey: 0x7FFF, qpn: pair.qpB.number)
        inject(qpn: pair.qpB.number ^ 0x40)
        inject(qpn: pair.qpB.number, corrupt: true)
        let deadline = SoftDevice.now() + 500_000_000
        while SoftDevice.now() < deadline && pair.deviceB.snapshotCounters().receivedPackets < 3 { pair.deviceB.progress() }
        let counters = pair.deviceB.snapshotCounters()
        #expect(counters.badPartitionKey == 1)
        #expect(counters.unknownQueuePair == 1)
        #expect(counters.icrcErrors == 1)
        #expect(untouched(pair))
        // The control: the same packet with the right P_Key, QPN and ICRC is executed.
        inject(qpn: pair.qpB.number)
        let until = SoftDevice.now() + 500_000_000
        while SoftDevice.now() < until && pair.memoryB[0] != 0xEE { pair.deviceB.progress() }
        #expect(pair.memoryB[0] == 0xEE && pair.memoryB[15] == 0xEE && pair.memoryB[16] == 0)
    }
}
