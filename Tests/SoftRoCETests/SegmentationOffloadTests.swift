#if canImport(Glibc)
import Glibc
#endif
import RoCEWire
import Testing
@testable import SoftRoCE

/// UDP GSO on the real wire (`TransmitBatch`, `UDPWire`): the full-MTU packets of a message
/// leave as super-datagrams, the receiver cuts them (a raw socket sees them whole on
/// loopback; a UDP socket with UDP_GRO is told the segment size), and each segment's ICRC —
/// sealed over IPv4 Identification k — checks. Every byte and completion is verified.
@Suite("SoftRoCE segmentation offload (UDP GSO/GRO)", .serialized)
struct SegmentationOffloadTests {
    /// One 1 MiB WRITE, one 256 KiB SEND and one 1 MiB READ from A to B at `mtu`, checked byte by byte.
    func transfer(_ pair: EnginePair) throws {
        let size = 1 << 20
        for i in 0..<size { pair.memoryA[i] = UInt8(truncatingIfNeeded: i &* 13 &+ 5) }
        var write = SoftSendRequest(id: 1, opcode: .write)
        write.remoteAddress = pair.address(pair.memoryB, 0)
        write.remoteKey = pair.regionB.rkey
        try pair.postA(write, pair.sgeA(0, size))
        #expect(pair.completions(from: pair.cqA, count: 1).first?.status == .success)
        #expect(memcmp(pair.memoryA.baseAddress!, pair.memoryB.baseAddress!, size) == 0)

        let sendSize = 256 << 10
        try pair.receiveB(id: 7, pair.sgeB(0, sendSize))
        for i in 0..<sendSize { pair.memoryA[i] = UInt8(truncatingIfNeeded: i &* 3) }
        try pair.postA(SoftSendRequest(id: 2, opcode: .send), pair.sgeA(0, sendSize))
        #expect(pair.completions(from: pair.cqA, count: 1).first?.status == .success)
        let received = pair.completions(from: pair.cqB, count: 1).first
        #expect(received?.status == .success && received?.byteLength == UInt32(sendSize))
        #expect(memcmp(pair.memoryA.baseAddress!, pair.memoryB.baseAddress!, sendSize) == 0)

        for i in 0..<size { pair.memoryB[i] = UInt8(truncatingIfNeeded: i &* 11 &+ 1) }
        var read = SoftSendRequest(id: 3, opcode: .read)
        read.remoteAddress = pair.address(pair.memoryB, 0)
        read.remoteKey = pair.regionB.rkey
        try pair.postA(read, pair.sgeA(0, size))
        #expect(pair.completions(from: pair.cqA, count: 1).first?.status == .success)
        #expect(memcmp(pair.memoryA.baseAddress!, pair.memoryB.baseAddress!, size) == 0)
    }

    // MARK: - The receiver's cut, deterministic (in memory, a scripted peer)

    /// A 3,000-byte SEND at MTU 1024 as a GSO sender puts it in one super-datagram:
    /// FIRST and MIDDLE of 1,024 bytes, LAST of 952, sealed over IPv4 IDs `identifications`.
    func superDatagram(_ peer: ScriptedPeer, identifications: [UInt16] = [0, 1, 2], payload: [UInt8]) -> [UInt8] {
        let opcodes: [Opcode] = [.rcSendFirst, .rcSendMiddle, .rcSendLast]
        var datagram = [UInt8]()
        for (index, opcode) in opcodes.enumerated() {
            let headers = TransportHeaders(BaseTransportHeader(opcode: opcode, destinationQP: peer.qp.queuePairNumber,
                                                               ackRequest: index == 2, psn: peer.receivePSN + index))
            let slice = Array(payload[(index * 1024)..<min(payload.count, (index + 1) * 1024)])
            datagram += peer.sealed(headers, payload: slice, identification: identifications[index])
        }
        return datagram
    }

