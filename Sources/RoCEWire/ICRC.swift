/// The invariant CRC of RoCEv2 (IBTA Annex A17.8, as Linux rxe and scapy compute it).
///
/// CRC-32 over: 8 bytes of 0xFF (RoCEv1's masked LRH), the IP header with TOS/TTL/checksum
/// (IPv4) or traffic class/flow label/hop limit (IPv6) set to ones, the UDP header with its
/// checksum set to ones, the BTH with byte 4 (FECN, BECN, reserved) set to ones, and the
/// rest of the packet up to the end of the pad. Those are the fields routers may change.
/// The value is stored little-endian in the packet's last four bytes.
///
/// Two ways in:
/// - a BTH-onward buffer (what a UDP socket delivers) plus the ``RoCEEncapsulation`` the
///   caller knows: `compute/verify/seal(transportPacket:encapsulation:)`;
/// - a whole IP packet (raw or packet socket): `compute/verify/seal(ipPacket:)`.
///
/// Neither copies the payload: the masked IP/UDP/BTH prefix is built on the stack and the
/// CRC then continues over the packet in place.
///
/// ```swift
/// // Sending over a UDP socket (the kernel will write IPv4 ID 0 and DF):
/// try ICRC.seal(transportPacket: packetBytes, encapsulation: flow)
/// // Receiving the same way:
/// try ICRC.verify(transportPacket: datagram, encapsulation: flow)   // throws .icrcMismatch
/// ```
public enum ICRC {
    public static let byteCount = 4

    /// zlib's CRC-32 of the 8 0xFF bytes that stand for the masked LRH: the same state as
    /// rxe's seed 0xdebb20e3, in zlib's inverted convention.
    @usableFromInline static let maskedLinkHeaderCRC: UInt32 = 0x2144_DF1C

    /// The ICRC of a packet from the BTH to the ICRC, in the given encapsulation.
    ///
    /// - Throws: `.truncated` below a BTH and an ICRC, `.packetTooLarge` beyond the UDP/IP
    ///   length fields.
    @inlinable
    public static func compute(
        transportPacket bytes: UnsafeRawBufferPointer, encapsulation: RoCEEncapsulation
    ) throws(RoCEWireError) -> UInt32 {
        let length = bytes.count
        guard length >= RoCEPacket.minimumByteCount else {
            throw .truncated(needed: RoCEPacket.minimumByteCount, available: length)
        }
        let limit = encapsulation.maximumTransportLength
        guard length <= limit else { throw .packetTooLarge(byteCount: length, limit: limit) }

        // Masked IPv6 (40) + UDP (8) + BTH (12) is 60 bytes; a tuple keeps it on the stack.
        var scratch: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        let prefixCRC = withUnsafeMutableBytes(of: &scratch) { scratch in
            let bthOffset = encapsulation.writeMaskedHeaders(into: scratch, transportLength: length)
            let bthEnd = bthOffset + BaseTransportHeader.byteCount
            scratch.baseAddress.unsafelyUnwrapped.advanced(by: bthOffset)
                .copyMemory(from: bytes.baseAddress.unsafelyUnwrapped, byteCount: BaseTransportHeader.byteCount)
            scratch[bthOffset + BaseTransportHeader.Layout.congestionByte] = 0xFF
            return CRC32.update(maskedLinkHeaderCRC, UnsafeRawBufferPointer(rebasing: scratch[..<bthEnd]))
        }
        return CRC32.update(prefixCRC, UnsafeRawBufferPointer(rebasing: bytes[BaseTransportHeader.byteCount ..< length - byteCount]))
    }

    /// Checks the ICRC of a packet from the BTH to the ICRC.
    ///
    /// - Throws: `.icrcMismatch`, or what `compute` throws.
    @inlinable
    public static func verify(
        transportPacket bytes: UnsafeRawBufferPointer, encapsulation: RoCEEncapsulation
    ) throws(RoCEWireError) {
        let computed = try compute(transportPacket: bytes, encapsulation: encapsulation)
        let received = stored(in: bytes)
        guard computed == received else { throw .icrcMismatch(received: received, computed: computed) }
    }

    /// Computes the ICRC of a packet from the BTH to the ICRC and writes it into its last
    /// four bytes.
    @inlinable
    public static func seal(
        transportPacket bytes: UnsafeMutableRawBufferPointer, encapsulation: RoCEEncapsulation
    ) throws(RoCEWireError) {
        let icrc = try compute(transportPacket: UnsafeRawBufferPointer(bytes), encapsulation: encapsulation)
        bytes.baseAddress.unsafelyUnwrapped.storeBytes(of: icrc.littleEndian, toByteOffset: bytes.count - byteCount, as: UInt32.self)
    }

