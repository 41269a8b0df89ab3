#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where the engine reads time: the monotonic clock, or a clock a test advances by hand so
/// that timers, retries and RNR waits run the same whatever the machine's load.
///
/// ```swift
/// let clock = ManualClock()
/// let device = try SoftDevice(wire: wire, clock: .manual(clock))
/// clock.advance(nanoseconds: 1_000_000)   // 1 ms passes for the engine, instantly
/// ```
package enum EngineClock: Sendable {
    case monotonic
    case manual(ManualClock)

    /// Nanoseconds on this clock.
    @inline(__always)
    package func now() -> UInt64 {
        switch self {
        case .monotonic: return EngineClock.monotonicNanoseconds()
        case .manual(let clock): return clock.nanoseconds
        }
    }

    /// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds.
    @inline(__always)
    package static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}

/// A clock that moves only when told. Single-threaded use (deterministic tests).
package final class ManualClock: @unchecked Sendable {
    package var nanoseconds: UInt64
    package init(startingAt nanoseconds: UInt64 = 1_000_000_000) { self.nanoseconds = nanoseconds }
    package func advance(nanoseconds delta: UInt64) { nanoseconds += delta }
}
