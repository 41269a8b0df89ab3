#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// # The backend seam
//
// A libibverbs provider fills one `struct ibv_context_ops`: post_send, poll_cq, create_qp,
// dealloc_pd … — every verb of every object, and the generic `ibv_*` calls dispatch through
// it (`qp->context->ops.post_send(qp, wr, bad)`). This module does the same, with one table
// per backend, each in its own file:
//
// | table entry (protocol)          | verbs (VerbsBackend.swift) | soft (SoftBackend.swift)        |
// |---------------------------------|----------------------------|---------------------------------|
// | DeviceOperations                | VerbsDevice                | SoftBackendDevice               |
// | ProtectionDomainOperations      | VerbsProtectionDomain      | SoftBackendProtectionDomain     |
// | MemoryRegionOperations          | VerbsMemoryRegion          | SoftBackendMemoryRegion         |
// | CompletionChannelOperations     | VerbsCompletionChannel     | SoftBackendCompletionChannel    |
// | CompletionQueueOperations       | VerbsCompletionQueue       | SoftBackendCompletionQueue      |
// | QueuePairOperations             | VerbsQueuePair             | SoftBackendQueuePair            |
// | AddressHandleOperations         | VerbsAddressHandle         | SoftBackendAddressHandle        |
// | SharedReceiveQueueOperations    | VerbsSharedReceiveQueue    | SoftBackendSharedReceiveQueue   |
//
// (SoftTranslation.swift holds the soft side's value translations.)
//
// The table is split by object kind so that each entry receives its backend's own typed
// object (an `ibv_qp *`, a `SoftQueuePair`) instead of an opaque pointer to cast. A public
// object (`QueuePair`, …) holds `let operations: any …Operations` and an `isClosed` flag,
// and contains no backend branch: it checks what is common (arguments, transitions, the
// closed state, the parent/child order) and calls through.
//
// Why a protocol existential and not an enum `switch` or a generic: the protocols are
// class-bound, so an existential is two words (object, witness table) held inline —
// nothing is boxed or allocated — and a call is one indirect call through the witness
// table, the same price libibverbs itself pays for `ops.post_send`. Being a `let` (closing
// sets the flag; it does not drop the operations), the existential is borrowed from the
// object for the call: no retain/release on the data path. A generic public
// `QueuePair<Backend>` would leak the backend into every user's types, and an enum would
// put both backends' cases back into every class. Cross-object arguments (the CQs of a
// new QP, the address handle of a UD send) are checked casts to the backend's own class
// (`as? SoftBackendAddressHandle`): a final class, so the cast is a metadata compare, not a
// conformance search. The data path stays allocation-free and as fast as before:
// `Benchmarks/RDMABenchmarks` measures it (chains, and post + poll on the soft backend).
//
// Work requests and completions are the public value types (`SendWorkRequest`,
// `ScatterGatherElement`, `WorkCompletion`, which is layout-identical to `ibv_wc`). The
// chains build the verbs C structs (`ibv_send_wr`, `ibv_recv_wr`) once at `append` for
// the verbs backend and keep the `SendWorkRequest` values beside them for the soft one,
// which never reads a C work request back and never sees an `ibv_ah *`.
//
// `Context` is where a backend is chosen: `Context(device:)` opens a verbs device; the soft
// engine has its own, `Context(soft:)`. Everything else inherits the backend of its parent.
//
// # Closing
//
// `close()` is idempotent; a parent closes its children first (ChildRegistry), and an
// object becomes closed only once its destroy call succeeded: after a failure (EBUSY, …)
// the object stays open and `close()` may be retried. An object deinitialised while open
// is closed by its `deinit` — and, in debug builds, reported on stderr (LeakCheck), the
// way swift-nio reports a leaked channel.

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

// # The table
//
// Every entry names the verb it stands for; each backend documents the C call or engine
// call behind it. `destroy`/`deallocate`/`deregister` must leave the object usable when
// they throw, so that the caller's `close()` can be retried.

/// A backend's device: what `ibv_context_ops` offers on the context itself.
protocol DeviceOperations: AnyObject, Sendable {
    var kind: BackendKind { get }
    /// `ibv_query_device`
    func deviceAttributes() throws(RDMAError) -> DeviceAttributes
    /// `ibv_query_port`
    func portAttributes(port: UInt8) throws(RDMAError) -> PortAttributes
    /// `ibv_query_gid_table`
    func gidTable() throws(RDMAError) -> [GIDEntry]
    /// `ibv_alloc_pd`
    func allocateProtectionDomain() throws(RDMAError) -> any ProtectionDomainOperations
    /// `ibv_create_comp_channel`
    func createCompletionChannel() throws(RDMAError) -> any CompletionChannelOperations
    /// `ibv_create_cq`
    func createCompletionQueue(minimumEntries: Int, channel: CompletionChannel?,
                               completionVector: Int32) throws(RDMAError) -> any CompletionQueueOperations
    /// `ibv_close_device`
    func close() throws(RDMAError)
}

