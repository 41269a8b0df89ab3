/// The 32 bytes each endpoint registers for its peer to RDMA WRITE into: cumulative counts,
/// so a late or repeated write is harmless (the larger value wins). The peer writes them
/// with a WRITE that consumes no receive buffer — so a credit grant never needs a credit.
enum ControlBlock {
    static let size = 32
    /// Offsets (little-endian): receive buffers granted so far (UInt64), rendezvous slots
    /// released so far (UInt64), close reason (UInt32, 0 while open), reserved.
    static let grantedOffset = 0
    static let releasedOffset = 8
    static let closeReasonOffset = 16

    struct Values: Equatable {
        var granted: UInt64
        var released: UInt64
        var closeReason: UInt32
    }

    static func read(_ base: UnsafeRawPointer) -> Values {
        // Volatile-like reads: the device writes here behind the compiler's back.
        Values(granted: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: grantedOffset, as: UInt64.self)),
               released: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: releasedOffset, as: UInt64.self)),
               closeReason: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: closeReasonOffset, as: UInt32.self)))
    }

    static func write(_ values: Values, to base: UnsafeMutableRawPointer) {
        base.storeBytes(of: values.granted.littleEndian, toByteOffset: grantedOffset, as: UInt64.self)
        base.storeBytes(of: values.released.littleEndian, toByteOffset: releasedOffset, as: UInt64.self)
        base.storeBytes(of: values.closeReason.littleEndian, toByteOffset: closeReasonOffset, as: UInt32.self)
        base.storeBytes(of: UInt32(0), toByteOffset: closeReasonOffset + 4, as: UInt32.self)
        base.storeBytes(of: UInt64(0), toByteOffset: 24, as: UInt64.self)
    }
}

/// The 32-byte header in front of every SEND. Little-endian.
struct MessageHeader: Equatable {
    static let size = 32

    enum Kind: UInt8 {
        case message = 1, request = 2, response = 3
    }

    var kind: Kind
    /// The payload is in rendezvous slot `rendezvousSlot`, not after the header.
    var isRendezvous: Bool
    var rendezvousSlot: UInt16
    var payloadLength: UInt32
    /// The call a request opens or a response answers (0 for one-way messages).
    var callID: UInt64
    /// Piggy-backed control block values: the sender's cumulative grants and releases.
    var granted: UInt64
    var released: UInt64

    func write(to base: UnsafeMutableRawPointer) {
        base.storeBytes(of: kind.rawValue, toByteOffset: 0, as: UInt8.self)
        base.storeBytes(of: isRendezvous ? UInt8(1) : 0, toByteOffset: 1, as: UInt8.self)
        base.storeBytes(of: rendezvousSlot.littleEndian, toByteOffset: 2, as: UInt16.self)
        base.storeBytes(of: payloadLength.littleEndian, toByteOffset: 4, as: UInt32.self)
        base.storeBytes(of: callID.littleEndian, toByteOffset: 8, as: UInt64.self)
        base.storeBytes(of: granted.littleEndian, toByteOffset: 16, as: UInt64.self)
        base.storeBytes(of: released.littleEndian, toByteOffset: 24, as: UInt64.self)
    }

    /// Parses the header of a received buffer of `byteLength` bytes; the error names the field.
    static func parse(_ base: UnsafeRawPointer, byteLength: Int) throws(EndpointError) -> MessageHeader {
        guard byteLength >= size else {
            throw .protocolViolation(field: "header.length", detail: "a \(byteLength)-byte message is shorter than the \(size)-byte header")
        }
        let kindByte = base.load(fromByteOffset: 0, as: UInt8.self)
        guard let kind = Kind(rawValue: kindByte) else {
            throw .protocolViolation(field: "header.kind", detail: "unknown kind \(kindByte)")
        }
        let flags = base.load(fromByteOffset: 1, as: UInt8.self)
        guard flags <= 1 else {
            throw .protocolViolation(field: "header.flags", detail: "unknown flags 0x\(String(flags, radix: 16))")
        }
        return MessageHeader(kind: kind, isRendezvous: flags == 1,
                             rendezvousSlot: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2, as: UInt16.self)),
                             payloadLength: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4, as: UInt32.self)),
                             callID: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                             granted: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
                             released: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
    }
}
