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
}
