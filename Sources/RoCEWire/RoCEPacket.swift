/// A parsed RoCEv2 packet: the headers, where the payload lies, the pad count and the ICRC
/// as carried. It describes a buffer the caller owns (a UDP payload, from the BTH to the
/// ICRC) without copying or allocating; `payload(in:)` gives the payload bytes back.
///
/// Parsing checks the structure (length, opcode, TVer, pad, payload allowed); the ICRC is
/// checked separately with ``ICRC`` because that needs the IP/UDP fields.
///
/// ```swift
/// let packet = try RoCEPacket(parsing: datagram)
/// try ICRC.verify(transportPacket: datagram, encapsulation: flow)
/// if packet.headers.bth.opcode.hasImmediateData { deliver(packet.headers.immediateData!) }
/// consume(packet.payload(in: datagram))
///
/// // Building: headers + payload into a caller buffer, then the ICRC.
/// let n = try RoCEPacket.serialize(headers: headers, payload: payload, into: sendBuffer)
/// try ICRC.seal(transportPacket: UnsafeMutableRawBufferPointer(rebasing: sendBuffer[..<n]), encapsulation: flow)
/// ```
@frozen
public struct RoCEPacket: Hashable, Sendable {
    public static let icrcByteCount = 4
    /// The shortest valid packet: a BTH and an ICRC.
    public static let minimumByteCount = BaseTransportHeader.byteCount + icrcByteCount

    public var headers: TransportHeaders
    /// Offsets of the payload (without pad) in the parsed buffer.
    public var payloadRange: Range<Int>
    /// BTH PadCnt: bytes of pad after the payload, 0–3.
    public var padCount: Int
    /// The ICRC as carried: the packet's last four bytes read little-endian, which is how
    /// ``ICRC`` returns its values.
    public var icrc: UInt32

    /// Total length of the packet: headers, payload, pad and ICRC.
    @inlinable
    public var byteCount: Int { payloadRange.upperBound + padCount + Self.icrcByteCount }

    /// Parses a packet from the BTH to the ICRC (a UDP payload), without allocating.
    ///
    /// - Throws: `.truncated`, `.unknownOpcode`, `.badTransportVersion`, `.unalignedLength`,
    ///   `.padExceedsPayload` or `.unexpectedPayload`.
    @inlinable
    public init(parsing bytes: UnsafeRawBufferPointer) throws(RoCEWireError) {
        guard bytes.count >= Self.minimumByteCount else {
            throw .truncated(needed: Self.minimumByteCount, available: bytes.count)
        }
        guard let opcode = Opcode(rawValue: bytes[0]) else { throw .unknownOpcode(bytes[0]) }
        let flags = bytes[BaseTransportHeader.Layout.flagsByte]
        let version = flags & BaseTransportHeader.Layout.transportVersionMask
        guard version == BaseTransportHeader.transportVersion else { throw .badTransportVersion(version) }
        let headerLength = opcode.headerLength
        let needed = headerLength + Self.icrcByteCount
        guard bytes.count >= needed else { throw .truncated(needed: needed, available: bytes.count) }
        // Headers are whole words, so this also says payload + pad is whole words: the one
        // pad count that fits is then the only one accepted below.
        guard bytes.count % 4 == 0 else { throw .unalignedLength(bytes.count) }
        let padCount = Int(flags >> BaseTransportHeader.Layout.padCountShift & 0x3)
        let body = bytes.count - needed
        guard padCount <= body else { throw .padExceedsPayload(padCount: padCount, available: body) }
        guard opcode.carriesPayload || body == 0 else { throw .unexpectedPayload(opcode, byteCount: body) }

        headers = TransportHeaders(unchecked: bytes, opcode: opcode)
        payloadRange = headerLength ..< headerLength + body - padCount
        self.padCount = padCount
        icrc = ICRC.stored(in: bytes)
    }

    /// The payload bytes inside `bytes`, which must be the buffer this packet was parsed from.
    @inlinable
    public func payload(in bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[payloadRange])
    }
}

// MARK: - Building

extension RoCEPacket {
    /// Pad bytes that make a payload of `payloadLength` bytes a multiple of 4.
    @inlinable
    public static func padCount(forPayloadLength payloadLength: Int) -> Int { (4 - payloadLength & 3) & 3 }

    /// The length `serialize` writes for these headers and payload length.
    @inlinable
    public static func serializedByteCount(headers: TransportHeaders, payloadLength: Int) -> Int {
        headers.byteCount + payloadLength + padCount(forPayloadLength: payloadLength) + icrcByteCount
    }

    /// Writes headers, payload, zero pad and a zero ICRC into `buffer` and returns the bytes
    /// written. The pad count in the BTH is set from the payload length. Fill in the ICRC
    /// afterwards with `ICRC.seal`.
    ///
    /// `payload` may already lie in `buffer` at offset `headers.byteCount` (the copy is a
    /// move), so a sender can read a payload straight into place and skip a copy.
    ///
    /// - Throws: `.headerMismatch` unless exactly the opcode's extension headers are set,
    ///   `.unexpectedPayload` for a non-empty payload on an opcode without one,
    ///   `.bufferTooSmall`.
    @inlinable
    public static func serialize(
        headers: TransportHeaders, payload: UnsafeRawBufferPointer, into buffer: UnsafeMutableRawBufferPointer
    ) throws(RoCEWireError) -> Int {
        try headers.checkHeaderSet()
        let opcode = headers.bth.opcode
        guard opcode.carriesPayload || payload.isEmpty else { throw .unexpectedPayload(opcode, byteCount: payload.count) }
        let headerLength = headers.byteCount
        let pad = padCount(forPayloadLength: payload.count)
        let total = headerLength + payload.count + pad + icrcByteCount
        guard buffer.count >= total else { throw .bufferTooSmall(needed: total, available: buffer.count) }

        headers.write(unchecked: buffer, padCount: pad)
        if let source = payload.baseAddress, !payload.isEmpty {
            buffer.baseAddress.unsafelyUnwrapped.advanced(by: headerLength).copyMemory(from: source, byteCount: payload.count)
        }
        UnsafeMutableRawBufferPointer(rebasing: buffer[(headerLength + payload.count) ..< total])
            .initializeMemory(as: UInt8.self, repeating: 0)
        return total
    }
}
