import Foundation
import ArgumentParser
import Synchronization

private let interruptFlag = Atomic<Bool>(false)
private let firstInterrupt = Atomic<UInt64>(0)

/// True once Ctrl-C (SIGINT) or SIGTERM arrived: the run loops stop at the next check and
/// report what they measured so far.
@inline(__always)
public func stopRequested() -> Bool { interruptFlag.load(ordering: .relaxed) }

/// Installs the SIGINT/SIGTERM handler. A second Ctrl-C a second or more after the first
/// exits at once (status 130); one sooner is taken as the same interrupt delivered twice
/// (`timeout -s INT` signals both the child and its process group).
public func installInterruptHandler() {
    let handler: @convention(c) (Int32) -> Void = { _ in
        let now = MonotonicClock.nanoseconds()   // clock_gettime is async-signal-safe
        if interruptFlag.exchange(true, ordering: .relaxed) {
            if now &- firstInterrupt.load(ordering: .relaxed) > 1_000_000_000 { _exit(130) }
        } else {
            firstInterrupt.store(now, ordering: .relaxed)
        }
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
    // A blocked signal mask survives exec: a tool started from a thread that blocks them
    // (a Dispatch worker spawning it) would never see Ctrl-C.
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGINT)
    sigaddset(&signals, SIGTERM)
    pthread_sigmask(SIG_UNBLOCK, &signals, nil)
}

/// For tests.
public func resetInterrupt() { interruptFlag.store(false, ordering: .relaxed) }

/// Progress on stderr, at most once a second, only when stderr is a terminal (or
/// `RDMA_PERF_PROGRESS` is set: then one plain line each, for scripts and tests that
/// wait for a run to be under way) and the run has lasted over a second. Costs one
/// comparison per call otherwise.
public struct ProgressLine {
    private let enabled: Bool
    private let terminal: Bool
    private let start: UInt64
    private var next: UInt64
    public init() {
        terminal = isatty(STDERR_FILENO) != 0
        enabled = terminal || !(ProcessInfo.processInfo.environment["RDMA_PERF_PROGRESS"] ?? "").isEmpty
        start = MonotonicClock.nanoseconds()
        next = start + 1_000_000_000
    }

    @inline(__always)
    public mutating func tick(now: UInt64, _ text: @autoclosure () -> String) {
        guard enabled, now >= next else { return }
        next = now + 1_000_000_000
        let line = terminal ? "\r\(text()) [\((now - start) / 1_000_000_000) s]\u{1B}[K" : "progress: \(text()) [\((now - start) / 1_000_000_000) s]\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    public func finish() {
        if terminal, MonotonicClock.nanoseconds() >= start + 1_000_000_000 {
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        }
    }
}

/// Prints to stderr.
public func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// A command's body with its errors reported the one way both tools do: `<tool>: error: …`
/// on stderr and the error's exit code (2 usage, 3 peer, 130 interrupted …).
func runReportingErrors(_ tool: String, _ body: () throws(PerfError) -> Void) throws {
    do throws(PerfError) {
        try body()
    } catch {
        printError("\(tool): error: \(error)")
        throw ExitCode(error.exitCode)
    }
}
