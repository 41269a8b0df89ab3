/// Which port a set of counters belongs to: a node (host or switch), a device on it (an RDMA
/// device such as `mlx5_0`, a netdev such as `eth0`, a switch port such as `Ethernet8`) and
/// a port number (the RDMA port; 0 where the device has no numbered ports).
public struct PortKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var node: String
    public var device: String
    public var port: Int

    public init(node: String, device: String, port: Int = 0) {
        self.node = node
        self.device = device
        self.port = port
    }

    public static func < (a: PortKey, b: PortKey) -> Bool {
        (a.node, a.device, a.port) < (b.node, b.device, b.port)
    }

    public var description: String {
        let place = node.isEmpty ? device : "\(node)/\(device)"
        return port == 0 ? place : "\(place)/\(port)"
    }
}

/// What kind of thing a port's counters come from; decides which watchdog rule applies
/// (a switch queue that receives pauses, or a NIC that sends them).
public enum PortKind: String, Sendable, CaseIterable {
    /// `/sys/class/infiniband/<device>/ports/<n>/{counters,hw_counters}`.
    case rdma
    /// A netdev's `ethtool -S` statistics.
    case ethernet
    /// The userspace engine's counters.
    case soft
    /// A switch port (from a snapshot file or the simulator).
    case `switch`

    /// Hosts send pauses when their receive pipeline stalls; switches receive them.
    public var isHost: Bool { self != .switch }
}

/// One port's counters at one instant, under the names its source uses (rxe's, mlx5's,
/// ethtool's), plus gauges — values that are not counters, such as a queue's occupancy.
public struct PortCounters: Sendable, Equatable {
    public var key: PortKey
    public var kind: PortKind
    public var counters: [String: UInt64]
    public var gauges: [String: Double]

    public init(key: PortKey, kind: PortKind, counters: [String: UInt64], gauges: [String: Double] = [:]) {
        self.key = key
        self.kind = kind
        self.counters = counters
        self.gauges = gauges
    }
}

/// Every port's counters at one instant.
public struct CounterSnapshot: Sendable, Equatable {
    /// When the counters were read (monotonic), or recorded (snapshot files).
    public var time: MonitorTime
    public var ports: [PortCounters]

    public init(time: MonitorTime, ports: [PortCounters]) {
        self.time = time
        self.ports = ports
    }
}
