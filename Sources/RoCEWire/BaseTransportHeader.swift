/// The 12-byte base transport header (BTH) that starts every RoCEv2 packet.
///
/// The pad count and transport version are not fields here: the pad count follows from the
/// payload length (``RoCEPacket`` reads and writes it), and the only transport version is 0.
/// Reserved bits are ignored when parsing and written as zero.
///
/// ```swift
/// let bth = BaseTransportHeader(opcode: .rcSendOnly, destinationQP: 0x11, psn: 100, ackRequest: true)
/// ```
@frozen
public struct BaseTransportHeader: Hashable, Sendable {
    public static let byteCount = 12
    /// The only transport version (TVer) defined by IBTA.
    public static let transportVersion: UInt8 = 0
    /// The default partition key, full membership.
    public static let defaultPartitionKey: UInt16 = 0xFFFF

    public var opcode: Opcode
    /// SE: the receiver should raise a completion event for this message.
    public var solicitedEvent: Bool
    /// MigReq: the sender's path migration state.
    public var migrationRequest: Bool
    /// P_Key.
    public var partitionKey: UInt16
    /// FECN: a switch on the way saw congestion (set from IP ECN CE by the receiver stack).
    public var forwardCongestion: Bool
    /// BECN: the receiver tells the sender about congestion (set in CNPs).
    public var backwardCongestion: Bool
    public var destinationQP: QueuePairNumber
    /// A: the responder should acknowledge this packet.
    public var ackRequest: Bool
    public var psn: PacketSequenceNumber

    @inlinable
    public init(
        opcode: Opcode,
        solicitedEvent: Bool = false,
        migrationRequest: Bool = false,
        partitionKey: UInt16 = BaseTransportHeader.defaultPartitionKey,
        forwardCongestion: Bool = false,
        backwardCongestion: Bool = false,
        destinationQP: QueuePairNumber,
        ackRequest: Bool = false,
        psn: PacketSequenceNumber
    ) {
        self.opcode = opcode
        self.solicitedEvent = solicitedEvent
        self.migrationRequest = migrationRequest
        self.partitionKey = partitionKey
        self.forwardCongestion = forwardCongestion
        self.backwardCongestion = backwardCongestion
        self.destinationQP = destinationQP
        self.ackRequest = ackRequest
        self.psn = psn
    }
}

extension BaseTransportHeader {
    /// Byte offsets and bits within the BTH, shared with the ICRC code.
    @usableFromInline enum Layout {
        @usableFromInline static let flagsByte = 1
        @usableFromInline static let solicitedEventBit: UInt8 = 0x80
        @usableFromInline static let migrationRequestBit: UInt8 = 0x40
        @usableFromInline static let padCountShift: UInt8 = 4
        @usableFromInline static let transportVersionMask: UInt8 = 0x0F
        /// FECN, BECN and six reserved bits: the byte the ICRC masks.
        @usableFromInline static let congestionByte = 4
        @usableFromInline static let forwardCongestionBit: UInt8 = 0x80
        @usableFromInline static let backwardCongestionBit: UInt8 = 0x40
        @usableFromInline static let ackRequestByte = 8
        @usableFromInline static let ackRequestBit: UInt8 = 0x80
    }

    /// Reads the BTH at the start of `bytes`; the caller has checked the length, the opcode
    /// and TVer, and reads the pad count itself.
    @inlinable
    init(unchecked bytes: UnsafeRawBufferPointer, opcode: Opcode) {
        let flags = bytes[Layout.flagsByte]
        let congestion = bytes[Layout.congestionByte]
        self.init(
            opcode: opcode,
            solicitedEvent: flags & Layout.solicitedEventBit != 0,
            migrationRequest: flags & Layout.migrationRequestBit != 0,
            partitionKey: bytes.loadBigEndian(at: 2),
            forwardCongestion: congestion & Layout.forwardCongestionBit != 0,
            backwardCongestion: congestion & Layout.backwardCongestionBit != 0,
            destinationQP: QueuePairNumber(unchecked: bytes.loadUInt24(at: 5)),
            ackRequest: bytes[Layout.ackRequestByte] & Layout.ackRequestBit != 0,
            psn: PacketSequenceNumber(truncating: bytes.loadUInt24(at: 9))
        )
    }

    /// Writes the 12 bytes at the start of `bytes` (checked by the caller).
    @inlinable
    func write(unchecked bytes: UnsafeMutableRawBufferPointer, padCount: Int) {
        assert((0...3).contains(padCount))
        bytes[0] = opcode.rawValue
        bytes[Layout.flagsByte] = (solicitedEvent ? Layout.solicitedEventBit : 0)
            | (migrationRequest ? Layout.migrationRequestBit : 0)
            | UInt8(truncatingIfNeeded: padCount) << Layout.padCountShift
            | Self.transportVersion
        bytes.storeBigEndian(partitionKey, at: 2)
        bytes[Layout.congestionByte] = (forwardCongestion ? Layout.forwardCongestionBit : 0)
            | (backwardCongestion ? Layout.backwardCongestionBit : 0)
        bytes.storeUInt24(destinationQP.rawValue, at: 5)
        bytes[Layout.ackRequestByte] = ackRequest ? Layout.ackRequestBit : 0
        bytes.storeUInt24(psn.rawValue, at: 9)
    }
}

/// IBTA's abbreviation.
public typealias BTH = BaseTransportHeader
