/// A 24-bit queue pair number, as carried in the BTH (destination QP) and DETH (source QP).
///
/// It is a name, not a counter, so unlike ``PacketSequenceNumber`` there is no arithmetic,
/// and a value wider than 24 bits is refused rather than wrapped.
///
/// ```swift
/// let qp: QueuePairNumber = 0x11                 // literal, checked at run time
/// let fromPeer = QueuePairNumber(exactly: word)  // nil if word has high bits set
/// ```
@frozen
public struct QueuePairNumber: Hashable, Sendable {
    /// The value, always below 2²⁴.
    public let rawValue: UInt32

    public static let mask: UInt32 = 0xFF_FFFF
    /// QP 1 is the general services interface (the CM's MADs go there).
    public static let generalServices = QueuePairNumber(unchecked: 1)

    /// Returns `nil` when `value` does not fit in 24 bits.
    @inlinable
    public init?(exactly value: UInt32) {
        guard value <= Self.mask else { return nil }
        rawValue = value
    }

    /// For values already known to fit (loaded from a 24-bit field).
    @inlinable
    init(unchecked value: UInt32) {
        assert(value <= Self.mask)
        rawValue = value
    }
}

extension QueuePairNumber: ExpressibleByIntegerLiteral {
    /// Traps on a literal wider than 24 bits: that is a typo in the source, not bad input.
    @inlinable
    public init(integerLiteral value: UInt32) {
        precondition(value <= Self.mask, "QP number literal \(value) does not fit in 24 bits")
        rawValue = value
    }
}

extension QueuePairNumber: CustomStringConvertible {
    public var description: String { "QP \(rawValue)" }
}
