import Congestion
import Foundation
import RoCEWire
import Testing
@testable import SoftRoCE

/// DCQCN in the engine, on the in-memory network with a manual clock: CE marks earn CNPs
/// (notification point), CNPs cut a queue pair's paced rate (reaction point), hostile CNPs
/// are dropped and counted.
@Suite("SoftRoCE DCQCN")
struct CongestionControlTests {
    static let notifying = SoftCongestionControl(dataDSCP: 26, ecnCapable: true, notificationPoint: true, cnpInterval: .microseconds(50))
    static let marked = TrafficClass(dscp: 26, ecn: .congestionExperienced)
    static let lineRate = 8.784e9

    /// An 8-byte RDMA WRITE from the peer to `queuePair` (the scripted peer's own QP by default).
    static func write(_ peer: ScriptedPeer, psn: PacketSequenceNumber, to queuePair: QueuePairNumber? = nil, trafficClass: TrafficClass) {
        var headers = TransportHeaders(BaseTransportHeader(opcode: .rcRDMAWriteOnly, destinationQP: queuePair ?? peer.qp.queuePairNumber,
                                                           ackRequest: true, psn: psn))
        headers.rdma = RETH(virtualAddress: peer.address, remoteKey: peer.region.rkey, dmaLength: 8)
        peer.deliver(headers, payload: [UInt8](repeating: 7, count: 8), trafficClass: trafficClass)
    }

    /// A CNP as mlx5 sends it, from the peer (or `source`) to `queuePair`.
    static func congestionNotification(to queuePair: QueuePairNumber, backwardCongestion: Bool = true) -> TransportHeaders {
        TransportHeaders(BaseTransportHeader(opcode: .congestionNotification, backwardCongestion: backwardCongestion, destinationQP: queuePair, psn: 0))
    }

    @Test func ceMarksEarnOneCNPPerIntervalPerQueuePair() throws {
        let peer = try ScriptedPeer(congestion: Self.notifying)
        // A second QP on the same device, connected to another QP of the peer.
        let second = try peer.device.createQueuePair(domain: peer.region.domain, type: .reliableConnected, sendQueue: peer.cq, receiveQueue: peer.cq,
                                                     sharedReceiveQueue: nil, signalAll: true, sendCapacity: 16, receiveCapacity: 16,
                                                     maxScatterGather: 1, maxInline: 0)
        try connect(peer.device, second, to: peer.peer.address, qpn: 0x9A, sendPSN: 0x10, receivePSN: 0x700, mtu: 1024, timeout: 14, retry: 7, rnr: 7)
        var psn = peer.receivePSN, secondPSN = PacketSequenceNumber(0x700)
        // Ten marked packets to each QP within 45 µs: one CNP per QP.
        for _ in 0..<10 {
            Self.write(peer, psn: psn, trafficClass: Self.marked)
            Self.write(peer, psn: secondPSN, to: second.queuePairNumber, trafficClass: Self.marked)
            psn += 1
            secondPSN += 1
            peer.clock.advance(nanoseconds: 5_000)
        }
        var cnps = peer.sent().filter { $0.opcode == .congestionNotification }
        #expect(cnps.map(\.headers.bth.destinationQP).sorted { $0.rawValue < $1.rawValue } == [peer.peerQueuePair, 0x9A])
        // Unmarked (ECT(0)) packets earn none, however late.
        peer.clock.advance(nanoseconds: 100_000)
        Self.write(peer, psn: psn, trafficClass: TrafficClass(dscp: 26, ecn: .ect0))
        psn += 1
        #expect(peer.sent().filter { $0.opcode == .congestionNotification }.isEmpty)
        // The interval has passed for the first QP: its next mark earns a CNP again.
        Self.write(peer, psn: psn, trafficClass: Self.marked)
        cnps = peer.sent().filter { $0.opcode == .congestionNotification }
        #expect(cnps.count == 1)

        let counters = peer.device.snapshotCounters()
        #expect(counters.ecnMarkedPackets == 21)
        #expect(counters.cnpsSent == 3)

        // The CNP as mlx5 sends it: BECN, P_Key 0xFFFF, PSN 0, 16 reserved zero bytes, a valid
        // ICRC, DSCP 48 with ECT(0).
        let cnp = try #require(cnps.first)
        #expect(cnp.headers.bth.backwardCongestion)
        #expect(cnp.headers.bth.partitionKey == 0xFFFF)
        #expect(cnp.headers.bth.psn == 0)
        #expect(cnp.bytes.count == 12 + 16 + 4)
        #expect(cnp.bytes[12..<28].allSatisfy { $0 == 0 })
        #expect(cnp.trafficClass == TrafficClass(rawValue: 0xC2))
        // From UDP port 0xF000, not the QP's: its ICRC covers that port.
        var bytes = cnp.bytes
        let source = WireEndpoint(peer.engine.address, port: 0xF000)
        try bytes.withUnsafeMutableBytes { try ICRC.verify(transportPacket: UnsafeRawBufferPointer($0), encapsulation: SoftDevice.encapsulation(from: source, to: peer.peer)) }
    }

