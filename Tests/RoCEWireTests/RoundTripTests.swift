import RoCEWire
import Testing

/// Build → seal → parse → equal, over random headers, payloads and encapsulations.
@Suite struct RoundTripTests {
    static let iterations = 3000

    @Test func randomPacketsRoundTrip() throws {
        var rng = SplitMix64(seed: 0x5EED_4791)
        var buffer = [UInt8](repeating: 0, count: 9000)
        var seenPads = Set<Int>()
        for _ in 0 ..< Self.iterations {
            let headers = Self.randomHeaders(using: &rng)
            let opcode = headers.bth.opcode
            let payloadLength = opcode.carriesPayload ? Self.randomPayloadLength(using: &rng) : 0
            let payload = (0 ..< payloadLength).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
            let encapsulation = Self.randomEncapsulation(using: &rng)

            try buffer.withUnsafeMutableBytes { out in
                let length = try payload.withUnsafeBytes { try RoCEPacket.serialize(headers: headers, payload: $0, into: out) }
                let packetBytes = UnsafeMutableRawBufferPointer(rebasing: out[..<length])
                try ICRC.seal(transportPacket: packetBytes, encapsulation: encapsulation)

                let raw = UnsafeRawBufferPointer(packetBytes)
                let parsed = try RoCEPacket(parsing: raw)
                #expect(parsed.headers == headers)
                #expect(Array(parsed.payload(in: raw)) == payload)
                #expect(parsed.padCount == RoCEPacket.padCount(forPayloadLength: payloadLength))
                #expect(parsed.byteCount == length)
                try ICRC.verify(transportPacket: raw, encapsulation: encapsulation)
                seenPads.insert(parsed.padCount)

                // FECN/BECN live in the masked byte: flipping them keeps the ICRC valid.
                packetBytes[4] ^= 0xC0
                try ICRC.verify(transportPacket: raw, encapsulation: encapsulation)
                packetBytes[4] ^= 0xC0

                // Any other single-bit error before the ICRC is caught (CRC-32 detects them all).
                let bit = Int.random(in: 0 ..< (length - 4) * 8, using: &rng)
                if bit / 8 != 4 {
                    packetBytes[bit / 8] ^= 1 << (bit % 8)
                    #expect(throws: RoCEWireError.self) { try ICRC.verify(transportPacket: raw, encapsulation: encapsulation) }
                    packetBytes[bit / 8] ^= 1 << (bit % 8)
                }

                // The ICRC also covers the encapsulation: another source port fails.
                var moved = encapsulation
                moved.sourcePort &+= 1
                #expect(throws: RoCEWireError.self) { try ICRC.verify(transportPacket: raw, encapsulation: moved) }
            }
        }
        #expect(seenPads == [0, 1, 2, 3])
    }

    /// A whole IP packet assembled around a random packet verifies through both entry points.
    @Test func wholeIPPacketAgreesWithTransportEntryPoint() throws {
        var rng = SplitMix64(seed: 17)
        for _ in 0 ..< 500 {
            let headers = Self.randomHeaders(using: &rng)
            let payload = [UInt8](repeating: 0x5A, count: headers.bth.opcode.carriesPayload ? Self.randomPayloadLength(using: &rng) : 0)
            let encapsulation = Self.randomEncapsulation(using: &rng)
            var transport = [UInt8](repeating: 0, count: RoCEPacket.serializedByteCount(headers: headers, payloadLength: payload.count))
            try transport.withUnsafeMutableBytes { out in
                _ = try payload.withUnsafeBytes { try RoCEPacket.serialize(headers: headers, payload: $0, into: out) }
                try ICRC.seal(transportPacket: out, encapsulation: encapsulation)
            }
            // Random values in the masked IP/UDP fields must not matter.
            var ip = IPHeaderBuilder.header(for: encapsulation, transportLength: transport.count, using: &rng) + transport
            try ip.withUnsafeBytes { try ICRC.verify(ipPacket: $0) }
            ip[ip.count - 1] ^= 0x01
            #expect(throws: RoCEWireError.self) { try ip.withUnsafeBytes { try ICRC.verify(ipPacket: $0) } }
        }
    }

    // MARK: - Generators

