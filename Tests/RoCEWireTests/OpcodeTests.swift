import RoCEWire
import Testing

@Suite struct OpcodeTests {
    @Test func knowsRCUCUDAndCNP() {
        #expect(Opcode.allKnown.count == 23 + 12 + 2 + 1)
        #expect(Opcode.allKnown.filter { $0.transport == .reliableConnected }.count == 23)
        #expect(Opcode.allKnown.filter { $0.transport == .unreliableConnected }.count == 12)
        let datagram: [UInt8] = Opcode.allKnown.filter { $0.transport == .unreliableDatagram }.map(\.rawValue)
        #expect(datagram == [0x64, 0x65])
        #expect(Opcode(rawValue: 0x15) == nil)   // RESYNC is RD-only
        #expect(Opcode(rawValue: 0x44) == nil)   // RD
    }

    /// Header lengths as rxe_opcode.c lists them (BTH onward, without payload).
    @Test func headerLengthsMatchRxe() {
        let expected: [Opcode: Int] = [
            .rcSendOnly: 12, .rcSendOnlyWithImmediate: 16, .rcSendOnlyWithInvalidate: 16,
            .rcRDMAWriteFirst: 28, .rcRDMAWriteOnlyWithImmediate: 32, .rcRDMAWriteLastWithImmediate: 16,
            .rcRDMAReadRequest: 28, .rcRDMAReadResponseFirst: 16, .rcRDMAReadResponseMiddle: 12,
            .rcAcknowledge: 16, .rcAtomicAcknowledge: 24, .rcCompareSwap: 40, .rcFetchAdd: 40,
            .udSendOnly: 20, .udSendOnlyWithImmediate: 24, .congestionNotification: 28,
        ]
        for (opcode, length) in expected {
            #expect(opcode.headerLength == length, "\(opcode)")
        }
    }

    @Test func classification() {
        #expect(Opcode.rcRDMAWriteLastWithImmediate.hasImmediateData)
        #expect(Opcode.rcRDMAWriteLastWithImmediate.position == .last)
        #expect(Opcode.ucSendMiddle.position == .middle)
        #expect(Opcode.rcSendOnlyWithInvalidate.hasInvalidate)
        #expect(Opcode.rcRDMAReadResponseLast.isResponse && !Opcode.rcRDMAReadResponseLast.isRequest)
        #expect(Opcode.rcFetchAdd.isRequest && Opcode.rcFetchAdd.operation == .fetchAdd)
        #expect(!Opcode.congestionNotification.isRequest && !Opcode.congestionNotification.isResponse)
        #expect(Opcode.udSendOnly.extendedHeaders == .datagram)
        #expect(!Opcode.rcRDMAReadRequest.carriesPayload && Opcode.rcRDMAReadResponseOnly.carriesPayload)
        for opcode in Opcode.allKnown {
            #expect(opcode.isRequest != opcode.isResponse || opcode == .congestionNotification)
        }
    }

    @Test func names() {
        #expect(Opcode.rcSendOnlyWithImmediate.description == "RC_SEND_ONLY_WITH_IMMEDIATE")
        #expect(Opcode.ucRDMAWriteFirst.description == "UC_RDMA_WRITE_FIRST")
        #expect(Opcode.udSendOnly.description == "UD_SEND_ONLY")
        #expect(Opcode.rcSendLastWithInvalidate.description == "RC_SEND_LAST_WITH_INVALIDATE")
        #expect(Opcode.congestionNotification.description == "CNP")
    }
}

@Suite struct HeaderValueTests {
    @Test func aethSyndromes() {
        typealias S = AETH.Syndrome
        #expect(S.ack().rawValue == 0x1F)
        #expect(S(rawValue: 0x05).kind == .ack(credits: 5))
        #expect(S(rawValue: 0x2E).kind == .receiverNotReady(timer: 0x0E))
        #expect(S(rawValue: 0x60).kind == .nak(.psnSequenceError))
        #expect(S.nak(.remoteAccessError).rawValue == 0x62)
        #expect(S(rawValue: 0x63).kind == .nak(.remoteOperationalError))
        #expect(S(rawValue: 0x40).kind == .reserved)
        #expect(S(rawValue: 0x80).kind == .reserved)
        var aeth = AETH(syndrome: .ack(), messageSequenceNumber: 0x0100_0002)
        #expect(aeth.messageSequenceNumber == 2)
        aeth.messageSequenceNumber = 0xFFFF_FFFF
        #expect(aeth.messageSequenceNumber == 0xFF_FFFF)
    }

    @Test func cnpBuildsAndIsRecognised() throws {
        let cnp = CNP(destinationQP: 0x1234, partitionKey: 0x8001)
        var bytes = [UInt8](repeating: 0xEE, count: CNP.byteCount)
        let n = try bytes.withUnsafeMutableBytes { out in
            try RoCEPacket.serialize(headers: cnp.headers, payload: UnsafeRawBufferPointer(start: nil, count: 0), into: out)
        }
        #expect(n == 32)
        #expect(bytes[0] == 0x81 && bytes[4] == 0x40)            // opcode, BECN
        #expect(bytes[12 ..< 32].allSatisfy { $0 == 0 })          // reserved + unsealed ICRC
        let parsed = try bytes.withUnsafeBytes { try RoCEPacket(parsing: $0) }
        #expect(CNP(parsed.headers) == cnp)
        #expect(parsed.payloadRange.isEmpty)
    }

    @Test func addresses() {
        #expect(RoCEEncapsulation.IPv4Address("10.0.0.1")?.rawValue == 0x0A00_0001)
        #expect(RoCEEncapsulation.IPv4Address("10.0.0.256") == nil)
        #expect(RoCEEncapsulation.IPv4Address(192, 168, 1, 7).description == "192.168.1.7")
        let mapped = RoCEEncapsulation.IPv6Address(ipv4Mapped: .init(10, 0, 0, 1))
        #expect(RoCEEncapsulation.IPv6Address("::ffff:10.0.0.1") == mapped)
        #expect(mapped.description == "::ffff:10.0.0.1")
        #expect(RoCEEncapsulation.IPv6Address("fe80::1") == .init(high: 0xFE80_0000_0000_0000, low: 1))
        #expect(RoCEEncapsulation.IPv6Address(bytes: [UInt8](repeating: 0, count: 15) + [1]) == .init(high: 0, low: 1))
        #expect(RoCEEncapsulation.IPv6Address(bytes: [1, 2]) == nil)
        #expect(RoCEEncapsulation.IPv6Address("not an address") == nil)
    }

    @Test func crc32IsZlibs() {
        let text = Array("123456789".utf8)
        #expect(text.withUnsafeBytes { CRC32.update(0, $0) } == 0xCBF4_3926)   // the CRC-32 check value
        let split = text.withUnsafeBytes { raw in
            CRC32.update(CRC32.update(0, .init(rebasing: raw[..<4])), .init(rebasing: raw[4...]))
        }
        #expect(split == 0xCBF4_3926)
    }
}
