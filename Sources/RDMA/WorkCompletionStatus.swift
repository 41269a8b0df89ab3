import CIBVerbs

extension WorkCompletion {
    /// How a work request ended. Every error case explains its usual causes, because
    /// "status 12" is what users otherwise get (perftest prints just that).
    ///
    /// ```swift
    /// if completion.status != .success { print(completion.status) }
    /// // retry exceeded (RETRY_EXC_ERR): the peer did not acknowledge within timeout × retry count — …
    /// ```
    /// The corresponding C type is `enum ibv_wc_status`.
    public enum Status: UInt32, Sendable, CaseIterable, CustomStringConvertible {
        case success = 0
        case localLengthError = 1
        case localQueuePairOperationError = 2
        case localEECOperationError = 3
        case localProtectionError = 4
        case flushed = 5
        case memoryWindowBindError = 6
        case badResponse = 7
        case localAccessError = 8
        case remoteInvalidRequest = 9
        case remoteAccessError = 10
        case remoteOperationError = 11
        case retryExceeded = 12
        case receiverNotReadyRetryExceeded = 13
        case localRDDViolation = 14
        case remoteInvalidRDRequest = 15
        case remoteAborted = 16
        case invalidEECNumber = 17
        case invalidEECState = 18
        case fatal = 19
        case responseTimeout = 20
        case general = 21
        case tagMatchingError = 22
        case tagMatchingRendezvousIncomplete = 23

        /// The verbs name, as rdma-core's `ibv_wc_status_str` and kernel logs spell it.
        public var verbsName: String {
            switch self {
            case .success: "SUCCESS"
            case .localLengthError: "LOC_LEN_ERR"
            case .localQueuePairOperationError: "LOC_QP_OP_ERR"
            case .localEECOperationError: "LOC_EEC_OP_ERR"
            case .localProtectionError: "LOC_PROT_ERR"
            case .flushed: "WR_FLUSH_ERR"
            case .memoryWindowBindError: "MW_BIND_ERR"
            case .badResponse: "BAD_RESP_ERR"
            case .localAccessError: "LOC_ACCESS_ERR"
            case .remoteInvalidRequest: "REM_INV_REQ_ERR"
            case .remoteAccessError: "REM_ACCESS_ERR"
            case .remoteOperationError: "REM_OP_ERR"
            case .retryExceeded: "RETRY_EXC_ERR"
            case .receiverNotReadyRetryExceeded: "RNR_RETRY_EXC_ERR"
            case .localRDDViolation: "LOC_RDD_VIOL_ERR"
            case .remoteInvalidRDRequest: "REM_INV_RD_REQ_ERR"
            case .remoteAborted: "REM_ABORT_ERR"
            case .invalidEECNumber: "INV_EECN_ERR"
            case .invalidEECState: "INV_EEC_STATE_ERR"
            case .fatal: "FATAL_ERR"
            case .responseTimeout: "RESP_TIMEOUT_ERR"
            case .general: "GENERAL_ERR"
            case .tagMatchingError: "TM_ERR"
            case .tagMatchingRendezvousIncomplete: "TM_RNDV_INCOMPLETE"
            }
        }

