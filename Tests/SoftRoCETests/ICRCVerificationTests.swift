#if canImport(Glibc)
import Glibc
#endif
import RoCEWire
import Testing
@testable import SoftRoCE

/// Kernel rxe writes a non-zero IPv4 Identification on every packet, and the ICRC covers it;
/// a UDP socket never shows it. These tests send, through an `IP_HDRINCL` raw socket on
/// loopback, exactly what rxe sends — ID 0x1234, DF, UDP checksum 0, a valid ICRC — to
/// engines checking in each mode. Raw sockets need CAP_NET_RAW (root here and in CI).
@Suite("SoftRoCE ICRC verification on real sockets", .serialized,
       .enabled(if: geteuid() == 0, "raw sockets need CAP_NET_RAW: run as root"))
struct ICRCVerificationTests {
    /// An engine on 127.0.0.2 with one RC QP whose peer is 127.0.0.1, QPN 0x99.
    final class Target {
        let device: SoftDevice
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 64)
        let region: SoftMemoryRegion
        let qp: SoftQueuePair
        let receivePSN: PacketSequenceNumber = 0x300

        init(_ icrc: ICRCVerification) throws {
            device = try SoftDevice(configuration: SoftDeviceConfiguration(address: "127.0.0.2", port: 0, icrc: icrc))
            memory.initializeMemory(as: UInt8.self, repeating: 0)
            let domain = device.allocateProtectionDomain()
            region = try device.registerMemory(domain: domain, bytes: memory, access: [.localWrite, .remoteWrite])
            let cq = device.createCompletionQueue(capacity: 16, channel: nil)
            qp = try device.createQueuePair(domain: domain, type: .reliableConnected, sendQueue: cq, receiveQueue: cq, sharedReceiveQueue: nil,
                                            signalAll: false, sendCapacity: 4, receiveCapacity: 4, maxScatterGather: 1, maxInline: 0)
            try connect(device, qp, to: .ipv4(0x7F00_0001), qpn: 0x99, sendPSN: 0x10, receivePSN: receivePSN.rawValue,
                        mtu: 1024, timeout: 14, retry: 7, rnr: 7)
        }

        deinit {
            device.close()
            memory.deallocate()
        }

        /// A WRITE of eight 0x77 bytes as kernel rxe would send it; `corrupt` flips a payload
        /// byte after sealing. Returns once the engine has received it (bounded: 2 s).
        func receiveRxeStyleWrite(identification: UInt16 = 0x1234, corrupt: Bool = false) throws {
            var headers = TransportHeaders(BaseTransportHeader(opcode: .rcRDMAWriteOnly, destinationQP: qp.queuePairNumber,
                                                               ackRequest: true, psn: receivePSN))
            headers.rdma = RETH(virtualAddress: UInt64(UInt(bitPattern: memory.baseAddress!)), remoteKey: region.rkey, dmaLength: 8)
            let transportLength = RoCEPacket.serializedByteCount(headers: headers, payloadLength: 8)
            var packet = [UInt8](repeating: 0, count: 28 + transportLength)
            func put16(_ value: UInt16, at offset: Int) { packet[offset] = UInt8(value >> 8); packet[offset + 1] = UInt8(value & 0xFF) }
            packet[0] = 0x45
            put16(UInt16(packet.count), at: 2)
            put16(identification, at: 4)
            put16(0x4000, at: 6)                       // DF
            packet[8] = 64
            packet[9] = UInt8(IPPROTO_UDP)
            packet[12...15] = [127, 0, 0, 1]
            packet[16...19] = [127, 0, 0, 2]
            put16(0xC123, at: 20)                      // rxe's source port: a hash of the QPNs
            put16(device.port, at: 22)
            put16(UInt16(8 + transportLength), at: 24) // UDP checksum 0, as rxe sends on IPv4
            try packet.withUnsafeMutableBytes { bytes in
                let payload = [UInt8](repeating: 0x77, count: 8)
                _ = try payload.withUnsafeBytes { try RoCEPacket.serialize(headers: headers, payload: $0, into: UnsafeMutableRawBufferPointer(rebasing: bytes[28...])) }
                try ICRC.seal(ipPacket: bytes)
            }
            if corrupt { packet[28 + transportLength - 6] ^= 0x01 }
            let raw = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW))
            try #require(raw >= 0, "socket(SOCK_RAW, IPPROTO_RAW): errno \(errno)")
            defer { close(raw) }
            var destination = sockaddr_in()
            destination.sin_family = sa_family_t(AF_INET)
            destination.sin_addr.s_addr = UInt32(0x7F00_0002).bigEndian
            let sent = withUnsafePointer(to: &destination) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(raw, packet, packet.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(sent == packet.count, "sendto: errno \(errno)")
            let deadline = EngineClock.monotonicNanoseconds() + 2_000_000_000
            while device.snapshotCounters().receivedPackets == 0 && EngineClock.monotonicNanoseconds() < deadline {
                device.progress()
            }
        }

        var written: Bool { memory[0] == 0x77 && memory[7] == 0x77 }
    }

    @Test func strictChecksKernelRxesPacketsAgainstTheirRealHeader() throws {
        let target = try Target(.strict)
        #expect(target.device.icrcVerification == .strict)
        try target.receiveRxeStyleWrite()
        let counters = target.device.snapshotCounters()
        #expect(counters.receivedPackets == 1)
        #expect(counters.icrcErrors == 0)
        #expect(target.written)
    }

    @Test func strictDropsACorruptedPacketFromKernelRxe() throws {
        let target = try Target(.strict)
        try target.receiveRxeStyleWrite(corrupt: true)
        #expect(target.device.snapshotCounters().icrcErrors == 1)
        #expect(!target.written)
    }

    /// The old behaviour, now a named mode: the assumed ID 0 fails every rxe packet.
    @Test func assumingIdentificationZeroRejectsKernelRxesPackets() throws {
        let target = try Target(.assumeZeroIdentification)
        #expect(target.device.icrcVerification == .assumeZeroIdentification)
        try target.receiveRxeStyleWrite()
        #expect(target.device.snapshotCounters().icrcErrors == 1)
        #expect(!target.written)
    }

    @Test func automaticIsStrictWhereRawSocketsArePermitted() throws {
        let target = try Target(.automatic)
        #expect(target.device.icrcVerification == .strict)
        try target.receiveRxeStyleWrite(identification: 0xBEEF)
        #expect(target.written)
    }

    /// Two engines both in strict mode still talk (their own packets carry ID 0 + DF).
    @Test func strictEnginesTalkToEachOther() throws {
        // Addresses no other test uses: a datagram another test's engine sends to a port this
        // pair reuses (a peer still retransmitting, a fault-injected corruption) cannot reach it.
        let pair = try EnginePair(transport: .udp, udpAddresses: (.ipv4(0x7F00_0B01), .ipv4(0x7F00_0B02)))
        #expect(pair.deviceA.icrcVerification == .strict)
        var write = SoftSendRequest(id: 1, opcode: .write)
        write.remoteAddress = pair.address(pair.memoryB, 0)
        write.remoteKey = pair.regionB.rkey
        for i in 0..<10_000 { pair.memoryA[i] = UInt8(truncatingIfNeeded: i) }
        try pair.postA(write, pair.sgeA(0, 10_000))
        #expect(pair.completions(from: pair.cqA, count: 1).first?.status == .success)
        #expect(memcmp(pair.memoryA.baseAddress!, pair.memoryB.baseAddress!, 10_000) == 0)
        #expect(pair.deviceB.snapshotCounters().icrcErrors == 0)
    }
}