    @Test func offByDefaultNothingIsMarkedReadOrAnswered() throws {
        let peer = try ScriptedPeer()
        Self.write(peer, psn: peer.receivePSN, trafficClass: Self.marked)
        let sent = peer.sent()
        #expect(sent.allSatisfy { $0.opcode != .congestionNotification && $0.trafficClass == .unmarked })
        let counters = peer.device.snapshotCounters()
        #expect(counters.ecnMarkedPackets == 0 && counters.cnpsSent == 0)
        #expect(counters.queuePairRates.isEmpty)
    }

    @Test func dataGoesOutWithTheConfiguredDSCPAndECT0() throws {
        let peer = try ScriptedPeer(congestion: Self.notifying)
        try peer.post(SoftSendRequest(id: 1, opcode: .send), peer.element(0, 100))
        peer.device.progress()
        let sent = peer.sent()
        #expect(!sent.isEmpty)
        #expect(sent.allSatisfy { $0.trafficClass == TrafficClass(rawValue: 26 << 2 | 2) })
    }

    @Test func aCNPCutsTheRateAndThePacerHoldsToIt() throws {
        let congestion = SoftCongestionControl(reactionPoint: .mlx5Like, lineRateBitsPerSecond: Self.lineRate)
        let peer = try ScriptedPeer(mtu: 1024, depth: 64, congestion: congestion)
        #expect(peer.device.snapshotCounters().queuePairRates.map(\.currentRateBitsPerSecond) == [Self.lineRate])

        peer.deliver(Self.congestionNotification(to: peer.qp.queuePairNumber))
        var expected = ReactionPoint(parameters: .mlx5Like, lineRateBitsPerSecond: Self.lineRate)
        expected.receiveCNP(at: Nanoseconds(Int64(peer.clock.nanoseconds)))
        let counters = peer.device.snapshotCounters()
        #expect(counters.cnpsHandled == 1)
        let rate = try #require(counters.queuePairRates.first)
        #expect(rate.currentRateBitsPerSecond == expected.currentRateBitsPerSecond)
        #expect(rate.currentRateBitsPerSecond < Self.lineRate * 0.51)

        // Ten one-packet WRITEs: one leaves now, the next only a packet's time at R_C later.
        for index in 0..<10 {
            try peer.post(SoftSendRequest(id: UInt64(index), opcode: .write, remoteAddress: 0x1000, remoteKey: 0x1234), peer.element(0, 1024))
        }
        peer.device.progress()
        #expect(peer.sent().count == 1)
        let packetBytes = 12 + 16 + 1024 + 4 + 42
        let gap = UInt64((Double(packetBytes) * 8e9 / rate.currentRateBitsPerSecond).rounded())
        peer.wait(nanoseconds: gap - 1)
        #expect(peer.sent().isEmpty, "the pacer let a packet out early")
        peer.wait(nanoseconds: 1)
        #expect(peer.sent().count == 1)
    }