        /// What usually causes this status, and what to check.
        public var explanation: String {
            switch self {
            case .success: "the work request completed"
            case .localLengthError: "a receive buffer was smaller than the incoming message, or a send exceeded the path's maximum message size"
            case .localQueuePairOperationError: "the request was malformed for this QP (too many scatter-gather elements, inline data above maxInlineData, or an opcode the QP type does not allow)"
            case .localEECOperationError: "an end-to-end context error (RD transport, unused on RoCE)"
            case .localProtectionError: "a local buffer is outside its memory region, or the lkey belongs to another protection domain"
            case .flushed: "the QP was in the error state, so this request was flushed without running — look at the first completion that was not flushed for the cause"
            case .memoryWindowBindError: "a memory window bind failed (wrong access or region)"
            case .badResponse: "the peer answered with an unexpected transport opcode"
            case .localAccessError: "the local region lacks the access this operation needs (e.g. a READ response into a region without localWrite)"
            case .remoteInvalidRequest: "the peer rejected the request: the operation is not enabled on its QP (qp access flags), the message is too long for its receive buffer, or an atomic is misaligned"
            case .remoteAccessError: "the peer rejected the remote key or range: wrong rkey, address outside the region, or the region lacks remote read/write/atomic access"
            case .remoteOperationError: "the peer could not complete the operation (its receive buffer failed, or its QP went to error)"
            case .retryExceeded: "the peer did not acknowledge within timeout × retry count — the peer is unreachable or gone, the GID index is wrong (use the RoCEv2 IPv4 entry), the path MTU is too large, or UDP port 4791 is filtered"
            case .receiverNotReadyRetryExceeded: "the peer had no receive request posted for the whole RNR retry budget — post receives before the sender starts, or raise rnrRetry (7 = retry forever)"
            case .localRDDViolation: "a reliable-datagram domain violation (RD transport, unused on RoCE)"
            case .remoteInvalidRDRequest: "an invalid reliable-datagram request (RD transport, unused on RoCE)"
            case .remoteAborted: "the peer aborted the operation"
            case .invalidEECNumber: "an invalid end-to-end context number (RD transport)"
            case .invalidEECState: "an invalid end-to-end context state (RD transport)"
            case .fatal: "the device hit a fatal error — check dmesg and the port state"
            case .responseTimeout: "the peer did not respond in time"
            case .general: "an unspecified device error — check dmesg and the vendor error"
            case .tagMatchingError: "a tag-matching error"
            case .tagMatchingRendezvousIncomplete: "a tag-matching rendezvous did not complete"
            }
        }

        public var description: String {
            self == .success ? "success" : "\(verbsName): \(explanation)"
        }
    }

    /// What a completed work request was. The corresponding C type is `enum ibv_wc_opcode`.
    public enum Opcode: Sendable, Equatable, CustomStringConvertible {
        case send, rdmaWrite, rdmaRead, compareAndSwap, fetchAndAdd, bindMemoryWindow, localInvalidate
        /// A receive consumed by a SEND (with or without immediate).
        case receive
        /// A receive consumed by an RDMA WRITE with immediate.
        case receiveRDMAWriteWithImmediate
        case other(UInt32)

        init(verbs value: ibv_wc_opcode) {
            switch value {
            case IBV_WC_SEND: self = .send
            case IBV_WC_RDMA_WRITE: self = .rdmaWrite
            case IBV_WC_RDMA_READ: self = .rdmaRead
            case IBV_WC_COMP_SWAP: self = .compareAndSwap
            case IBV_WC_FETCH_ADD: self = .fetchAndAdd
            case IBV_WC_BIND_MW: self = .bindMemoryWindow
            case IBV_WC_LOCAL_INV: self = .localInvalidate
            case IBV_WC_RECV: self = .receive
            case IBV_WC_RECV_RDMA_WITH_IMM: self = .receiveRDMAWriteWithImmediate
            default: self = .other(value.rawValue)
            }
        }

        /// True for completions of the receive queue.
        public var isReceive: Bool {
            switch self {
            case .receive, .receiveRDMAWriteWithImmediate: true
            default: false
            }
        }

        public var description: String {
            switch self {
            case .send: "SEND"
            case .rdmaWrite: "RDMA_WRITE"
            case .rdmaRead: "RDMA_READ"
            case .compareAndSwap: "COMP_SWAP"
            case .fetchAndAdd: "FETCH_ADD"
            case .bindMemoryWindow: "BIND_MW"
            case .localInvalidate: "LOCAL_INV"
            case .receive: "RECV"
            case .receiveRDMAWriteWithImmediate: "RECV_RDMA_WITH_IMM"
            case .other(let raw): "opcode(\(raw))"
            }
        }
    }
}
