/// Per-device counters. Where the meaning matches, the name is rxe's
/// (`/sys/class/infiniband/rxe0/ports/1/hw_counters/…`); the others are the engine's own.
public struct SoftCounters: Sendable, Equatable {
    public var sentPackets: UInt64 = 0              // sent_pkts
    public var receivedPackets: UInt64 = 0          // rcvd_pkts
    public var duplicateRequest: UInt64 = 0         // duplicate_request
    public var outOfSequenceRequest: UInt64 = 0     // out_of_seq_request
    public var receivedSequenceError: UInt64 = 0    // rcvd_seq_err (NAK-sequence received)
    public var retryExceeded: UInt64 = 0            // retry_exceeded_err
    public var rnrRetryExceeded: UInt64 = 0         // retry_rnr_exceeded_err
    public var sendRNRError: UInt64 = 0             // send_rnr_err (RNR NAKs sent)
    public var receivedRNRError: UInt64 = 0         // rcvd_rnr_err (RNR NAKs received)
    public var completerRetry: UInt64 = 0           // completer_retry_err (timeouts)
    public var rdmaSends: UInt64 = 0                // rdma_sends
    public var rdmaReceives: UInt64 = 0             // rdma_recvs
    // DCQCN, named as mlx5's hw_counters:
    public var ecnMarkedPackets: UInt64 = 0         // np_ecn_marked_roce_packets: received with CE
    public var cnpsSent: UInt64 = 0                 // np_cnp_sent
    public var cnpsHandled: UInt64 = 0              // rp_cnp_handled: a reaction point cut its rate
    public var cnpsIgnored: UInt64 = 0              // rp_cnp_ignored: no reaction point on that QP
    /// The reaction point of every paced queue pair, at the snapshot's time.
    public var queuePairRates: [SoftQueuePairRate] = []
    // The engine's own:
    public var icrcErrors: UInt64 = 0               // soft_icrc_err: dropped, ICRC mismatch
    public var malformedPackets: UInt64 = 0         // soft_malformed: dropped, did not parse
    public var unknownQueuePair: UInt64 = 0         // soft_bad_dest_qpn: dropped, no such QP
    public var badPartitionKey: UInt64 = 0          // soft_bad_pkey: dropped, P_Key mismatch
    public var badQueueKey: UInt64 = 0              // soft_bad_qkey: UD dropped, Q_Key mismatch
    public var wrongState: UInt64 = 0               // soft_qp_state_drop: QP not ready for it
    public var remoteAccessNAKsSent: UInt64 = 0     // soft_nak_rem_access_sent
    public var invalidRequestNAKsSent: UInt64 = 0   // soft_nak_inv_req_sent
    public var operationalNAKsSent: UInt64 = 0      // soft_nak_rem_op_sent
    public var udDroppedNoReceive: UInt64 = 0       // soft_ud_no_recv
    public var completionQueueOverruns: UInt64 = 0  // soft_cq_overrun
    public var injectedDrops: UInt64 = 0            // soft_fault_drop
    public var injectedDuplicates: UInt64 = 0       // soft_fault_dup
    public var injectedReorders: UInt64 = 0         // soft_fault_reorder
    public var injectedCorruptions: UInt64 = 0      // soft_fault_corrupt
    public var injectedDelays: UInt64 = 0           // soft_fault_delay
    public var unexpectedSource: UInt64 = 0         // soft_bad_src_addr: RC packet not from the connected peer
    public var staleResponses: UInt64 = 0           // soft_stale_response: response for no PSN in flight
    public var refusedReadReplays: UInt64 = 0       // soft_read_replay_refused: duplicate READ outside any executed one
    public var sendWouldBlock: UInt64 = 0           // soft_send_eagain: socket send buffer full
    public var sendNoBuffers: UInt64 = 0            // soft_send_enobufs
    public var sendRefused: UInt64 = 0              // soft_send_econnrefused
    public var sendFailed: UInt64 = 0               // soft_send_err: any other send failure
    public var receiveErrors: UInt64 = 0            // soft_recv_err: a receive call failed
    public var captureDropped: UInt64 = 0           // soft_pcap_dropped: not written, the capture was full
    public var acknowledgementsFlushedByTimer: UInt64 = 0 // soft_ack_timer_flush: deferred ACKs the flusher had to send
    public var acknowledgementProbes: UInt64 = 0    // soft_ack_probe: a tail that asked for no ACK, resent once asking
    public var superDatagramsSent: UInt64 = 0       // soft_gso_sent: GSO super-datagrams sent (each several packets)
    public var superDatagramsReceived: UInt64 = 0   // soft_gso_rcvd: super-datagrams received whole and cut into packets
    public var sendSystemCalls: UInt64 = 0          // soft_send_calls: system calls that sent packets (sendto, sendmsg, sendmmsg)
    // The connection manager (QP 1):
    public var managementReceived: UInt64 = 0       // soft_cm_mads_rcvd: CM MADs accepted for processing
    public var managementSent: UInt64 = 0           // soft_cm_mads_sent (retransmissions included)
    public var managementMalformed: UInt64 = 0      // soft_cm_bad_mad: dropped, not a valid CM MAD (or bad cma_hdr)
    public var managementBadQueueKey: UInt64 = 0    // soft_cm_bad_qkey: dropped, DETH Q_Key is not the GSI Q_Key
    public var managementUnmatched: UInt64 = 0      // soft_cm_unmatched: dropped, no connection for its communication IDs / state
    public var managementDuplicates: UInt64 = 0     // soft_cm_duplicate: a REQ/REP/DREQ seen again (answered or dropped)
    public var managementRetransmits: UInt64 = 0    // soft_cm_retransmit: a REQ/REP/DREQ sent again after its timeout
    public var managementTimeouts: UInt64 = 0       // soft_cm_timeout: a handshake or disconnect that ran out of retries

