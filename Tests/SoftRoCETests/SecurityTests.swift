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
        let test = try ScriptedPeer()
        func write(partitionKey: UInt16 = 0xFFFF, queuePair: QueuePairNumber? = nil, corruptByte: Int? = nil) {
            var headers = TransportHeaders(BaseTransportHeader(opcode: .rcRDMAWriteOnly, partitionKey: partitionKey,
                                                               destinationQP: queuePair ?? test.qp.queuePairNumber, ackRequest: true,
                                                               psn: test.receivePSN))
            headers.rdma = RETH(virtualAddress: test.address, remoteKey: test.region.rkey, dmaLength: 16)
            test.deliver(headers, payload: [UInt8](repeating: 0xEE, count: 16), corruptByte: corruptByte)
        }
        write(partitionKey: 0x7FFF)
        write(queuePair: QueuePairNumber(exactly: test.qp.number ^ 0x40)!)
        write(corruptByte: 20)
        let counters = test.device.snapshotCounters()
        #expect(counters.badPartitionKey == 1)
        #expect(counters.unknownQueuePair == 1)
        #expect(counters.icrcErrors == 1)
        #expect(!test.memory.contains { $0 != 0 })
        #expect(test.sent().isEmpty, "a dropped packet is never answered")
        // The control: the same packet with the right P_Key, QPN and ICRC is executed.
        write()
        #expect(test.memory[0] == 0xEE && test.memory[15] == 0xEE && test.memory[16] == 0)
        #expect(test.sent().map(\.opcode) == [.rcAcknowledge])
    }

    /// rxe's check_addr: a datagram from a third host with a live QPN, PSN and rkey must not
    /// write memory, and the real WRITE at that PSN must then be executed, not taken for a
    /// duplicate.
    @Test func aPacketFromAThirdAddressIsDroppedAndCounted() throws {
        let test = try ScriptedPeer()
        let intruder = WireEndpoint(.ipv4(0x7F00_0003), port: 4791)
        let reth = RETH(virtualAddress: test.address, remoteKey: test.region.rkey, dmaLength: 8)
        test.request(.rcRDMAWriteOnly, psn: test.receivePSN, rdma: reth, payload: [UInt8](repeating: 0x66, count: 8), from: intruder)
        #expect(test.device.snapshotCounters().unexpectedSource == 1)
        #expect(!test.memory.contains { $0 != 0 })
        #expect(test.sent().isEmpty)
        test.request(.rcRDMAWriteOnly, psn: test.receivePSN, rdma: reth, payload: [UInt8](repeating: 0x11, count: 8))
        #expect(Array(test.memory[0..<9]) == [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0])
        #expect(test.device.snapshotCounters().duplicateRequest == 0)
        #expect(test.sent().map(\.psn) == [test.receivePSN])
    }

    /// One forged NAK from a third address used to move a QP to ERROR.
    @Test func aNAKFromAThirdAddressDoesNotFailTheQueuePair() throws {
        let test = try ScriptedPeer()
        try test.post(SoftSendRequest(id: 1), test.element(0, 16))
        #expect(test.sent().count == 1)
        test.acknowledge(test.sendPSN, .nak(.remoteAccessError), from: WireEndpoint(.ipv4(0x7F00_0003), port: 4791))
        #expect(test.device.state(of: test.qp) == .readyToSend)
        #expect(test.completions().isEmpty)
        test.acknowledge(test.sendPSN)
        #expect(test.completions().map(\.status) == [.success])
    }

    /// A duplicate READ may replay only what an executed READ asked for: a forged one naming
    /// 1 MiB used to make the responder send it all.
    @Test func aDuplicateReadOutsideAnyExecutedReadSendsNothing() throws {
        let test = try ScriptedPeer(mtu: 1024)
        for i in 0..<4096 { test.memory[i] = UInt8(truncatingIfNeeded: i) }
        let asked = RETH(virtualAddress: test.address, remoteKey: test.region.rkey, dmaLength: 2048)
        test.request(.rcRDMAReadRequest, psn: test.receivePSN, rdma: asked)
        #expect(test.sent().map(\.opcode) == [.rcRDMAReadResponseFirst, .rcRDMAReadResponseLast])
        let greedy = RETH(virtualAddress: test.address, remoteKey: test.region.rkey, dmaLength: 1 << 20)
        test.request(.rcRDMAReadRequest, psn: test.receivePSN, rdma: greedy)
        #expect(test.sent().isEmpty)
        #expect(test.device.snapshotCounters().refusedReadReplays == 1)
        // A genuine retransmission of the second half is replayed.
        let secondHalf = RETH(virtualAddress: test.address + 1024, remoteKey: test.region.rkey, dmaLength: 1024)
        test.request(.rcRDMAReadRequest, psn: test.receivePSN + 1, rdma: secondHalf)
        let replay = test.sent()
        #expect(replay.map(\.opcode) == [.rcRDMAReadResponseOnly])
        #expect(replay.first?.psn == test.receivePSN + 1)
        #expect(replay.first?.payload == (1024..<2048).map { UInt8(truncatingIfNeeded: $0) })
    }

    /// A receive posted while another is being filled by a multi-packet SEND: the queue is
    /// full counting the one in use (ENOMEM, as verbs), and the one in use is never disturbed.
    @Test func aReceivePostedIntoAFullQueueFailsAndLeavesTheOneInUseAlone() throws {
        let test = try ScriptedPeer(mtu: 256, depth: 2)
        try test.postReceive(id: 1, test.element(0, 1024))
        try test.postReceive(id: 2, test.element(4096, 1024))
        test.request(.rcSendFirst, psn: test.receivePSN, ackRequest: false, payload: [UInt8](repeating: 0xA1, count: 256))
        #expect(throws: SoftRoCEError.self) { try test.postReceive(id: 3, test.element(8192, 1024)) }
        test.request(.rcSendLast, psn: test.receivePSN + 1, payload: [UInt8](repeating: 0xA2, count: 100))
        let received = test.completions()
        #expect(received.map(\.id) == [1])
        #expect(received.first?.byteLength == 356)
        #expect(test.memory[0] == 0xA1 && test.memory[255] == 0xA1 && test.memory[256] == 0xA2 && test.memory[355] == 0xA2)
        #expect(test.memory[4096] == 0, "the second receive was not touched")
        try test.postReceive(id: 3, test.element(8192, 1024))   // room again
    }
}

