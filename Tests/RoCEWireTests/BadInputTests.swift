import RoCEWire
import Testing

/// Every way a packet can be wrong gives its own typed error, never a trap.
@Suite struct BadInputTests {
    /// A valid RC SEND ONLY WITH IMMEDIATE, 5 bytes of payload (pad 3), sealed for `flow`.
    static let flow = RoCEEncapsulation(network: .ipv4(source: .init(10, 0, 0, 1), destination: .init(10, 0, 0, 2)), sourcePort: 0xC001)
    static func validPacket(payload: [UInt8] = [1, 2, 3, 4, 5]) -> [UInt8] {
        let headers = TransportHeaders(BTH(opcode: .rcSendOnlyWithImmediate, destinationQP: 0x11, psn: 9), immediateData: ImmDt(7))
        var bytes = [UInt8](repeating: 0, count: RoCEPacket.serializedByteCount(headers: headers, payloadLength: payload.count))
        bytes.withUnsafeMutableBytes { out in
            _ = try! payload.withUnsafeBytes { try RoCEPacket.serialize(headers: headers, payload: $0, into: out) }
            try! ICRC.seal(transportPacket: out, encapsulation: flow)
        }
        return bytes
    }

    func parse(_ bytes: [UInt8]) throws -> RoCEPacket {
        try bytes.withUnsafeBytes { try RoCEPacket(parsing: $0) }
    }

    func expectError(_ expected: RoCEWireError, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { try parse(bytes) }
    }

    @Test func validPacketParses() throws {
        let packet = try parse(Self.validPacket())
        #expect(packet.padCount == 3)
        #expect(packet.headers.immediateData == ImmDt(7))
    }

