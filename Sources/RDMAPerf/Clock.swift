#if canImport(Glibc)
import Glibc
#endif

/// The tools' clock: `clock_gettime(CLOCK_MONOTONIC_RAW)` in nanoseconds.
///
/// MONOTONIC_RAW rather than ContinuousClock (CLOCK_MONOTONIC on Linux) because NTP slewing
/// adjusts CLOCK_MONOTONIC's rate while a run is in progress; RAW is the unadjusted
/// counter, the closest thing to perftest's calibrated rdtsc without its frequency guess.
/// Reading it goes through the vDSO: no system call, no allocation.
///
/// ```swift
/// let start = MonotonicClock.nanoseconds()
/// // … work …
/// let elapsed = MonotonicClock.nanoseconds() &- start
/// ```
public enum MonotonicClock {
    @inline(__always)
    public static func nanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC_RAW, &spec)
        return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
    }

    /// `seconds` from now in nanoseconds, saturating: a peer-given or absurd bound (1e300,
    /// infinity, NaN, negative) becomes "never" or "now" instead of a trap in the conversion.
    @inline(__always)
    public static func deadline(after seconds: Double) -> UInt64 {
        let now = nanoseconds()
        return now &+ span(seconds: seconds, cap: UInt64.max &- now)
    }

    /// Seconds as nanoseconds, clamped to 0…`cap` (NaN counts as 0).
    @inline(__always)
    public static func span(seconds: Double, cap: UInt64 = .max) -> UInt64 {
        guard seconds > 0 else { return 0 }
        let nanoseconds = seconds * 1e9
        return nanoseconds >= Double(cap) ? cap : UInt64(nanoseconds)
    }
}
