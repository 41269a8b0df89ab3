import CIBVerbs

/// The transport service of a queue pair. The corresponding C type is `enum ibv_qp_type`.
public enum QueuePairKind: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Reliable connected: acknowledged, in order, all operations.
    case reliableConnected = "RC"
    /// Unreliable connected: SEND and RDMA WRITE, no acknowledgements.
    case unreliableConnected = "UC"
    /// Unreliable datagram: SEND only, one MTU per message, any peer per request.
    case unreliableDatagram = "UD"

    var verbs: ibv_qp_type {
        switch self {
        case .reliableConnected: IBV_QPT_RC
        case .unreliableConnected: IBV_QPT_UC
        case .unreliableDatagram: IBV_QPT_UD
        }
    }

    public var description: String { rawValue }
}

/// The state machine of a queue pair: RESET → INIT → RTR (ready to receive) → RTS (ready
/// to send); ERROR from anywhere on a fatal completion or by request.
/// The corresponding C type is `enum ibv_qp_state`.
public enum QueuePairState: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case reset = "RESET"
    case initialized = "INIT"
    case readyToReceive = "RTR"
    case readyToSend = "RTS"
    case sendQueueDrained = "SQD"
    case sendQueueError = "SQE"
    case error = "ERR"

    var verbs: ibv_qp_state {
        switch self {
        case .reset: IBV_QPS_RESET
        case .initialized: IBV_QPS_INIT
        case .readyToReceive: IBV_QPS_RTR
        case .readyToSend: IBV_QPS_RTS
        case .sendQueueDrained: IBV_QPS_SQD
        case .sendQueueError: IBV_QPS_SQE
        case .error: IBV_QPS_ERR
        }
    }

    init?(verbs value: ibv_qp_state) {
        guard let state = Self.allCases.first(where: { $0.verbs == value }) else { return nil }
        self = state
    }

    public var description: String { rawValue }
}

/// How deep a queue pair's queues are and how much each request may carry.
/// The corresponding C type is `struct ibv_qp_cap`.
public struct QueuePairCapabilities: Sendable, Equatable {
    public var maxSendWorkRequests: UInt32
    public var maxReceiveWorkRequests: UInt32
    public var maxSendScatterGather: UInt32
    public var maxReceiveScatterGather: UInt32
    /// The largest payload posted with `.inline` (0: no inline sends).
    public var maxInlineData: UInt32

    public init(maxSendWorkRequests: UInt32 = 128, maxReceiveWorkRequests: UInt32 = 128,
                maxSendScatterGather: UInt32 = 1, maxReceiveScatterGather: UInt32 = 1,
                maxInlineData: UInt32 = 0) {
        self.maxSendWorkRequests = maxSendWorkRequests
        self.maxReceiveWorkRequests = maxReceiveWorkRequests
        self.maxSendScatterGather = maxSendScatterGather
        self.maxReceiveScatterGather = maxReceiveScatterGather
        self.maxInlineData = maxInlineData
    }

    init(_ raw: ibv_qp_cap) {
        self.init(maxSendWorkRequests: raw.max_send_wr, maxReceiveWorkRequests: raw.max_recv_wr,
                  maxSendScatterGather: raw.max_send_sge, maxReceiveScatterGather: raw.max_recv_sge,
                  maxInlineData: raw.max_inline_data)
    }

    var verbs: ibv_qp_cap {
        ibv_qp_cap(max_send_wr: maxSendWorkRequests, max_recv_wr: maxReceiveWorkRequests,
                   max_send_sge: maxSendScatterGather, max_recv_sge: maxReceiveScatterGather,
                   max_inline_data: maxInlineData)
    }
}