/// `ibv_alloc_pd`'s object: everything created inside a protection domain.
protocol ProtectionDomainOperations: AnyObject, Sendable {
    /// `ibv_reg_mr`
    func registerMemory(_ bytes: UnsafeMutableRawBufferPointer, access: AccessFlags) throws(RDMAError) -> any MemoryRegionOperations
    /// `ibv_create_qp`: the operations, the QP number and the capabilities granted.
    func createQueuePair(kind: QueuePairKind, sendCompletionQueue: CompletionQueue, receiveCompletionQueue: CompletionQueue,
                         capabilities: QueuePairCapabilities, sharedReceiveQueue: SharedReceiveQueue?,
                         signalAllSends: Bool) throws(RDMAError) -> (operations: any QueuePairOperations, number: UInt32, granted: QueuePairCapabilities)
    /// `ibv_create_ah`
    func createAddressHandle(_ addressVector: AddressVector) throws(RDMAError) -> any AddressHandleOperations
    /// `ibv_create_srq`: the operations and the work requests and scatter-gather elements granted.
    func createSharedReceiveQueue(maxWorkRequests: UInt32, maxScatterGather: UInt32) throws(RDMAError)
        -> (operations: any SharedReceiveQueueOperations, maxWorkRequests: UInt32, maxScatterGather: UInt32)
    /// `ibv_dealloc_pd`
    func deallocate() throws(RDMAError)
}

/// `ibv_reg_mr`'s object.
protocol MemoryRegionOperations: AnyObject, Sendable {
    var lkey: UInt32 { get }
    var rkey: UInt32 { get }
    /// `ibv_dereg_mr`
    func deregister() throws(RDMAError)
}

/// `ibv_create_comp_channel`'s object.
protocol CompletionChannelOperations: AnyObject, Sendable {
    var fileDescriptor: Int32 { get }
    /// `ibv_get_cq_event` after waiting for readability: the queue the event is for.
    func waitForEvent(timeoutMilliseconds: Int32) throws(RDMAError) -> CompletionQueue?
    /// Makes a `waitForEvent` in another thread (or the next one) return nil now.
    func wake()
    /// `ibv_destroy_comp_channel`
    func destroy() throws(RDMAError)
}

/// `ibv_create_cq`'s object.
protocol CompletionQueueOperations: AnyObject, Sendable {
    var capacity: Int { get }
    /// Records the queue `CompletionChannelOperations.waitForEvent` returns for this one
    /// (`cq_context`), unretained: the queue is closed before its channel.
    func setOwner(_ owner: Unmanaged<CompletionQueue>)
    /// `ibv_poll_cq` — the data path: never allocates.
    func poll(into buffer: UnsafeMutableBufferPointer<WorkCompletion>) throws(RDMAError) -> Int
    /// `ibv_req_notify_cq`
    func requestNotification(solicitedOnly: Bool) throws(RDMAError)
    /// `ibv_ack_cq_events`
    func acknowledgeEvents(_ count: UInt32)
    /// `ibv_destroy_cq`
    func destroy() throws(RDMAError)
}

/// `ibv_create_qp`'s object. The posts are the data path: they never allocate, and they
/// report a failure with the index of the first request not posted
/// (`RDMAError.postFailure`).
protocol QueuePairOperations: AnyObject, Sendable {
    /// `ibv_query_qp` (state only)
    func state() throws(RDMAError) -> QueuePairState
    /// `ibv_modify_qp`, with attributes already checked against the transition.
    func modify(_ attributes: QueuePairAttributes) throws(RDMAError)
    /// `ibv_post_send`
    func post(_ chain: SendRequestChain) throws(RDMAError)
    /// `ibv_post_send` of one request, already checked (`SendWorkRequest.validate`).
    func post(_ request: SendWorkRequest, scatterGather element: ScatterGatherElement) throws(RDMAError)
    /// `ibv_post_recv`
    func postReceive(_ chain: ReceiveRequestChain) throws(RDMAError)
    /// `ibv_post_recv` of one receive.
    func postReceive(id: UInt64, scatterGather element: ScatterGatherElement) throws(RDMAError)
    /// `ibv_destroy_qp`
    func destroy() throws(RDMAError)
}

/// `ibv_create_ah`'s object. What a UD send needs from it is backend-specific (an
/// `ibv_ah *`, a peer address): the QP of the same backend reads it from its own class.
protocol AddressHandleOperations: AnyObject, Sendable {
    /// `ibv_destroy_ah`
    func destroy() throws(RDMAError)
}

/// `ibv_create_srq`'s object.
protocol SharedReceiveQueueOperations: AnyObject, Sendable {
    /// `ibv_post_srq_recv`
    func postReceive(_ chain: ReceiveRequestChain) throws(RDMAError)
    /// `ibv_post_srq_recv` of one receive.
    func postReceive(id: UInt64, scatterGather element: ScatterGatherElement) throws(RDMAError)
    /// `ibv_destroy_srq`
    func destroy() throws(RDMAError)
}

extension RDMAError {
    /// The `.closed` error of an object whose operations are gone.
    static func closed(_ operation: StaticString, _ object: String) -> RDMAError {
        RDMAError(operation: "\(operation)", kind: .closed, hint: "the \(object) was closed")
    }

    /// A failed post: the errno, which request was the first not posted, and the usual cause.
    static func postFailure(_ operation: StaticString, _ code: Int32, _ index: Int?, of count: Int) -> RDMAError {
        var error = CReturn.failure(operation, code)
        let which = index.map { "request \($0) of \(count) (and those after it) was not posted" } ?? "no request was posted"
        let cause: String
        switch code {
        case ENOMEM: cause = "the queue is full: poll completions before posting more, or create the QP with deeper queues"
        case EINVAL: cause = "a request is invalid for this QP: its state (must be RTS to send, INIT or later to receive), too many scatter-gather elements, inline data too long, or an opcode the QP type does not allow"
        default: cause = error.hint ?? "see the errno"
        }
        error.hint = "\(which): \(cause)"
        return error
    }
}
