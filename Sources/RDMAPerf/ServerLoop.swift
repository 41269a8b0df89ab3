/// The server role both tools share: clients are taken one after another. A client that is
/// refused — a bad or hostile hello, garbage, silence, a field out of bounds at any point —
/// or whose run fails by the peer's doing (it stalls, floods, disconnects: exit status 3)
/// is told why (an `error` message) and the server waits for the next one, so no client
/// can take the server down. A run that ends normally (or by Ctrl-C on either side) ends
/// the loop, as a perftest server serves one run; so does a local failure of an admitted
/// run (the device, not the peer).
///
/// ```swift
/// try ServerLoop.serve(listener: listener, connectTimeout: 10, log: printError) { control, admission in
///     let hello = …                     // validate it
///     admission.admitted = true         // from here the run is this server's outcome
///     …
/// }
/// ```
public enum ServerLoop {
    /// What a session tells the loop about its client.
    public final class Admission {
        /// The client passed the checks and its run started: a local failure from here on
        /// ends the server.
        public var admitted = false
        /// The client speaks perftest's exchange: no JSON error message to it.
        public var perftest = false
        public init() {}
    }

    /// Serves clients until one run ends; returns how many clients were refused or dropped.
    /// Each wait for a client is bounded by `connectTimeout`; the error after the last
    /// wait names the last refusal too.
    @discardableResult
    public static func serve(listener: ControlListener, connectTimeout: Double, log: (String) -> Void,
                             session: (ControlConnection, Admission) throws(PerfError) -> Void) throws(PerfError) -> Int {
        var refused = 0
        var lastRefusal: PerfError?
        while true {
            let control: ControlConnection
            do { control = try listener.accept(timeout: connectTimeout) } catch {
                if let lastRefusal, error.exitCode != 130 {
                    throw PerfError(error.message, hint: "the last client was refused: \(lastRefusal)", exitCode: error.exitCode)
                }
                throw error
            }
            defer { control.close() }
            let admission = Admission()
            do throws(PerfError) {
                try session(control, admission)
                return refused
            } catch {
                if !admission.perftest { try? control.send(.error("server: \(error)")) }
                if error.exitCode == 130 || (admission.admitted && error.exitCode != 3) { throw error }
                refused += 1
                lastRefusal = error
                log("\(error.refusedField == nil ? "dropped" : "refused") client \(control.peerDescription): \(error)")
            }
        }
    }
}
