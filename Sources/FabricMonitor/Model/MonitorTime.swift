#if canImport(Glibc)
import Glibc
#endif

/// A monotonic instant in nanoseconds from an arbitrary origin. Intervals between two
/// instants are what the watchdog measures; wall-clock time never enters the analysis.
public struct MonitorTime: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static func milliseconds(_ value: Int64) -> MonitorTime { MonitorTime(nanoseconds: value * 1_000_000) }
    public static let zero = MonitorTime(nanoseconds: 0)

    public static func < (a: MonitorTime, b: MonitorTime) -> Bool { a.nanoseconds < b.nanoseconds }
    public static func + (a: MonitorTime, b: MonitorTime) -> MonitorTime { MonitorTime(nanoseconds: a.nanoseconds &+ b.nanoseconds) }
    public static func - (a: MonitorTime, b: MonitorTime) -> MonitorTime { MonitorTime(nanoseconds: a.nanoseconds &- b.nanoseconds) }

    public var seconds: Double { Double(nanoseconds) / 1e9 }
    public var description: String { "\(Double(nanoseconds) / 1e6) ms" }
}

/// Where the monitor gets "now" from: injected, so the watchdog's tests step time by hand.
public protocol MonitorClock: Sendable {
    func now() -> MonitorTime
}

/// CLOCK_MONOTONIC.
/// The corresponding C function is `clock_gettime`.
public struct SystemMonotonicClock: MonitorClock {
    public init() {}
    public func now() -> MonitorTime {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return MonitorTime(nanoseconds: Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
    }
}