    @Test func truncated() {
        expectError(.truncated(needed: 16, available: 0), [])
        expectError(.truncated(needed: 16, available: 15), Array(Self.validPacket().prefix(15)))
        // BTH + ICRC present, but the ImmDt the opcode announces is not.
        expectError(.truncated(needed: 20, available: 16), Array(Self.validPacket().prefix(16)))
        // Every prefix of a valid packet is rejected, none traps: by the parser, or — where
        // the prefix happens to be well-formed, like 24 bytes here (one payload byte, pad 3) —
        // by the ICRC.
        let valid = Self.validPacket()
        for length in 0 ..< valid.count {
            let prefix = Array(valid.prefix(length))
            #expect(throws: RoCEWireError.self) {
                _ = try parse(prefix)
                try prefix.withUnsafeBytes { try ICRC.verify(transportPacket: $0, encapsulation: Self.flow) }
            }
        }
    }

    @Test(arguments: [0x15, 0x18, 0x2C, 0x40, 0x44, 0x5F, 0x60, 0x66, 0x80, 0x82, 0xC0, 0xFF] as [UInt8])
    func unknownOpcode(raw: UInt8) {
        var bytes = Self.validPacket()
        bytes[0] = raw
        expectError(.unknownOpcode(raw), bytes)
    }

    @Test func badTransportVersion() {
        var bytes = Self.validPacket()
        bytes[1] |= 0x01
        expectError(.badTransportVersion(1), bytes)
    }

    @Test func padExceedsPayload() {
        // RC SEND ONLY without payload but claiming three bytes of pad.
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes[0] = Opcode.rcSendOnly.rawValue
        bytes[1] = 0x30
        expectError(.padExceedsPayload(padCount: 3, available: 0), bytes)
    }

    @Test func unalignedLength() {
        expectError(.unalignedLength(29), Self.validPacket() + [0])
    }

    @Test func unexpectedPayload() {
        var bytes = [UInt8](repeating: 0, count: 12 + 4 + 4 + 4)   // BTH, AETH, 4 stray bytes, ICRC
        bytes[0] = Opcode.rcAcknowledge.rawValue
        expectError(.unexpectedPayload(.rcAcknowledge, byteCount: 4), bytes)
    }

    @Test func wrongICRC() throws {
        var bytes = Self.validPacket()
        let good = try parse(bytes).icrc
        bytes[bytes.count - 1] ^= 0xFF
        let bad = good ^ 0xFF00_0000
        #expect(throws: RoCEWireError.icrcMismatch(received: bad, computed: good)) {
            try bytes.withUnsafeBytes { try ICRC.verify(transportPacket: $0, encapsulation: Self.flow) }
        }
    }

    @Test func icrcOfTooShortOrTooLongPacket() {
        func compute(count: Int) throws -> UInt32 {
            try [UInt8](repeating: 0, count: count).withUnsafeBytes { try ICRC.compute(transportPacket: $0, encapsulation: Self.flow) }
        }
        #expect(throws: RoCEWireError.truncated(needed: 16, available: 15)) { try compute(count: 15) }
        #expect(throws: RoCEWireError.packetTooLarge(byteCount: 65_508, limit: 65_507)) { try compute(count: 65_508) }
    }

    // MARK: Serializing

    func serialize(_ headers: TransportHeaders, payloadLength: Int = 0, bufferSize: Int = 64) throws -> Int {
        var buffer = [UInt8](repeating: 0, count: bufferSize)
        return try buffer.withUnsafeMutableBytes { out in
            try [UInt8](repeating: 1, count: payloadLength).withUnsafeBytes { try RoCEPacket.serialize(headers: headers, payload: $0, into: out) }
        }
    }

    @Test func headerMismatch() {
        let missingRETH = TransportHeaders(BTH(opcode: .rcRDMAWriteOnly, destinationQP: 1, psn: 1))
        let extraRETH = TransportHeaders(BTH(opcode: .rcSendOnly, destinationQP: 1, psn: 1),
                                         rdma: RETH(virtualAddress: 0, remoteKey: 0, dmaLength: 0))
        #expect(throws: RoCEWireError.headerMismatch(.rcRDMAWriteOnly, expected: .rdma, supplied: [])) { try serialize(missingRETH) }
        #expect(throws: RoCEWireError.headerMismatch(.rcSendOnly, expected: [], supplied: .rdma)) { try serialize(extraRETH) }
    }

    @Test func serializeRefusesPayloadOnOpcodeWithoutOne() {
        let ack = TransportHeaders(BTH(opcode: .rcAcknowledge, destinationQP: 1, psn: 1),
                                   acknowledge: AETH(syndrome: .ack(), messageSequenceNumber: 0))
        #expect(throws: RoCEWireError.unexpectedPayload(.rcAcknowledge, byteCount: 3)) { try serialize(ack, payloadLength: 3) }
    }

    @Test func bufferTooSmall() {
        let headers = TransportHeaders(BTH(opcode: .rcSendOnly, destinationQP: 1, psn: 1))
        #expect(throws: RoCEWireError.bufferTooSmall(needed: 24, available: 20)) { try serialize(headers, payloadLength: 5, bufferSize: 20) }
    }

    // MARK: Whole IP packets

    static func ipv4Packet() -> [UInt8] {
        let transport = validPacket()
        var rng = SplitMix64(seed: 1)
        return IPHeaderBuilder.header(for: flow, transportLength: transport.count, using: &rng) + transport
    }

    func expectIPError(_ expected: RoCEWireError, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { try bytes.withUnsafeBytes { try ICRC.verify(ipPacket: $0) } }
    }

    @Test func ipPacketErrors() throws {
        let good = Self.ipv4Packet()   // 20 + 8 + 28 = 56 bytes
        try good.withUnsafeBytes { try ICRC.verify(ipPacket: $0) }

        expectIPError(.truncated(needed: 28, available: 0), [])
        expectIPError(.truncated(needed: 28, available: 27), Array(good.prefix(27)))

        var bytes = good
        bytes[0] = 0x55
        expectIPError(.unsupportedNetworkHeader(.ipVersion(5)), bytes)
        bytes = good; bytes[0] = 0x46
        expectIPError(.unsupportedNetworkHeader(.ipv4Options(headerLength: 24)), bytes)
        bytes = good; bytes[6] = 0x20   // MF
        expectIPError(.unsupportedNetworkHeader(.ipv4Fragment), bytes)
        bytes = good; bytes[7] = 0x01   // fragment offset
        expectIPError(.unsupportedNetworkHeader(.ipv4Fragment), bytes)
        bytes = good; bytes[9] = 6
        expectIPError(.unsupportedNetworkHeader(.notUDP(protocol: 6)), bytes)
        bytes = good; bytes[3] += 4    // total length beyond the buffer
        expectIPError(.lengthMismatch(.ipv4TotalLength, declared: 60, actual: 56), bytes)
        bytes = good; bytes[25] -= 4   // UDP length shorter than the IP payload
        expectIPError(.lengthMismatch(.udpLength, declared: 32, actual: 36), bytes)
        // Ethernet padding after the IP packet is ignored.
        try (good + [0, 0]).withUnsafeBytes { try ICRC.verify(ipPacket: $0) }
        // The DF flag is covered by the ICRC.
        bytes = good; bytes[6] ^= 0x40
        #expect {
            try bytes.withUnsafeBytes { try ICRC.verify(ipPacket: $0) }
        } throws: { error in
            if case .icrcMismatch = error as? RoCEWireError { true } else { false }
        }
    }

    @Test func ipv6PacketErrors() throws {
        let transport = Self.validPacket()
        let flow6 = RoCEEncapsulation(network: .ipv6(source: .init("fe80::1")!, destination: .init("fe80::2")!), sourcePort: 0xC001)
        var rng = SplitMix64(seed: 2)
        var good = IPHeaderBuilder.header(for: flow6, transportLength: transport.count, using: &rng) + transport
        try good.withUnsafeMutableBytes { try ICRC.seal(ipPacket: $0) }
        try good.withUnsafeBytes { try ICRC.verify(ipPacket: $0) }

        expectIPError(.truncated(needed: 48, available: 47), Array(good.prefix(47)))
        var bytes = good
        bytes[6] = 0   // hop-by-hop options header
        expectIPError(.unsupportedNetworkHeader(.notUDP(protocol: 0)), bytes)
        bytes = good; bytes[5] += 4
        expectIPError(.lengthMismatch(.ipv6PayloadLength, declared: 40, actual: 36), bytes)
        bytes = good; bytes[45] += 4
        expectIPError(.lengthMismatch(.udpLength, declared: 40, actual: 36), bytes)
    }

    @Test func messagesNameWhatFailed() {
        let cases: [(RoCEWireError, String)] = [
            (.truncated(needed: 20, available: 16), "truncated"),
            (.bufferTooSmall(needed: 24, available: 20), "output buffer"),
            (.unknownOpcode(0x40), "0x40"),
            (.badTransportVersion(3), "transport version 3"),
            (.padExceedsPayload(padCount: 3, available: 0), "pad count 3"),
            (.lengthMismatch(.udpLength, declared: 1, actual: 2), "UDP length"),
            (.unalignedLength(29), "multiple of 4"),
            (.unexpectedPayload(.rcAcknowledge, byteCount: 4), "RC_ACKNOWLEDGE"),
            (.headerMismatch(.rcRDMAWriteOnly, expected: .rdma, supplied: []), "[RETH]"),
            (.packetTooLarge(byteCount: 70_000, limit: 65_507), "65507"),
            (.unsupportedNetworkHeader(.ipv4Fragment), "fragment"),
            (.icrcMismatch(received: 0xDEAD, computed: 0xBEEF), "0xdead"),
        ]
        for (error, fragment) in cases {
            #expect(error.description.contains(fragment), "\(error)")
        }
    }
}