/// Seeded hostile traffic from the connected peer's own address with valid ICRCs — every
/// opcode, random PSNs, keys, addresses, lengths, syndromes — while the engine has work in
/// flight both ways. Nothing may trap, no byte outside the registered regions may change,
/// and the engine must keep its books (counters move, the QP ends in a legal state).
@Suite("SoftRoCE hostile peer")
struct HostilePeerTests {
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func randomValidLookingPacketsNeverTrap(seed: UInt64) throws {
        let test = try ScriptedPeer(mtu: 256, timeout: 8, retryCount: 7, depth: 16)
        var random = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next() -> UInt64 { random ^= random << 13; random ^= random >> 7; random ^= random << 17; return random }
        let opcodes: [Opcode] = [.rcSendFirst, .rcSendMiddle, .rcSendLast, .rcSendLastWithImmediate, .rcSendOnly, .rcSendOnlyWithImmediate,
                                 .rcRDMAWriteFirst, .rcRDMAWriteMiddle, .rcRDMAWriteLast, .rcRDMAWriteLastWithImmediate, .rcRDMAWriteOnly,
                                 .rcRDMAWriteOnlyWithImmediate, .rcRDMAReadRequest, .rcRDMAReadResponseFirst, .rcRDMAReadResponseMiddle,
                                 .rcRDMAReadResponseLast, .rcRDMAReadResponseOnly, .rcAcknowledge, .rcAtomicAcknowledge, .rcCompareSwap,
                                 .rcFetchAdd, .udSendOnly]
        // A guard zone after the region: hostile keys and addresses must never reach it.
        let guardZone = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { guardZone.deallocate() }
        guardZone.initializeMemory(as: UInt8.self, repeating: 0xCD)
        for round in 0..<3000 {
            if round % 50 == 0 {
                try? test.post(SoftSendRequest(id: UInt64(round), opcode: [.send, .write, .read, .fetchAndAdd][round / 50 % 4],
                                               remoteAddress: next(), remoteKey: UInt32(truncatingIfNeeded: next()), compareAdd: 1),
                               test.element(Int(next() % 4096) & ~7, 8 + Int(next() % 600)))
                try? test.postReceive(id: UInt64(round), test.element(8192 + Int(next() % 4096), Int(next() % 2048)))
            }
            let opcode = opcodes[Int(next() % UInt64(opcodes.count))]
            let near = next() % 4 != 0
            let psn = near ? (next() % 2 == 0 ? test.receivePSN : test.sendPSN) + Int(next() % 40) - 8
                : PacketSequenceNumber(truncating: UInt32(truncatingIfNeeded: next()))
            var headers = TransportHeaders(BaseTransportHeader(opcode: opcode, destinationQP: test.qp.queuePairNumber,
                                                               ackRequest: next() % 2 == 0, psn: psn))
            let validKey = next() % 3 != 0
            let address = next() % 3 == 0 ? test.address + next() % (1 << 20) : next()
            if opcode.extendedHeaders.contains(.rdma) {
                headers.rdma = RETH(virtualAddress: address, remoteKey: validKey ? test.region.rkey : UInt32(truncatingIfNeeded: next()),
                                    dmaLength: next() % 2 == 0 ? UInt32(next() % 8192) : UInt32(truncatingIfNeeded: next()))
            }
            if opcode.extendedHeaders.contains(.atomic) {
                headers.atomic = AtomicETH(virtualAddress: address & ~7, remoteKey: validKey ? test.region.rkey : UInt32(truncatingIfNeeded: next()),
                                           swapOrAdd: next(), compare: next())
            }
            if opcode.extendedHeaders.contains(.acknowledge) {
                headers.acknowledge = AETH(syndrome: AETH.Syndrome(rawValue: UInt8(truncatingIfNeeded: next())), messageSequenceNumber: 0)
            }
            if opcode.extendedHeaders.contains(.atomicAcknowledge) { headers.atomicAcknowledge = AtomicAckETH(originalRemoteData: next()) }
            if opcode.extendedHeaders.contains(.immediateData) { headers.immediateData = ImmDt(UInt32(truncatingIfNeeded: next())) }
            if opcode.extendedHeaders.contains(.datagram) { headers.datagram = DETH(queueKey: 0, sourceQP: 7) }
            let payloadLength = opcode.carriesPayload ? [0, 1, 255, 256, 257, Int(next() % 1500)][Int(next() % 6)] : 0
            test.deliver(headers, payload: [UInt8](repeating: UInt8(truncatingIfNeeded: round), count: payloadLength), round: next() % 4 == 0)
            if next() % 8 == 0 { test.wait(nanoseconds: next() % 5_000_000) }
            _ = test.sent()
            _ = test.completions()
        }
        #expect(!guardZone.contains { $0 != 0xCD })
        let counters = test.device.snapshotCounters()
        #expect(counters.receivedPackets > 2000)
        #expect([.readyToSend, .error].contains(test.device.state(of: test.qp)))
    }
}
