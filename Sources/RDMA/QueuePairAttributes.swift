import CIBVerbs

/// The attributes of one `ibv_modify_qp` call. Set what the transition needs; everything
/// left nil is not passed. `QueuePair.modify(_:)` checks the set against the transition
/// before calling C, and names what is missing or not allowed — where verbs would answer
/// only EINVAL.
///
/// ```swift
/// var attributes = QueuePairAttributes(targetState: .initialized)
/// attributes.port = 1
/// attributes.pkeyIndex = 0
/// attributes.access = [.remoteWrite, .remoteRead]
/// try queuePair.modify(attributes)
/// ```
/// The corresponding C type is `struct ibv_qp_attr` with its `ibv_qp_attr_mask`.
public struct QueuePairAttributes: Sendable, Equatable {
    public var targetState: QueuePairState
    public var port: UInt8?
    public var pkeyIndex: UInt16?
    /// What the remote side may do on this QP (RC/UC).
    public var access: AccessFlags?
    /// The Q_Key a UD QP accepts and sends with.
    public var qkey: UInt32?
    public var pathMTU: PathMTU?
    public var addressVector: AddressVector?
    public var destinationQueuePairNumber: UInt32?
    /// The first PSN expected from the peer (24 bits).
    public var receivePSN: UInt32?
    /// READ/atomic requests the peer may have outstanding towards us.
    public var maxDestinationReadAtomic: UInt8?
    /// The RNR delay code (0…31) we ask the peer to wait when we have no receive posted.
    public var minRNRTimer: UInt8?
    /// Our first PSN (24 bits).
    public var sendPSN: UInt32?
    /// The ACK timeout code: 4.096 µs × 2^timeout (0…31; 0 = infinite).
    public var timeout: UInt8?
    /// Retransmissions before RETRY_EXC_ERR (0…7).
    public var retryCount: UInt8?
    /// RNR retries before RNR_RETRY_EXC_ERR (0…7; 7 = infinite).
    public var rnrRetry: UInt8?
    /// READ/atomic requests we may have outstanding.
    public var maxReadAtomic: UInt8?

    public init(targetState: QueuePairState) {
        self.targetState = targetState
    }

    /// The attributes named in the C mask, in the verbs man page's vocabulary.
    public enum Name: String, Sendable, CaseIterable, CustomStringConvertible {
        case port, pkeyIndex, access, qkey, pathMTU, addressVector, destinationQueuePairNumber,
             receivePSN, maxDestinationReadAtomic, minRNRTimer, sendPSN, timeout, retryCount,
             rnrRetry, maxReadAtomic

        public var description: String { rawValue }

        var maskBit: ibv_qp_attr_mask {
            switch self {
            case .port: IBV_QP_PORT
            case .pkeyIndex: IBV_QP_PKEY_INDEX
            case .access: IBV_QP_ACCESS_FLAGS
            case .qkey: IBV_QP_QKEY
            case .pathMTU: IBV_QP_PATH_MTU
            case .addressVector: IBV_QP_AV
            case .destinationQueuePairNumber: IBV_QP_DEST_QPN
            case .receivePSN: IBV_QP_RQ_PSN
            case .maxDestinationReadAtomic: IBV_QP_MAX_DEST_RD_ATOMIC
            case .minRNRTimer: IBV_QP_MIN_RNR_TIMER
            case .sendPSN: IBV_QP_SQ_PSN
            case .timeout: IBV_QP_TIMEOUT
            case .retryCount: IBV_QP_RETRY_CNT
            case .rnrRetry: IBV_QP_RNR_RETRY
            case .maxReadAtomic: IBV_QP_MAX_QP_RD_ATOMIC
            }
        }
    }

    /// The attributes that are set.
    public var setNames: Set<Name> {
        var names = Set<Name>()
        if port != nil { names.insert(.port) }
        if pkeyIndex != nil { names.insert(.pkeyIndex) }
        if access != nil { names.insert(.access) }
        if qkey != nil { names.insert(.qkey) }
        if pathMTU != nil { names.insert(.pathMTU) }
        if addressVector != nil { names.insert(.addressVector) }
        if destinationQueuePairNumber != nil { names.insert(.destinationQueuePairNumber) }
        if receivePSN != nil { names.insert(.receivePSN) }
        if maxDestinationReadAtomic != nil { names.insert(.maxDestinationReadAtomic) }
        if minRNRTimer != nil { names.insert(.minRNRTimer) }
        if sendPSN != nil { names.insert(.sendPSN) }
        if timeout != nil { names.insert(.timeout) }
        if retryCount != nil { names.insert(.retryCount) }
        if rnrRetry != nil { names.insert(.rnrRetry) }
        if maxReadAtomic != nil { names.insert(.maxReadAtomic) }
        return names
    }

    /// The C struct and mask for `ibv_modify_qp`.
    var verbs: (attributes: ibv_qp_attr, mask: Int32) {
        var raw = ibv_qp_attr()
        var mask = IBV_QP_STATE.rawValue
        raw.qp_state = targetState.verbs
        for name in setNames { mask |= name.maskBit.rawValue }
        if let port { raw.port_num = port }
        if let pkeyIndex { raw.pkey_index = pkeyIndex }
        if let access { raw.qp_access_flags = UInt32(bitPattern: access.rawValue) }
        if let qkey { raw.qkey = qkey }
        if let pathMTU { raw.path_mtu = pathMTU.verbsValue }
        if let addressVector { raw.ah_attr = addressVector.verbs }
        if let destinationQueuePairNumber { raw.dest_qp_num = destinationQueuePairNumber }
        if let receivePSN { raw.rq_psn = receivePSN }
        if let maxDestinationReadAtomic { raw.max_dest_rd_atomic = maxDestinationReadAtomic }
        if let minRNRTimer { raw.min_rnr_timer = minRNRTimer }
        if let sendPSN { raw.sq_psn = sendPSN }
        if let timeout { raw.timeout = timeout }
        if let retryCount { raw.retry_cnt = retryCount }
        if let rnrRetry { raw.rnr_retry = rnrRetry }
        if let maxReadAtomic { raw.max_rd_atomic = maxReadAtomic }
        return (raw, Int32(bitPattern: mask))
    }
}
