/// AETH (4 bytes): the syndrome (ACK, RNR NAK or NAK) and the message sequence number,
/// carried by acknowledgements and by the first, last and only RDMA read responses.
///
/// ```swift
/// let ack = AcknowledgeExtendedTransportHeader(syndrome: .ack(credits: 0x1F), messageSequenceNumber: 7)
/// switch ack.syndrome.kind {
/// case .ack: ...
/// case .receiverNotReady(let timer): ...   // retry after the RNR timer
/// case .nak(.psnSequenceError): ...        // go back to the acknowledged PSN
/// case .nak, .reserved: ...
/// }
/// ```
@frozen
public struct AcknowledgeExtendedTransportHeader: Hashable, Sendable, ExtendedTransportHeader {
    public static let byteCount = 4

    public var syndrome: Syndrome
    @usableFromInline var storedMessageSequenceNumber: UInt32

    /// MSN, a counter modulo 2²⁴: values set here keep only their low 24 bits, which is
    /// the counter's wrap.
    @inlinable
    public var messageSequenceNumber: UInt32 {
        get { storedMessageSequenceNumber }
        set { storedMessageSequenceNumber = newValue & 0xFF_FFFF }
    }

    @inlinable
    public init(syndrome: Syndrome, messageSequenceNumber: UInt32) {
        self.syndrome = syndrome
        self.storedMessageSequenceNumber = messageSequenceNumber & 0xFF_FFFF
    }

    @inlinable
    init(unchecked bytes: UnsafeRawBufferPointer, at offset: Int) {
        self.init(syndrome: Syndrome(rawValue: bytes[offset]), messageSequenceNumber: bytes.loadUInt24(at: offset + 1))
    }

    @inlinable
    func write(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes[offset] = syndrome.rawValue
        bytes.storeUInt24(storedMessageSequenceNumber, at: offset + 1)
    }
}

extension AcknowledgeExtendedTransportHeader {
    /// The AETH syndrome byte. Every byte value is representable (reserved ones included),
    /// so a received AETH round-trips exactly; `kind` says what it means.
    @frozen
    public struct Syndrome: RawRepresentable, Hashable, Sendable {
        public var rawValue: UInt8
        @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// Credit count 0x1F: "no credit information" (the responder has no limit to report).
        public static let unlimitedCredits: UInt8 = 0x1F

        /// An ACK carrying a 5-bit credit count.
        @inlinable
        public static func ack(credits: UInt8 = unlimitedCredits) -> Syndrome {
            precondition(credits <= 0x1F, "AETH credit count \(credits) does not fit in 5 bits")
            return Syndrome(rawValue: credits)
        }

        /// An RNR NAK carrying the 5-bit encoded RNR timer (IBTA Table 45).
        @inlinable
        public static func receiverNotReady(timer: UInt8) -> Syndrome {
            precondition(timer <= 0x1F, "RNR timer code \(timer) does not fit in 5 bits")
            return Syndrome(rawValue: 0x20 | timer)
        }

        /// A NAK with the given code.
        @inlinable
        public static func nak(_ code: NAKCode) -> Syndrome { Syndrome(rawValue: 0x60 | code.rawValue) }

        public enum Kind: Hashable, Sendable {
            case ack(credits: UInt8)
            case receiverNotReady(timer: UInt8)
            case nak(NAKCode)
            /// 0b010xxxxx and 0b1xxxxxxx are reserved.
            case reserved
        }

        @inlinable
        public var kind: Kind {
            let low = rawValue & 0x1F
            switch rawValue >> 5 {
            case 0b000: return .ack(credits: low)
            case 0b001: return .receiverNotReady(timer: low)
            case 0b011: return .nak(NAKCode(rawValue: low))
            default: return .reserved
            }
        }
    }

    /// The low five bits of a NAK syndrome. Codes 5–31 are reserved but representable.
    @frozen
    public struct NAKCode: RawRepresentable, Hashable, Sendable {
        public let rawValue: UInt8
        @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue & 0x1F }

        public static let psnSequenceError = NAKCode(rawValue: 0)
        public static let invalidRequest = NAKCode(rawValue: 1)
        public static let remoteAccessError = NAKCode(rawValue: 2)
        public static let remoteOperationalError = NAKCode(rawValue: 3)
        public static let invalidRDRequest = NAKCode(rawValue: 4)
    }
}

/// IBTA's abbreviation.
public typealias AETH = AcknowledgeExtendedTransportHeader
