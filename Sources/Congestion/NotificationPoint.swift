/// The DCQCN notification point: the receiver side of one flow, which turns CE-marked
/// packets into congestion notification packets (CNPs).
///
/// At most one CNP per ``minimumCNPInterval`` (N), and only in answer to a CE-marked packet.
/// The CNP goes out on the marked packet's arrival, as mlx5 does (`min_time_between_cnps`);
/// a mark that arrives inside the gap is not remembered. (The ns-3 code instead checks every
/// N whether a mark arrived since the last check; both obey the rule, this one needs no timer.)
///
/// ```swift
/// var np = NotificationPoint(minimumCNPInterval: .microseconds(50))
/// np.packetArrived(congestionExperienced: true, at: .microseconds(1))   // true: send a CNP
/// np.packetArrived(congestionExperienced: true, at: .microseconds(20))  // false: too soon
/// np.packetArrived(congestionExperienced: false, at: .microseconds(60)) // false: not marked
/// ```
public struct NotificationPoint: Hashable, Sendable {
    public let minimumCNPInterval: Nanoseconds
    public private(set) var lastCNPSent: Nanoseconds?
    public private(set) var markedPacketsReceived = 0
    public private(set) var cnpsSent = 0

    public init(minimumCNPInterval: Nanoseconds) {
        precondition(minimumCNPInterval >= .zero, "the CNP interval must not be negative")
        self.minimumCNPInterval = minimumCNPInterval
    }

    public init(parameters: DCQCNParameters) {
        self.init(minimumCNPInterval: parameters.minimumCNPInterval)
    }

    /// Records a data packet of the flow arriving at `now`; returns true when the caller must
    /// send a CNP to the flow's sender now.
    public mutating func packetArrived(congestionExperienced: Bool, at now: Nanoseconds) -> Bool {
        guard congestionExperienced else { return false }
        markedPacketsReceived += 1
        if let last = lastCNPSent, now - last < minimumCNPInterval { return false }
        lastCNPSent = now
        cnpsSent += 1
        return true
    }
}
