/// A time on an injected clock, or a span between two such times, as a whole number of
/// nanoseconds.
///
/// DCQCN's timers (the α update period K, the rate-increase timer T, the CNP gap N) are all
/// compared against "now", and the caller supplies "now": a simulator passes its virtual time,
/// the userspace engine its monotonic clock. An integer keeps a discrete-event simulation
/// deterministic — no floating drift between the event queue and the timers.
///
/// Instants count from the clock's own origin (time zero of a simulation); a span is the
/// difference of two instants. One type serves both, as in ns-3's `Time`.
///
/// ```swift
/// let t = Nanoseconds.microseconds(55)
/// t.rawValue             // 55_000
/// (t + .nanoseconds(5)).rawValue   // 55_005
/// ```
public struct Nanoseconds: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int64

    @inlinable public init(_ rawValue: Int64) { self.rawValue = rawValue }

    public static let zero = Nanoseconds(0)

    @inlinable public static func nanoseconds(_ value: Int64) -> Nanoseconds { Nanoseconds(value) }
    @inlinable public static func microseconds(_ value: Int64) -> Nanoseconds { Nanoseconds(value * 1_000) }
    @inlinable public static func milliseconds(_ value: Int64) -> Nanoseconds { Nanoseconds(value * 1_000_000) }

    /// Rounds to the nearest nanosecond: scenario files give fractional microseconds.
    @inlinable public static func roundedMicroseconds(_ value: Double) -> Nanoseconds {
        Nanoseconds(Int64((value * 1_000).rounded()))
    }

    @inlinable public var microseconds: Double { Double(rawValue) / 1_000 }
    @inlinable public var milliseconds: Double { Double(rawValue) / 1_000_000 }
    @inlinable public var seconds: Double { Double(rawValue) / 1_000_000_000 }

    @inlinable public static func < (lhs: Nanoseconds, rhs: Nanoseconds) -> Bool { lhs.rawValue < rhs.rawValue }
    @inlinable public static func + (lhs: Nanoseconds, rhs: Nanoseconds) -> Nanoseconds { Nanoseconds(lhs.rawValue + rhs.rawValue) }
    @inlinable public static func - (lhs: Nanoseconds, rhs: Nanoseconds) -> Nanoseconds { Nanoseconds(lhs.rawValue - rhs.rawValue) }
    @inlinable public static func += (lhs: inout Nanoseconds, rhs: Nanoseconds) { lhs.rawValue += rhs.rawValue }
    @inlinable public static func * (lhs: Nanoseconds, rhs: Int64) -> Nanoseconds { Nanoseconds(lhs.rawValue * rhs) }

    public var description: String {
        if rawValue % 1_000_000 == 0 { return "\(rawValue / 1_000_000) ms" }
        if rawValue % 1_000 == 0 { return "\(rawValue / 1_000) µs" }
        return "\(rawValue) ns"
    }
}
