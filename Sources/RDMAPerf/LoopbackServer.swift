import Dispatch
import Foundation
import Synchronization

/// The server side of a `--loopback` run: its listener on 127.0.0.1 (any free port), the
/// peer device, and the thread that serves one client there. The client side connects with
/// `connect`, and `finish` reports the server side's own error — the cause, when the
/// client only saw the connection close.
final class LoopbackServer: @unchecked Sendable {
    let listener: ControlListener
    private let task: BackgroundTask

    init(opened: OpenedDevice, connectTimeout: Double,
         serve: @escaping @Sendable (OpenedDevice, ControlConnection, ServerLoop.Admission) throws(PerfError) -> Void) throws(PerfError) {
        let listener = try ControlListener(port: 0, address: "127.0.0.1")
        let peer = try opened.openLoopbackPeer()
        self.listener = listener
        let refusals = LineLog()
        self.refusals = refusals
        // The same loop as a server's: a stray connection to the port is refused and the
        // run's own client still served.
        task = BackgroundTask { () throws(PerfError) in
            try ServerLoop.serve(listener: listener, connectTimeout: connectTimeout,
                                 log: refusals.append) { control, admission throws(PerfError) in
                // Ctrl-C is the client side's to handle: this side serves until its `bye`.
                control.interruptible = false
                try serve(peer, control, admission)
            }
        }
    }

    /// What the server side refused, in order.
    let refusals: LineLog

    func connect(timeout: Double) throws(PerfError) -> ControlConnection {
        try connectControl(host: "127.0.0.1", port: listener.port, timeout: timeout)
    }

    /// Waits for the server side (at most `wait` seconds; when the client failed, the
    /// server stops waiting for another client) and prints its error and refusals naming
    /// them as the server side's; then rethrows the client's error, if any.
    func finish(tool: String, clientError: PerfError?, wait: Double) throws(PerfError) {
        if clientError != nil { listener.stop() }
        let serverError = task.wait(timeout: clientError == nil ? wait : 5)
        for line in refusals.lines { printError("\(tool): loopback server side: \(line)") }
        if let serverError, serverError.exitCode != 130 {
            printError("\(tool): loopback server side: \(serverError)")
        }
        if let clientError { throw clientError }
    }
}

/// Lines written by one thread and read by another.
final class LineLog: Sendable {
    private let storage = Mutex<[String]>([])
    func append(_ line: String) { storage.withLock { $0.append(line) } }
    var lines: [String] { storage.withLock { $0 } }
}

/// A thread running one side of a loopback run; its error (if any) is collected.
final class BackgroundTask: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var failure: PerfError?

    init(_ body: @escaping @Sendable () throws(PerfError) -> Void) {
        let thread = Thread { [self] in
            do throws(PerfError) { try body() } catch { self.failure = error }
            self.done.signal()
        }
        thread.stackSize = 1 << 22
        thread.start()
    }

    /// The task's error; a timeout is reported as one too.
    func wait(timeout: Double) -> PerfError? {
        if done.wait(timeout: .now() + min(max(0, timeout), 1e7)) == .timedOut {
            return .peer("the loopback server side did not finish within \(timeout) s")
        }
        return failure
    }
}
