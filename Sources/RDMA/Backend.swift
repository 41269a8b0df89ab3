// # The backend seam
//
// Every public object of this module (Context, ProtectionDomain, MemoryRegion,
// CompletionChannel, CompletionQueue, QueuePair, AddressHandle, SharedReceiveQueue) keeps a
// private `Handle` enum naming the backend object it drives:
//
//     enum Handle { case verbs(UnsafeMutablePointer<ibv_qp>); case closed }
//
// The verbs backend is a pass-through to libibverbs. The userspace RoCEv2 engine adds a
// `case soft(…)` to each `Handle` and a branch to each `switch` — nothing public changes, and
// a `switch` over a two-case enum costs less on the data path than a protocol existential.
// The work-request and completion types are the C structs themselves (`ibv_send_wr`,
// `ibv_wc`): the verbs backend passes them to the provider untouched and the soft backend
// reads and fills the same layout, so a program is written once for both.
//
// `Context` is where a backend is chosen: `Context(device:)` opens a verbs device; the soft
// engine has its own, `Context(soft:)`. Everything else inherits the backend of its parent.

/// Which implementation an object runs on.
///
/// ```swift
/// let context = try Context(deviceNamed: "rxe0")
/// print(context.backend)   // verbs
/// ```
public enum BackendKind: Sendable, Equatable, CustomStringConvertible {
    /// libibverbs: hardware RNICs and the kernel's Soft-RoCE (rxe).
    case verbs
    /// SoftRoCE: the userspace RoCEv2 engine over a UDP socket (`Context(soft:)`).
    case soft

    public var description: String {
        switch self {
        case .verbs: "verbs"
        case .soft: "soft"
        }
    }
}

// # Threads
//
// The objects are `Sendable` so they can be handed to the thread or task that uses them.
// Posting and polling may run on different threads at once, as libibverbs allows (its
// providers lock the queues). What must not race is `close()` with any other call on the
// same object, exactly as with a file descriptor: closing is the owner's last act.
