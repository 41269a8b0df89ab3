/// A 24-bit packet sequence number, with the modulo-2²⁴ arithmetic of IBTA Vol 1 §9.7.
///
/// PSNs wrap, so "before" and "after" are defined on the circle: `b` is after `a` when
/// going forward from `a` reaches `b` in fewer than 2²³ steps (half the space). That
/// relation is not transitive over the whole circle, so `PacketSequenceNumber` is
/// deliberately not `Comparable`; use `distance(to:)`, `isBefore(_:)` and
/// `isInWindow(startingAt:count:)`.
///
/// ```swift
/// let expected: PacketSequenceNumber = 0xFF_FFFE
/// let next = expected + 3                       // 0x000001, wrapped
/// expected.distance(to: next)                   // 3
/// next.isInWindow(startingAt: expected, count: 4) // true
/// ```
@frozen
public struct PacketSequenceNumber: Hashable, Sendable {
    /// The value, always below 2²⁴.
    public let rawValue: UInt32

    public static let modulus: UInt32 = 1 << 24
    public static let mask: UInt32 = modulus - 1
    /// Half the space: the largest forward distance still counted as "after".
    public static let halfSpace: UInt32 = 1 << 23

    /// Takes the low 24 bits of `value`; PSNs are counters modulo 2²⁴, so dropping the
    /// high bits is the wrap, not a loss.
    @inlinable
    public init(truncating value: UInt32) { rawValue = value & Self.mask }

    /// Returns `nil` when `value` does not fit in 24 bits.
    @inlinable
    public init?(exactly value: UInt32) {
        guard value <= Self.mask else { return nil }
        rawValue = value
    }

    /// `self` advanced by `n` packets (negative goes back), modulo 2²⁴.
    @inlinable
    public func advanced(by n: Int) -> PacketSequenceNumber {
        PacketSequenceNumber(truncating: rawValue &+ UInt32(truncatingIfNeeded: n))
    }

    /// The signed shortest distance from `self` to `other`, in −2²³ ..< 2²³.
    @inlinable
    public func distance(to other: PacketSequenceNumber) -> Int {
        let forward = (other.rawValue &- rawValue) & Self.mask
        return forward < Self.halfSpace ? Int(forward) : Int(forward) - Int(Self.modulus)
    }

    /// `other` is reached going forward from `self` in 1 ..< 2²³ steps.
    @inlinable
    public func isBefore(_ other: PacketSequenceNumber) -> Bool { distance(to: other) > 0 }

    /// `self` is reached going forward from `other` in 1 ..< 2²³ steps.
    @inlinable
    public func isAfter(_ other: PacketSequenceNumber) -> Bool { other.isBefore(self) }

    /// `self` is one of the `count` PSNs starting at `start` (wrapping). A `count` of zero
    /// is an empty window; counts above 2²⁴ cover everything.
    @inlinable
    public func isInWindow(startingAt start: PacketSequenceNumber, count: Int) -> Bool {
        guard count > 0 else { return false }
        return Int((rawValue &- start.rawValue) & Self.mask) < count
    }

    @inlinable
    public static func + (lhs: PacketSequenceNumber, rhs: Int) -> PacketSequenceNumber { lhs.advanced(by: rhs) }
    @inlinable
    public static func - (lhs: PacketSequenceNumber, rhs: Int) -> PacketSequenceNumber { lhs.advanced(by: -rhs) }
    @inlinable
    public static func += (lhs: inout PacketSequenceNumber, rhs: Int) { lhs = lhs.advanced(by: rhs) }
}

extension PacketSequenceNumber: ExpressibleByIntegerLiteral {
    /// Traps on a literal wider than 24 bits: that is a typo in the source, not bad input.
    @inlinable
    public init(integerLiteral value: UInt32) {
        precondition(value <= Self.mask, "PSN literal \(value) does not fit in 24 bits")
        rawValue = value
    }
}

extension PacketSequenceNumber: CustomStringConvertible {
    public var description: String { "PSN \(rawValue)" }
}