    @Test func aSuperDatagramIsCutIntoItsPacketsEachCheckedOverItsOwnIdentification() throws {
        let peer = try ScriptedPeer(mtu: 1024)
        try peer.postReceive(id: 9, peer.element(0, 4096))
        let payload = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        peer.network.inject(superDatagram(peer, payload: payload), from: peer.peer, to: peer.engine)
        peer.device.progress()
        let completion = peer.completions().first
        #expect(completion?.status == .success && completion?.byteLength == 3000)
        #expect(peer.memory[0..<3000].elementsEqual(payload))
        let counters = peer.device.snapshotCounters()
        #expect(counters.superDatagramsReceived == 1 && counters.receivedPackets == 3 && counters.icrcErrors == 0)
    }

    @Test func segmentsSealedOverTheWrongIdentificationFailTheirICRC() throws {
        let peer = try ScriptedPeer(mtu: 1024)
        try peer.postReceive(id: 9, peer.element(0, 4096))
        let payload = [UInt8](repeating: 0x41, count: 3000)
        // Every segment sealed as a lone datagram (ID 0): only the first is what segmentation gives.
        peer.network.inject(superDatagram(peer, identifications: [0, 0, 0], payload: payload), from: peer.peer, to: peer.engine)
        peer.device.progress()
        #expect(peer.completions().filter { $0.opcode == .receive }.isEmpty)
        #expect(peer.device.snapshotCounters().icrcErrors == 2)
    }

    @Test func hostileSuperDatagramsAreDroppedAndCounted() throws {
        let peer = try ScriptedPeer(mtu: 1024)
        var random = SystemRandomNumberGenerator()
        let opener = TransportHeaders(BaseTransportHeader(opcode: .rcSendMiddle, destinationQP: peer.qp.queuePairNumber, psn: peer.receivePSN))
        let first = peer.sealed(opener, payload: [UInt8](repeating: 1, count: 1024))
        // An opener followed by garbage of many lengths (1 byte up to the largest datagram), an
        // opener naming no QP, an opener whose MTU does not match the QP's.
        var datagrams: [[UInt8]] = [1, 3, 12, 1040, 4000, 65_000 - first.count].map { tail in
            first + (0..<tail).map { _ in UInt8.random(in: 0...255, using: &random) }
        }
        var unknown = first
        unknown[7] ^= 0x55
        datagrams.append(unknown + first)
        let wrongMTU = TransportHeaders(BaseTransportHeader(opcode: .rcRDMAWriteMiddle, destinationQP: peer.qp.queuePairNumber, psn: peer.receivePSN))
        datagrams.append(peer.sealed(wrongMTU, payload: [UInt8](repeating: 2, count: 2048)))
        for datagram in datagrams {
            peer.network.inject(datagram, from: peer.peer, to: peer.engine)
            peer.device.progress()
        }
        let counters = peer.device.snapshotCounters()
        #expect(counters.icrcErrors + counters.malformedPackets + counters.unknownQueuePair >= UInt64(datagrams.count))
        #expect(peer.completions().isEmpty)
        // The QP still works: an honest SEND ONLY completes.
        try peer.postReceive(id: 1, peer.element(0, 64))
        peer.request(.rcSendOnly, psn: peer.receivePSN, payload: [9, 9, 9])
        #expect(peer.completions().contains { $0.id == 1 && $0.status == .success && $0.byteLength == 3 })
    }

    /// `soft_fault_corrupt` counts corrupted datagrams that leave, so a corrupted one that is
    /// also duplicated counts twice: the receiver sees two bad ICRCs (the bound the real-socket
    /// test below checks; counted once, a run with both faults on one datagram broke it).
    @Test func aCorruptedDuplicateCountsAsTwoCorruptions() throws {
        let network = InMemoryNetwork()
        let (from, to) = (WireEndpoint(.ipv4(0x0A00_0001), port: 4791), WireEndpoint(.ipv4(0x0A00_0002), port: 4791))
        _ = network.attach(to)
        let wire = FaultInjectingWire(wrapping: network.attach(from), faults: SoftFaultInjection(seed: 7, duplicate: 1, corrupt: 1),
                                      clock: .manual(ManualClock()))
        let original = [UInt8](repeating: 0x33, count: 64)
        for _ in 0..<10 {
            _ = wire.prepareSend(length: original.count, from: from.port, to: to, trafficClass: .unmarked, batchRole: .none)
            _ = original.withUnsafeBytes { wire.send($0, from: from.port, to: to, trafficClass: .unmarked) }
        }
        let delivered = network.take(for: to)
        #expect(delivered.count == 20)
        let damaged = delivered.filter { $0.bytes != original }.count
        #expect(damaged == 20)
        #expect(wire.tally.duplicates == 10)
        #expect(wire.tally.corruptions == UInt64(damaged), "\(damaged) damaged datagrams delivered, \(wire.tally.corruptions) counted")
    }