    public init() {}

    /// (name, value) pairs, rxe's names first.
    public var named: [(name: String, value: UInt64)] {
        [("sent_pkts", sentPackets), ("rcvd_pkts", receivedPackets), ("duplicate_request", duplicateRequest),
         ("out_of_seq_request", outOfSequenceRequest), ("rcvd_seq_err", receivedSequenceError),
         ("retry_exceeded_err", retryExceeded), ("retry_rnr_exceeded_err", rnrRetryExceeded),
         ("send_rnr_err", sendRNRError), ("rcvd_rnr_err", receivedRNRError), ("completer_retry_err", completerRetry),
         ("rdma_sends", rdmaSends), ("rdma_recvs", rdmaReceives),
         ("np_ecn_marked_roce_packets", ecnMarkedPackets), ("np_cnp_sent", cnpsSent),
         ("rp_cnp_handled", cnpsHandled), ("rp_cnp_ignored", cnpsIgnored),
         ("soft_icrc_err", icrcErrors), ("soft_malformed", malformedPackets), ("soft_bad_dest_qpn", unknownQueuePair),
         ("soft_bad_pkey", badPartitionKey), ("soft_bad_qkey", badQueueKey), ("soft_qp_state_drop", wrongState),
         ("soft_nak_rem_access_sent", remoteAccessNAKsSent), ("soft_nak_inv_req_sent", invalidRequestNAKsSent),
         ("soft_nak_rem_op_sent", operationalNAKsSent), ("soft_ud_no_recv", udDroppedNoReceive),
         ("soft_cq_overrun", completionQueueOverruns), ("soft_fault_drop", injectedDrops),
         ("soft_fault_dup", injectedDuplicates), ("soft_fault_reorder", injectedReorders),
         ("soft_fault_corrupt", injectedCorruptions), ("soft_fault_delay", injectedDelays),
         ("soft_bad_src_addr", unexpectedSource), ("soft_stale_response", staleResponses),
         ("soft_read_replay_refused", refusedReadReplays), ("soft_send_eagain", sendWouldBlock),
         ("soft_send_enobufs", sendNoBuffers), ("soft_send_econnrefused", sendRefused),
         ("soft_send_err", sendFailed), ("soft_recv_err", receiveErrors), ("soft_pcap_dropped", captureDropped), ("soft_ack_timer_flush", acknowledgementsFlushedByTimer),
         ("soft_ack_probe", acknowledgementProbes),
         ("soft_gso_sent", superDatagramsSent), ("soft_gso_rcvd", superDatagramsReceived), ("soft_send_calls", sendSystemCalls),
         ("soft_cm_mads_rcvd", managementReceived), ("soft_cm_mads_sent", managementSent), ("soft_cm_bad_mad", managementMalformed),
         ("soft_cm_bad_qkey", managementBadQueueKey), ("soft_cm_unmatched", managementUnmatched),
         ("soft_cm_duplicate", managementDuplicates), ("soft_cm_retransmit", managementRetransmits),
         ("soft_cm_timeout", managementTimeouts)]
    }
}

/// One paced queue pair's reaction point: where its rate stands.
public struct SoftQueuePairRate: Sendable, Equatable {
    public var queuePairNumber: UInt32
    /// R_C: the rate the QP is paced at now.
    public var currentRateBitsPerSecond: Double
    /// R_T: the rate fast recovery climbs back to.
    public var targetRateBitsPerSecond: Double
    /// α, with its decay up to the snapshot applied.
    public var alpha: Double
    /// CNPs this QP's reaction point reacted to.
    public var cnpsHandled: Int

    public init(queuePairNumber: UInt32, currentRateBitsPerSecond: Double, targetRateBitsPerSecond: Double, alpha: Double, cnpsHandled: Int) {
        self.queuePairNumber = queuePairNumber
        self.currentRateBitsPerSecond = currentRateBitsPerSecond
        self.targetRateBitsPerSecond = targetRateBitsPerSecond
        self.alpha = alpha
        self.cnpsHandled = cnpsHandled
    }
}
