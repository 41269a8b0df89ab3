import Congestion
import RoCEWire

// The notification point role (mlx5's "NP"): a packet of a queue pair that arrives with CE
// in its IP header earns the QP's peer a CNP — at most one per QP per `cnpInterval`, sent
// on the marked packet's arrival (`Congestion.NotificationPoint`), the way mlx5 sends it:
// BTH opcode 0x81 with BECN, P_Key 0xFFFF, DestQP the peer's QP, PSN 0, 16 reserved zero
// bytes, ICRC; IP DSCP 48 with ECT(0); UDP source port 0xF000 (one port for every CNP, where
// the wire lets us choose it, so a switch can tell them from data without parsing the BTH).

extension SoftDevice {
    /// The UDP source port of every CNP, as mlx5 sends them.
    static let congestionNotificationSourcePort: UInt16 = 0xF000

    /// A packet for `qp` that passed every check arrived CE-marked at `now`.
    func congestionExperienced(_ qp: SoftQueuePair, now: UInt64) {
        counters.ecnMarkedPackets += 1
        guard configuration.congestion.notificationPoint, let peer = qp.peer else { return }
        if qp.notificationPoint == nil { qp.notificationPoint = NotificationPoint(minimumCNPInterval: configuration.congestion.cnpInterval) }
        guard qp.notificationPoint!.packetArrived(congestionExperienced: true, at: Nanoseconds(Int64(bitPattern: now))) else { return }
        let headers = TransportHeaders(BaseTransportHeader(opcode: .congestionNotification, backwardCongestion: true,
                                                           destinationQP: qp.destinationQueuePair, psn: 0))
        if emit(headers, payloadLength: 0, fromPort: Self.congestionNotificationSourcePort, to: peer, trafficClass: .congestionNotification) {
            counters.cnpsSent += 1
        }
    }
}