    @Test func hostileCNPsAreDroppedAndCounted() throws {
        let congestion = SoftCongestionControl(reactionPoint: .mlx5Like, lineRateBitsPerSecond: Self.lineRate)
        let peer = try ScriptedPeer(congestion: congestion)
        // To a QP that does not exist.
        peer.deliver(Self.congestionNotification(to: 0x77_7777))
        // From an address that is not the QP's peer.
        peer.deliver(Self.congestionNotification(to: peer.qp.queuePairNumber), from: WireEndpoint(.ipv4(0x7F00_0009), port: 4791))
        // Without BECN.
        peer.deliver(Self.congestionNotification(to: peer.qp.queuePairNumber, backwardCongestion: false))
        // A corrupted ICRC.
        peer.deliver(Self.congestionNotification(to: peer.qp.queuePairNumber), corruptByte: 6)
        // Truncated: the BTH and an ICRC without the 16 reserved bytes.
        var truncated = [UInt8](repeating: 0, count: 16)
        truncated[0] = 0x81
        truncated[2] = 0xFF; truncated[3] = 0xFF
        truncated[4] = 0x40
        let number = peer.qp.number
        truncated[5] = UInt8(number >> 16 & 0xFF); truncated[6] = UInt8(number >> 8 & 0xFF); truncated[7] = UInt8(number & 0xFF)
        truncated.withUnsafeMutableBytes { bytes in
            try? ICRC.seal(transportPacket: bytes, encapsulation: SoftDevice.encapsulation(from: peer.peer, to: peer.engine))
        }
        peer.network.inject(truncated, from: peer.peer, to: peer.engine)
        peer.device.progress()

        let counters = peer.device.snapshotCounters()
        #expect(counters.unknownQueuePair == 1)
        #expect(counters.unexpectedSource == 1)
        #expect(counters.cnpsIgnored == 1)
        #expect(counters.icrcErrors == 1)
        #expect(counters.malformedPackets == 1)
        #expect(counters.cnpsHandled == 0)
        #expect(counters.queuePairRates.map(\.currentRateBitsPerSecond) == [Self.lineRate])

        // A QP without a reaction point ignores even a well-formed CNP.
        let unpaced = try ScriptedPeer()
        unpaced.deliver(Self.congestionNotification(to: unpaced.qp.queuePairNumber))
        #expect(unpaced.device.snapshotCounters().cnpsIgnored == 1)
    }

    @Test func aQueuePairCanBePacedWithoutTheDevice() throws {
        let peer = try ScriptedPeer()
        try peer.device.setReactionPoint(peer.qp, parameters: .ns3MixConfig)
        peer.deliver(Self.congestionNotification(to: peer.qp.queuePairNumber))
        let counters = peer.device.snapshotCounters()
        #expect(counters.cnpsHandled == 1)
        #expect(counters.queuePairRates.first.map { $0.currentRateBitsPerSecond < 10e9 } == true)
        var broken = DCQCNParameters.ns3MixConfig
        broken.alphaGain = 2
        #expect(throws: SoftRoCEError.self) { try peer.device.setReactionPoint(peer.qp, parameters: broken) }
    }
}

