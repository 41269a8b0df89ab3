import RoCEWire
import Testing

/// The codec against packets built by scapy (tools/roce-vectors/generate.py).
@Suite struct GoldenVectorTests {
    @Test func vectorsCoverEveryOpcodeBothIPVersionsAndEveryPad() {
        let vectors = GoldenVector.all
        for opcode in Opcode.allKnown {
            for version in [4, 6] {
                #expect(vectors.contains { $0.opcode == opcode.rawValue && $0.ipVersion == version }, "\(opcode) IPv\(version)")
            }
        }
        #expect(Set(vectors.map(\.bth.padCount)) == [0, 1, 2, 3])
        #expect(vectors.contains { $0.immData != nil } && vectors.contains { $0.immData == nil })
    }

    @Test(arguments: GoldenVector.all)
    func parsesAsScapyBuilt(vector: GoldenVector) throws {
        let bytes = [UInt8](hex: vector.udpPayload)
        try bytes.withUnsafeBytes { raw in
            let packet = try RoCEPacket(parsing: raw)
            #expect(packet.headers == vector.expectedHeaders)
            #expect(packet.padCount == vector.bth.padCount)
            #expect(packet.payloadRange.lowerBound == vector.headerLength)
            #expect(Array(packet.payload(in: raw)) == [UInt8](hex: vector.payload))
            #expect(packet.icrc == vector.icrc)
            #expect(packet.byteCount == bytes.count)
            if let name = vector.opcodeName {
                #expect(packet.headers.bth.opcode.description == name)
            }
            #expect((CNP(packet.headers) != nil) == (vector.opcode == 0x81))
        }
    }

    @Test(arguments: GoldenVector.all)
    func icrcMatchesScapyForTheWholeIPPacket(vector: GoldenVector) throws {
        let bytes = [UInt8](hex: vector.ipPacket)
        try bytes.withUnsafeBytes { raw in
            #expect(try ICRC.compute(ipPacket: raw) == vector.icrc)
            try ICRC.verify(ipPacket: raw)
            let (encapsulation, range) = try RoCEEncapsulation.parse(ipPacket: raw)
            #expect(encapsulation == vector.encapsulation)
            #expect(Array(raw[range]) == [UInt8](hex: vector.udpPayload))
        }
    }

    @Test(arguments: GoldenVector.all)
    func icrcMatchesScapyForTheUDPPayloadPlusKnownFields(vector: GoldenVector) throws {
        let bytes = [UInt8](hex: vector.udpPayload)
        try bytes.withUnsafeBytes { raw in
            #expect(try ICRC.compute(transportPacket: raw, encapsulation: vector.encapsulation) == vector.icrc)
            try ICRC.verify(transportPacket: raw, encapsulation: vector.encapsulation)
        }
    }

    /// Building the same headers and payload gives scapy's bytes, ICRC included. The one
    /// allowed difference is BTH byte 4's reserved bits, which the generator sometimes sets
    /// (they are masked from the ICRC) and RoCEWire always writes as zero.
    @Test(arguments: GoldenVector.all)
    func serializesToScapysBytes(vector: GoldenVector) throws {
        var expected = [UInt8](hex: vector.udpPayload)
        expected[4] &= 0xC0
        let payload = [UInt8](hex: vector.payload)
        var built = [UInt8](repeating: 0xAA, count: expected.count + 7)
        let length = try built.withUnsafeMutableBytes { out in
            let n = try payload.withUnsafeBytes { try RoCEPacket.serialize(headers: vector.expectedHeaders, payload: $0, into: out) }
            try ICRC.seal(transportPacket: .init(rebasing: out[..<n]), encapsulation: vector.encapsulation)
            return n
        }
        #expect(length == RoCEPacket.serializedByteCount(headers: vector.expectedHeaders, payloadLength: payload.count))
        #expect(Array(built[..<length]) == expected)
    }

    /// Sealing the whole IP packet rewrites scapy's ICRC with the same value.
    @Test(arguments: GoldenVector.all.filter { $0.bth.padCount == 3 || $0.opcode == 0x81 })
    func sealsWholeIPPacket(vector: GoldenVector) throws {
        let original = [UInt8](hex: vector.ipPacket)
        var bytes = original
        bytes.replaceSubrange((bytes.count - 4)..., with: [0, 0, 0, 0])
        try bytes.withUnsafeMutableBytes { try ICRC.seal(ipPacket: $0) }
        #expect(bytes == original)
    }
}