    static func randomHeaders(using rng: inout SplitMix64) -> TransportHeaders {
        let opcode = Opcode.allKnown.randomElement(using: &rng)!
        var headers = TransportHeaders(BaseTransportHeader(
            opcode: opcode,
            solicitedEvent: Bool.random(using: &rng),
            migrationRequest: Bool.random(using: &rng),
            partitionKey: UInt16.random(in: 0 ... .max, using: &rng),
            forwardCongestion: Bool.random(using: &rng),
            backwardCongestion: Bool.random(using: &rng),
            destinationQP: QueuePairNumber(exactly: UInt32.random(in: 0 ... QueuePairNumber.mask, using: &rng))!,
            ackRequest: Bool.random(using: &rng),
            psn: PacketSequenceNumber(truncating: UInt32.random(in: 0 ... .max, using: &rng))
        ))
        let set = opcode.extendedHeaders
        func u32() -> UInt32 { UInt32.random(in: 0 ... .max, using: &rng) }
        func u64() -> UInt64 { UInt64.random(in: 0 ... .max, using: &rng) }
        if set.contains(.datagram) { headers.datagram = DETH(queueKey: u32(), sourceQP: QueuePairNumber(exactly: u32() & QueuePairNumber.mask)!) }
        if set.contains(.rdma) { headers.rdma = RETH(virtualAddress: u64(), remoteKey: u32(), dmaLength: u32()) }
        if set.contains(.atomic) { headers.atomic = AtomicETH(virtualAddress: u64(), remoteKey: u32(), swapOrAdd: u64(), compare: u64()) }
        if set.contains(.acknowledge) {
            headers.acknowledge = AETH(syndrome: .init(rawValue: UInt8(truncatingIfNeeded: u32())), messageSequenceNumber: u32() & 0xFF_FFFF)
        }
        if set.contains(.atomicAcknowledge) { headers.atomicAcknowledge = AtomicAckETH(originalRemoteData: u64()) }
        if set.contains(.immediateData) { headers.immediateData = ImmediateData(u32()) }
        if set.contains(.invalidate) { headers.invalidate = IETH(remoteKey: u32()) }
        return headers
    }

    static func randomPayloadLength(using rng: inout SplitMix64) -> Int {
        switch Int.random(in: 0 ..< 4, using: &rng) {
        case 0: Int.random(in: 0 ... 8, using: &rng)
        case 1: Int.random(in: 0 ... 300, using: &rng)
        default: Int.random(in: 0 ... 4096, using: &rng)
        }
    }

    static func randomEncapsulation(using rng: inout SplitMix64) -> RoCEEncapsulation {
        let network: RoCEEncapsulation.Network = if Bool.random(using: &rng) {
            .ipv4(source: .init(rawValue: .random(in: 0 ... .max, using: &rng)),
                  destination: .init(rawValue: .random(in: 0 ... .max, using: &rng)),
                  identification: Bool.random(using: &rng) ? 0 : .random(in: 0 ... .max, using: &rng),
                  flagsAndFragmentOffset: Bool.random(using: &rng) ? 0x4000 : 0)
        } else {
            .ipv6(source: .init(high: .random(in: 0 ... .max, using: &rng), low: .random(in: 0 ... .max, using: &rng)),
                  destination: .init(high: .random(in: 0 ... .max, using: &rng), low: .random(in: 0 ... .max, using: &rng)))
        }
        return RoCEEncapsulation(network: network, sourcePort: .random(in: 0xC000 ... 0xFFFF, using: &rng))
    }
}

/// Builds IP + UDP headers by hand for tests, with random values in the fields the ICRC
/// masks (TOS/TTL/checksum, traffic class/flow label/hop limit, UDP checksum).
enum IPHeaderBuilder {
    static func header(for encapsulation: RoCEEncapsulation, transportLength: Int, using rng: inout SplitMix64) -> [UInt8] {
        func be16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        func be32(_ v: UInt32) -> [UInt8] { be16(Int(v >> 16)) + be16(Int(v & 0xFFFF)) }
        func be64(_ v: UInt64) -> [UInt8] { be32(UInt32(v >> 32)) + be32(UInt32(truncatingIfNeeded: v)) }
        func byte() -> UInt8 { UInt8.random(in: 0 ... 255, using: &rng) }
        let udpLength = 8 + transportLength
        var bytes: [UInt8]
        switch encapsulation.network {
        case let .ipv4(source, destination, identification, flags):
            bytes = [0x45, byte()] + be16(20 + udpLength) + be16(Int(identification)) + be16(Int(flags))
            bytes += [byte(), 17, byte(), byte()] + be32(source.rawValue) + be32(destination.rawValue)
        case let .ipv6(source, destination):
            bytes = [0x60 | byte() & 0x0F, byte(), byte(), byte()] + be16(udpLength) + [17, byte()]
            bytes += be64(source.high) + be64(source.low) + be64(destination.high) + be64(destination.low)
        }
        return bytes + be16(Int(encapsulation.sourcePort)) + be16(Int(encapsulation.destinationPort)) + be16(udpLength) + [byte(), byte()]
    }
}