/// Our CNP read by a dissector we did not write: Wireshark's InfiniBand dissector (tshark) must
/// decode it as a RoCEv2 CNP — opcode 0x81, P_Key 0xFFFF, the peer's QP, PSN 0 — in an IP
/// header with DSCP 48 and ECT(0).
@Suite("SoftRoCE CNP capture",
       .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark"), "tshark is not installed (apt-get install tshark)"))
struct CongestionNotificationCaptureTests {
    @Test func tsharkAndScapyDecodeOurCNP() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("softroce-cnp-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).pcap").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let network = InMemoryNetwork()
        let clock = ManualClock()
        let engine = WireEndpoint(.ipv4(0x7F00_0001), port: 4791), peer = WireEndpoint(.ipv4(0x7F00_0002), port: 4791)
        let capture = try CapturingWire(wrapping: network.attach(engine), capture: PacketCapture(path: path))
        let device = SoftDevice(wire: capture, configuration: SoftDeviceConfiguration(congestion: CongestionControlTests.notifying), clock: .manual(clock))
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 64)
        defer { memory.deallocate() }
        let region = try device.registerMemory(domain: device.allocateProtectionDomain(), bytes: memory, access: [.localWrite, .remoteWrite])
        let cq = device.createCompletionQueue(capacity: 16, channel: nil)
        let qp = try device.createQueuePair(domain: region.domain, type: .reliableConnected, sendQueue: cq, receiveQueue: cq, sharedReceiveQueue: nil,
                                            signalAll: true, sendCapacity: 4, receiveCapacity: 4, maxScatterGather: 1, maxInline: 0)
        try connect(device, qp, to: peer.address, qpn: 0x99, sendPSN: 0, receivePSN: 0x20, mtu: 1024, timeout: 14, retry: 7, rnr: 7)
        var headers = TransportHeaders(BaseTransportHeader(opcode: .rcRDMAWriteOnly, destinationQP: qp.queuePairNumber, ackRequest: true, psn: 0x20))
        headers.rdma = RETH(virtualAddress: UInt64(UInt(bitPattern: memory.baseAddress!)), remoteKey: region.rkey, dmaLength: 8)
        var bytes = [UInt8](repeating: 0, count: RoCEPacket.serializedByteCount(headers: headers, payloadLength: 8))
        bytes.withUnsafeMutableBytes { buffer in
            let length = [UInt8](repeating: 1, count: 8).withUnsafeBytes { try! RoCEPacket.serialize(headers: headers, payload: $0, into: buffer) }
            try! ICRC.seal(transportPacket: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]), encapsulation: SoftDevice.encapsulation(from: peer, to: engine))
        }
        network.inject(bytes, from: peer, to: engine, trafficClass: CongestionControlTests.marked)
        device.progress()
        device.close()
        #expect(device.snapshotCounters().cnpsSent == 1)

        let text = try CaptureTests.run("/usr/bin/tshark", [
            "-r", path, "-Y", "infiniband.bth.opcode == 129", "-T", "fields", "-E", "separator=,",
            "-e", "ip.dsfield.dscp", "-e", "ip.dsfield.ecn", "-e", "infiniband.bth.opcode", "-e", "infiniband.bth.p_key",
            "-e", "infiniband.bth.destqp", "-e", "infiniband.bth.psn", "-e", "infiniband.invariant.crc", "-e", "udp.srcport", "-e", "_ws.col.Info"]).output
        let lines = text.split(separator: "\n")
        try #require(lines.count == 1, "tshark found \(lines.count) CNPs in the capture: \(text)")
        let fields = lines[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        try #require(fields.count >= 9, "\(text)")
        #expect(fields[0] == "48")
        #expect(fields[1] == "2")
        #expect(fields[2] == "129")
        #expect(fields[3] == "65535")
        #expect(fields[4] == "0x00000099" || fields[4] == "0x000099" || fields[4] == "153", "\(fields[4])")
        #expect(fields[5] == "0")
        // Wireshark 4.0 names only InfiniBand's CNP (0x80) so; RoCEv2's 0x81 (IBTA Annex A17,
        // what mlx5 sends) it shows as "Unknown OpCode" with every BTH field decoded as above.
        #expect(fields[7] == "61440", "UDP source port \(fields[7]), not mlx5's 0xF000")
        #expect(fields[8...].joined(separator: ",").contains("CNP") || fields[8...].joined(separator: ",").contains("Unknown OpCode"), "\(text)")

        // scapy's RoCE layer (not ours) decodes it as a CNP and recomputes its ICRC.
        let (status, report) = try CaptureTests.checkICRCs(path)
        #expect(status == 0, "\(report)")
        #expect(report.contains("1 CNPs (opcode 0x81, BECN, 16 reserved bytes) decoded by scapy"), "\(report)")
    }
}
