import CIBVerbs

/// What a send-queue work request does.
///
/// Immediate data is given in host order and arrives in host order
/// (`WorkCompletion.immediateData`); the byte swap to the wire happens here.
/// The corresponding C type is `enum ibv_wr_opcode`.
public enum SendOperation: Sendable, Equatable {
    /// Consumes a receive request on the peer and fills its buffers.
    case send
    /// `send`, plus 32 bits delivered in the peer's completion.
    case sendWithImmediate(UInt32)
    /// Writes the local bytes into `remote` without involving the peer's CPU.
    case write(RemoteMemory)
    /// `write`, then consumes a receive request on the peer carrying 32 bits.
    case writeWithImmediate(RemoteMemory, immediate: UInt32)
    /// Reads `remote` into the local buffers.
    case read(RemoteMemory)
    /// Atomically: if the 8 bytes at `remote` equal `compare`, store `swap`. The original
    /// value lands in the local 8-byte buffer. `remote` must be 8-byte aligned.
    case compareAndSwap(RemoteMemory, compare: UInt64, swap: UInt64)
    /// Atomically adds `add` to the 8 bytes at `remote`; the original value lands locally.
    case fetchAndAdd(RemoteMemory, add: UInt64)

    var verbsOpcode: ibv_wr_opcode {
        switch self {
        case .send: IBV_WR_SEND
        case .sendWithImmediate: IBV_WR_SEND_WITH_IMM
        case .write: IBV_WR_RDMA_WRITE
        case .writeWithImmediate: IBV_WR_RDMA_WRITE_WITH_IMM
        case .read: IBV_WR_RDMA_READ
        case .compareAndSwap: IBV_WR_ATOMIC_CMP_AND_SWP
        case .fetchAndAdd: IBV_WR_ATOMIC_FETCH_AND_ADD
        }
    }

    /// The remote memory the operation targets, nil for sends.
    public var remote: RemoteMemory? {
        switch self {
        case .send, .sendWithImmediate: nil
        case .write(let remote), .writeWithImmediate(let remote, _), .read(let remote),
             .compareAndSwap(let remote, _, _), .fetchAndAdd(let remote, _): remote
        }
    }

    var isAtomic: Bool {
        switch self {
        case .compareAndSwap, .fetchAndAdd: true
        default: false
        }
    }
}

/// Flags of a send-queue work request. The corresponding C type is `enum ibv_send_flags`.
public struct SendFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Generate a completion for this request (otherwise only errors complete, unless the
    /// QP was created with `signalAllSends`).
    public static let signaled = SendFlags(rawValue: IBV_SEND_SIGNALED.rawValue)
    /// Ask the peer to raise a completion event for the receive (solicited event).
    public static let solicited = SendFlags(rawValue: IBV_SEND_SOLICITED.rawValue)
    /// Copy the payload into the work request: the buffer is free again once posted and
    /// needs no lkey. Limited to the QP's `maxInlineData`.
    public static let inline = SendFlags(rawValue: IBV_SEND_INLINE.rawValue)
    /// Wait for earlier RDMA READs and atomics to finish before this request starts.
    public static let fence = SendFlags(rawValue: IBV_SEND_FENCE.rawValue)
}

/// Where an unreliable-datagram send goes: an address handle, the remote QP number and
/// the Q_Key the remote QP accepts.
public struct DatagramDestination: @unchecked Sendable {
    public var addressHandle: AddressHandle
    public var remoteQueuePairNumber: UInt32
    public var remoteQKey: UInt32

    public init(addressHandle: AddressHandle, remoteQueuePairNumber: UInt32, remoteQKey: UInt32) {
        self.addressHandle = addressHandle
        self.remoteQueuePairNumber = remoteQueuePairNumber
        self.remoteQKey = remoteQKey
    }
}

