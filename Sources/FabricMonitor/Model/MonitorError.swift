/// Everything the monitor refuses: a malformed snapshot or topology (with the JSON field at
/// fault), an unknown device, an unreadable counter tree, an ioctl that failed.
///
/// The description names what failed and, where there is one, what to do.
public struct MonitorError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What was being read or checked: `snapshot samples[2].ports[0].counters.rx_prio3_pause`,
    /// `device mlx5_9`, `SIOCETHTOOL ETHTOOL_GSTATS on eth0`.
    public var subject: String
    public var problem: String

    public init(_ subject: String, _ problem: String) {
        self.subject = subject
        self.problem = problem
    }

    public var description: String { subject.isEmpty ? problem : "\(subject): \(problem)" }
}