    /// The ICRC of a whole IPv4 or IPv6 packet carrying RoCEv2.
    ///
    /// - Throws: what ``RoCEEncapsulation/parse(ipPacket:)`` and
    ///   ``compute(transportPacket:encapsulation:)`` throw.
    @inlinable
    public static func compute(ipPacket bytes: UnsafeRawBufferPointer) throws(RoCEWireError) -> UInt32 {
        let (encapsulation, range) = try RoCEEncapsulation.parse(ipPacket: bytes)
        return try compute(transportPacket: UnsafeRawBufferPointer(rebasing: bytes[range]), encapsulation: encapsulation)
    }

    /// Checks the ICRC of a whole IPv4 or IPv6 packet carrying RoCEv2.
    @inlinable
    public static func verify(ipPacket bytes: UnsafeRawBufferPointer) throws(RoCEWireError) {
        let (encapsulation, range) = try RoCEEncapsulation.parse(ipPacket: bytes)
        try verify(transportPacket: UnsafeRawBufferPointer(rebasing: bytes[range]), encapsulation: encapsulation)
    }

    /// Computes and writes the ICRC of a whole IPv4 or IPv6 packet carrying RoCEv2.
    @inlinable
    public static func seal(ipPacket bytes: UnsafeMutableRawBufferPointer) throws(RoCEWireError) {
        let (encapsulation, range) = try RoCEEncapsulation.parse(ipPacket: UnsafeRawBufferPointer(bytes))
        try seal(transportPacket: UnsafeMutableRawBufferPointer(rebasing: bytes[range]), encapsulation: encapsulation)
    }

    /// The ICRC carried in the last four bytes (the caller has checked there are four).
    @inlinable
    static func stored(in bytes: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(littleEndian: bytes.baseAddress.unsafelyUnwrapped.loadUnaligned(fromByteOffset: bytes.count - byteCount, as: UInt32.self))
    }
}

extension RoCEEncapsulation {
    /// The longest BTH-onward packet whose IP and UDP length fields still fit in 16 bits.
    @inlinable
    var maximumTransportLength: Int {
        switch network {
        case .ipv4: Int(UInt16.max) - Self.ipv4HeaderLength - Self.udpHeaderLength
        case .ipv6: Int(UInt16.max) - Self.udpHeaderLength
        }
    }

    /// Writes the IP and UDP headers as the ICRC sees them (masked fields all ones) and
    /// returns their length. `scratch` holds at least 48 bytes and `transportLength` is at
    /// most `maximumTransportLength`.
    @inlinable
    func writeMaskedHeaders(into scratch: UnsafeMutableRawBufferPointer, transportLength: Int) -> Int {
        let udpLength = UInt32(Self.udpHeaderLength + transportLength)
        let udpOffset: Int
        switch network {
        case let .ipv4(source, destination, identification, flagsAndFragmentOffset):
            // Version 4, IHL 5 | TOS masked | total length.
            scratch.storeBigEndian(0x45FF_0000 | UInt32(Self.ipv4HeaderLength) + udpLength, at: 0)
            scratch.storeBigEndian(UInt32(identification) << 16 | UInt32(flagsAndFragmentOffset), at: 4)
            // TTL masked | protocol UDP | header checksum masked.
            scratch.storeBigEndian(0xFF00_FFFF | UInt32(Self.udpProtocol) << 16, at: 8)
            scratch.storeBigEndian(source.rawValue, at: 12)
            scratch.storeBigEndian(destination.rawValue, at: 16)
            udpOffset = Self.ipv4HeaderLength
        case let .ipv6(source, destination):
            // Version 6 | traffic class and flow label masked.
            scratch.storeBigEndian(0x6FFF_FFFF as UInt32, at: 0)
            // Payload length | next header UDP | hop limit masked.
            scratch.storeBigEndian(udpLength << 16 | UInt32(Self.udpProtocol) << 8 | 0xFF, at: 4)
            scratch.storeBigEndian(source.high, at: 8)
            scratch.storeBigEndian(source.low, at: 16)
            scratch.storeBigEndian(destination.high, at: 24)
            scratch.storeBigEndian(destination.low, at: 32)
            udpOffset = Self.ipv6HeaderLength
        }
        scratch.storeBigEndian(UInt32(sourcePort) << 16 | UInt32(destinationPort), at: udpOffset)
        // UDP length | checksum masked.
        scratch.storeBigEndian(udpLength << 16 | 0xFFFF, at: udpOffset + 4)
        return udpOffset + Self.udpHeaderLength
    }
}