/// One send-queue work request, without its scatter-gather list (given when it is added
/// to a `SendRequestChain` or posted).
///
/// ```swift
/// let request = SendWorkRequest(id: 7, operation: .write(remote), flags: .signaled)
/// try queuePair.post(request, scatterGather: region.scatterGather(length: 64))
/// ```
public struct SendWorkRequest: @unchecked Sendable {
    /// Returned in the completion (`WorkCompletion.id`): use it to find the request.
    public var id: UInt64
    public var operation: SendOperation
    public var flags: SendFlags
    /// Required on UD queue pairs, ignored on connected ones.
    public var datagram: DatagramDestination?

    public init(id: UInt64, operation: SendOperation = .send, flags: SendFlags = .signaled,
                datagram: DatagramDestination? = nil) {
        self.id = id
        self.operation = operation
        self.flags = flags
        self.datagram = datagram
    }

    /// Checks what would otherwise surface only as a completion error much later: that the
    /// remote descriptor covers the local bytes, and the atomics' size and alignment.
    @inline(__always)
    func validate(totalLength: UInt64, operationName: StaticString) throws(RDMAError) {
        switch operation {
        case .send, .sendWithImmediate:
            break
        case .write(let remote), .read(let remote), .writeWithImmediate(let remote, _):
            try Self.check(remote, covers: totalLength, operationName)
        case .compareAndSwap(let remote, _, _), .fetchAndAdd(let remote, _):
            try Self.checkAtomic(remote, totalLength, operationName)
        }
    }

    /// Fills `wr` (whose `sg_list` and `num_sge` the caller set) for the verbs backend.
    /// A UD destination whose handle is closed, or not a verbs one, leaves `wr.ud.ah` NULL,
    /// which the provider refuses at post time.
    @inline(__always)
    func fill(_ wr: inout ibv_send_wr) {
        wr.wr_id = id
        wr.opcode = operation.verbsOpcode
        wr.send_flags = flags.rawValue
        switch operation {
        case .send:
            break
        case .sendWithImmediate(let immediate):
            wr.imm_data = immediate.bigEndian
        case .write(let remote), .read(let remote):
            wr.wr.rdma.remote_addr = remote.address
            wr.wr.rdma.rkey = remote.rkey
        case .writeWithImmediate(let remote, let immediate):
            wr.wr.rdma.remote_addr = remote.address
            wr.wr.rdma.rkey = remote.rkey
            wr.imm_data = immediate.bigEndian
        case .compareAndSwap(let remote, let compare, let swap):
            wr.wr.atomic.remote_addr = remote.address
            wr.wr.atomic.rkey = remote.rkey
            wr.wr.atomic.compare_add = compare
            wr.wr.atomic.swap = swap
        case .fetchAndAdd(let remote, let add):
            wr.wr.atomic.remote_addr = remote.address
            wr.wr.atomic.rkey = remote.rkey
            wr.wr.atomic.compare_add = add
            wr.wr.atomic.swap = 0
        }
        if let datagram {
            wr.wr.ud.ah = (datagram.addressHandle.currentOperations as? VerbsAddressHandle)?.pointer
            wr.wr.ud.remote_qpn = datagram.remoteQueuePairNumber
            wr.wr.ud.remote_qkey = datagram.remoteQKey
        }
    }

    private static func check(_ remote: RemoteMemory, covers length: UInt64, _ operation: StaticString) throws(RDMAError) {
        if length > UInt64(remote.length) {
            throw RDMAError(operation: "\(operation)", kind: .invalidArgument,
                            hint: "the local buffers hold \(length) bytes but the remote descriptor grants only \(remote.length)")
        }
    }

    private static func checkAtomic(_ remote: RemoteMemory, _ length: UInt64, _ operation: StaticString) throws(RDMAError) {
        if remote.address % 8 != 0 || remote.length < 8 || length != 8 {
            throw RDMAError(operation: "\(operation)", kind: .invalidArgument,
                            hint: "atomics need an 8-byte aligned remote address with 8 bytes granted and exactly 8 local bytes (remote 0x\(String(remote.address, radix: 16)), length \(remote.length), local \(length))")
        }
    }
}
