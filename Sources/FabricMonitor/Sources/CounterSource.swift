/// Anything that yields port counters: sysfs RDMA counters, ethtool statistics, the soft
/// engine, a recorded snapshot file. ``Monitor`` polls every source once per interval.
///
/// ```swift
/// let sources: [any CounterSource] = [SysfsRDMASource(), try EthtoolSource(interfaces: ["eth0"])]
/// var monitor = Monitor(sources: sources, clock: SystemMonotonicClock())
/// let report = try monitor.poll()
/// ```
public protocol CounterSource {
    /// For messages and the `source` label: `sysfs /sys/class/infiniband`, `ethtool eth0`.
    var sourceDescription: String { get }

    /// Reads every port now. A recorded source also returns the time the counters were taken.
    func read() throws(MonitorError) -> CounterReading
}

/// What one read of a source returns.
public struct CounterReading: Sendable {
    public var ports: [PortCounters]
    /// Set by recorded sources (snapshot files): the instant the counters describe. Live
    /// sources leave it nil and the monitor stamps the reading with its clock.
    public var recordedTime: MonitorTime?
    /// False once a recorded source has replayed its last sample.
    public var hasMore: Bool

    public init(ports: [PortCounters], recordedTime: MonitorTime? = nil, hasMore: Bool = true) {
        self.ports = ports
        self.recordedTime = recordedTime
        self.hasMore = hasMore
    }
}
