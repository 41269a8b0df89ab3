import CIBVerbs

/// The outcome of one work request, as polled from a completion queue.
///
/// Layout-identical to `struct ibv_wc`, so `CompletionQueue.poll(into:)` fills a caller's
/// buffer of these directly, with no copy and no allocation.
///
/// ```swift
/// let buffer = UnsafeMutableBufferPointer<WorkCompletion>.allocate(capacity: 16)
/// let count = try queue.poll(into: buffer)
/// for completion in buffer[..<count] where completion.status != .success {
///     print("request \(completion.id): \(completion.status)")
/// }
/// ```
@frozen
public struct WorkCompletion: Sendable {
    @usableFromInline
    var raw: ibv_wc

    /// An empty completion (for preallocated buffers).
    public init() { raw = ibv_wc() }

    init(raw: ibv_wc) { self.raw = raw }

    /// The `id` of the work request this completes.
    public var id: UInt64 { raw.wr_id }

    /// Success, or why it failed. A code outside the known range maps to `.general`.
    public var status: Status { Status(rawValue: raw.status.rawValue) ?? .general }

    /// What the request was. Only meaningful when `status == .success` (verbs leaves it
    /// undefined on error completions).
    public var opcode: Opcode { Opcode(verbs: raw.opcode) }

    /// Bytes received (receives) or transferred (READ, atomics: 8).
    public var byteLength: UInt32 { raw.byte_len }

    /// The 32 bits sent with SEND/WRITE with immediate, in host order; nil when absent.
    public var immediateData: UInt32? {
        raw.wc_flags & IBV_WC_WITH_IMM.rawValue != 0 ? UInt32(bigEndian: raw.imm_data) : nil
    }

    /// The local QP the request belonged to.
    public var queuePairNumber: UInt32 { raw.qp_num }

    /// The sending QP (unreliable datagram receives).
    public var sourceQueuePairNumber: UInt32 { raw.src_qp }

    /// True when the first 40 bytes of a UD receive buffer hold a global route header
    /// (always on RoCE, which routes by GID).
    public var hasGlobalRouteHeader: Bool { raw.wc_flags & IBV_WC_GRH.rawValue != 0 }

    /// The device's own error detail (vendor-specific; 0 when none).
    public var vendorError: UInt32 { raw.vendor_err }
}

extension WorkCompletion: CustomStringConvertible {
    public var description: String {
        var text = "completion #\(id) \(status == .success ? opcode.description : status.verbsName)"
        if status == .success { text += " \(byteLength) B" }
        if let immediate = immediateData { text += " imm 0x\(String(immediate, radix: 16))" }
        if status != .success { text += " — \(status.explanation)" }
        return text
    }
}