    // MARK: - On real sockets

    @Test(arguments: [ICRCVerification.automatic, .assumeZeroIdentification])
    func bulkTransfersLeaveAsSuperDatagramsAndArriveIntact(icrc: ICRCVerification) throws {
        let pair = try EnginePair(transport: .udp, icrc: icrc, udpAddresses: (.ipv4(0x7F00_0C01), .ipv4(0x7F00_0C02)))
        try transfer(pair)
        let a = pair.deviceA.snapshotCounters(), b = pair.deviceB.snapshotCounters()
        // 1 MiB WRITE: 256 packets at MTU 4096, in windows of 64: many batches each way.
        #expect(a.superDatagramsSent >= 8, "A sent \(a.superDatagramsSent) super-datagrams")
        #expect(b.superDatagramsSent >= 4, "B (READ responses) sent \(b.superDatagramsSent)")
        #expect(b.superDatagramsReceived >= 8 && a.superDatagramsReceived >= 4)
        #expect(a.icrcErrors == 0 && b.icrcErrors == 0)
        #expect(a.malformedPackets == 0 && b.malformedPackets == 0)
        // Nothing was lost and resent: batching must not cost retransmissions on loopback.
        #expect(a.completerRetry == 0 && b.duplicateRequest == 0)
    }

    /// Loss, corruption, reordering and duplication injected on a real socket pair: packets
    /// still leave in super-datagrams (before, a fault wire sent every packet alone), segments
    /// of them are lost and corrupted, the retransmissions repair it and every byte arrives,
    /// with no segment failing its ICRC except the ones corrupted on purpose.
    @Test(arguments: [ICRCVerification.automatic, .assumeZeroIdentification])
    func superDatagramsUnderInjectedFaultsStillDeliverEveryByte(icrc: ICRCVerification) throws {
        let faults = SoftFaultInjection(seed: 41, drop: 0.02, duplicate: 0.01, reorder: 0.01, corrupt: 0.01)
        let pair = try EnginePair(transport: .udp, faults: faults, timeout: 8, icrc: icrc,
                                  udpAddresses: (.ipv4(0x7F00_0C05), .ipv4(0x7F00_0C06)))
        try transfer(pair)
        let a = pair.deviceA.snapshotCounters(), b = pair.deviceB.snapshotCounters()
        #expect(a.superDatagramsSent >= 4 && b.superDatagramsSent >= 2,
                "super-datagrams sent under faults: A \(a.superDatagramsSent), B \(b.superDatagramsSent)")
        #expect(b.superDatagramsReceived >= 4)
        #expect(a.injectedDrops + b.injectedDrops > 0 && a.completerRetry + a.receivedSequenceError > 0, "faults happened and were repaired")
        // Only the packets corrupted on purpose fail their ICRC: a segment sealed over the wrong
        // Identification (a dropped or held-back one shifting the batch) would add to this.
        #expect(a.icrcErrors + b.icrcErrors <= a.injectedCorruptions + b.injectedCorruptions,
                "ICRC errors \(a.icrcErrors + b.icrcErrors), corruptions injected \(a.injectedCorruptions + b.injectedCorruptions)")
    }

    @Test func turnedOffEveryPacketLeavesAlone() throws {
        let pair = try EnginePair(transport: .udp, segmentationOffload: false, udpAddresses: (.ipv4(0x7F00_0C01), .ipv4(0x7F00_0C02)))
        try transfer(pair)
        #expect(pair.deviceA.snapshotCounters().superDatagramsSent == 0)
        #expect(pair.deviceB.snapshotCounters().superDatagramsReceived == 0)
    }
}
