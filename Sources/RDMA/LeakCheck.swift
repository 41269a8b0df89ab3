#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The debug-build check for objects deinitialised while still open.
///
/// `deinit` closes a forgotten object, but releasing device resources at an arbitrary
/// moment — on whichever thread drops the last reference — hides a missing `close()`
/// that would matter once the order or the moment does (a QP still receiving, a region
/// still the target of a peer's WRITE). As swift-nio does for a leaked channel, debug
/// builds say so; here on stderr rather than with an assertion, because a leak is not
/// worth a crash of the program that has it. Release builds check nothing.
enum LeakCheck {
    /// Where reports go: stderr, unless a test binds its own (the binding is task-local,
    /// so a test sees the reports of the objects it drops, and only those).
    @TaskLocal static var report: @Sendable (String) -> Void = { message in
        let line = Array((message + "\n").utf8)
        _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    /// The report for an object deinitialised while open, nil when it was closed.
    static func leakReport(_ kind: StaticString, isOpen: Bool, detail: @autoclosure () -> String) -> String? {
        guard isOpen else { return nil }
        return "RDMA: leaked \(kind) (\(detail())): deinitialised without close(); closing it now — call close() when done with it"
    }

    /// Called first in each `deinit`; reports the leak in debug builds.
    @inline(__always)
    static func objectDeinitialized(_ kind: StaticString, isOpen: Bool, detail: @autoclosure () -> String) {
        #if DEBUG
        if let message = leakReport(kind, isOpen: isOpen, detail: detail()) { report(message) }
        #endif
    }
}
