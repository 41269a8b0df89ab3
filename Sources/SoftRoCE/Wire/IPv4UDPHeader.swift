#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The IPv4 and UDP headers in front of a datagram read from a raw socket, checked.
struct IPv4UDPHeader {
    var source: UInt32
    var sourcePort: UInt16
    var fields: IPv4HeaderFields
    /// The TOS byte: DSCP and the ECN bits a router may have set to CE.
    var trafficClass: TrafficClass
    var payloadOffset: Int
    var payloadLength: Int

    init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 28, bytes[0] >> 4 == 4, bytes[9] == UInt8(IPPROTO_UDP) else { return nil }
        let headerLength = Int(bytes[0] & 0x0F) * 4
        func word(_ offset: Int) -> UInt16 { UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]) }
        let totalLength = Int(word(2))
        guard headerLength >= 20, totalLength <= bytes.count, headerLength + 8 <= totalLength else { return nil }
        let udpLength = Int(word(headerLength + 4))
        guard udpLength >= 8, headerLength + udpLength <= totalLength else { return nil }
        source = UInt32(word(12)) << 16 | UInt32(word(14))
        sourcePort = word(headerLength)
        fields = IPv4HeaderFields(identification: word(4), flagsAndFragmentOffset: word(6))
        trafficClass = TrafficClass(rawValue: bytes[1])
        payloadOffset = headerLength + 8
        payloadLength = udpLength - 8
    }
}

extension IPv4UDPHeader {
    /// Writes a 20-byte IPv4 header (TTL 64, `trafficClass` as TOS, with its checksum) and a
    /// UDP header without checksum — what kernel rxe puts around a RoCEv2 packet on IPv4 — at `buffer`.
    static func write(into buffer: UnsafeMutableRawPointer, totalLength: Int, fields: IPv4HeaderFields, trafficClass: TrafficClass,
                      source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16) {
        var sum: UInt32 = 0
        func put(_ word: UInt16, at offset: Int) {
            buffer.storeBytes(of: word.bigEndian, toByteOffset: offset, as: UInt16.self)
            sum += UInt32(word)
        }
        put(0x4500 | UInt16(trafficClass.rawValue), at: 0)   // version 4, 20 bytes, TOS
        put(UInt16(totalLength), at: 2)
        put(fields.identification, at: 4)
        put(fields.flagsAndFragmentOffset, at: 6)
        put(0x4011, at: 8)                                   // TTL 64, UDP
        put(0, at: 10)
        put(UInt16(source >> 16), at: 12)
        put(UInt16(source & 0xFFFF), at: 14)
        put(UInt16(destination >> 16), at: 16)
        put(UInt16(destination & 0xFFFF), at: 18)
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        buffer.storeBytes(of: (~UInt16(sum)).bigEndian, toByteOffset: 10, as: UInt16.self)
        writeUDP(into: buffer + 20, length: totalLength - 20, sourcePort: sourcePort, destinationPort: destinationPort)
    }

    /// A UDP header without checksum (permitted on IPv4; rxe sends so).
    static func writeUDP(into buffer: UnsafeMutableRawPointer, length: Int, sourcePort: UInt16, destinationPort: UInt16) {
        buffer.storeBytes(of: sourcePort.bigEndian, as: UInt16.self)
        buffer.storeBytes(of: destinationPort.bigEndian, toByteOffset: 2, as: UInt16.self)
        buffer.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 4, as: UInt16.self)
        buffer.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
    }
}
