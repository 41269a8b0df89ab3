/// Whether a port is paused *now*, per direction and priority: from the snapshot's gauges
/// (`tx_prioN_paused`, `rx_prioN_paused`) or, without them, from the last interval's pause
/// share (≥ `fullyPausedShare`). This is what the fleet view collects from many monitors
/// (as `rdma_monitor_pause_active`) to run the deadlock detector over a whole fabric.
public struct PauseFlag: Hashable, Sendable {
    public var port: PortKey
    public var direction: PauseCounterName.Direction
    public var priority: Int
    public var active: Bool

    public init(port: PortKey, direction: PauseCounterName.Direction, priority: Int, active: Bool) {
        self.port = port
        self.direction = direction
        self.priority = priority
        self.active = active
    }

    /// `tx_prio3_paused` and the like.
    public var gaugeName: String { "\(direction.rawValue)_prio\(priority)_paused" }

    public static func flags(in report: MonitorReport, fullyPausedShare: Double = 0.99) -> [PauseFlag] {
        var flags: [PauseFlag: Bool] = [:]
        func set(_ port: PortKey, _ direction: PauseCounterName.Direction, _ priority: Int, _ active: Bool) {
            flags[PauseFlag(port: port, direction: direction, priority: priority, active: false)] = active
        }
        for interval in report.intervals {
            for activity in interval.pause {
                guard let priority = activity.priority, let share = activity.pausedShare else { continue }
                set(interval.key, activity.direction, priority, share >= fullyPausedShare)
            }
        }
        for port in report.snapshot.ports {
            for (name, value) in port.gauges {
                guard name.hasSuffix("_paused"), let parsed = PauseCounterName(parsing: String(name.dropLast("_paused".count)) + "_pause"),
                      let priority = parsed.priority else { continue }
                set(port.key, parsed.direction, priority, value >= 1)
            }
        }
        return flags.map { PauseFlag(port: $0.key.port, direction: $0.key.direction, priority: $0.key.priority, active: $0.value) }
            .sorted { ($0.port, $0.direction.rawValue, $0.priority) < ($1.port, $1.direction.rawValue, $1.priority) }
    }

    /// A snapshot holding only these flags as gauges, for ``PausedBuffers``.
    public static func snapshot(of flags: [PauseFlag], time: MonitorTime = .zero) -> CounterSnapshot {
        var ports: [PortKey: PortCounters] = [:]
        for flag in flags {
            ports[flag.port, default: PortCounters(key: flag.port, kind: .switch, counters: [:])].gauges[flag.gaugeName] = flag.active ? 1 : 0
        }
        return CounterSnapshot(time: time, ports: ports.values.sorted { $0.key < $1.key })
    }
}
