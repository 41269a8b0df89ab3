/// What happened on one port between two readings: counter rates, the share of time each
/// priority was paused, DCQCN health and transport error rates.
///
/// A counter that went backwards (the device was reset, the driver reloaded, the snapshot
/// wrapped) gives no rate for that interval and is listed in `resetCounters`: never a
/// negative or an absurd rate.
///
/// ```swift
/// for port in PortInterval.between(earlier, later) {
///     print(port.key, port.pause.first?.pausedShare ?? 0, port.dcqcn.cnpSentPerSecond ?? 0)
/// }
/// ```
public struct PortInterval: Sendable {
    public var key: PortKey
    public var kind: PortKind
    public var start: MonitorTime
    public var end: MonitorTime
    /// Increase per counter (only counters present at both ends that did not go backwards).
    public var deltas: [String: UInt64]
    public var resetCounters: [String]
    /// The gauges at the end of the interval.
    public var gauges: [String: Double]
    public var pause: [PauseActivity]
    public var dcqcn: DCQCNHealth
    public var transport: TransportHealth

    public var seconds: Double { (end - start).seconds }

    public func rate(_ counter: String) -> Double? {
        guard let delta = deltas[counter], seconds > 0 else { return nil }
        return Double(delta) / seconds
    }

    /// Sum of the rates of those of `names` the port has; nil when it has none of them.
    func summedRate(_ names: [String]) -> Double? {
        let present = names.compactMap { rate($0) }
        return present.isEmpty ? nil : present.reduce(0, +)
    }

    /// Intervals for every port present in both snapshots; none when time did not advance.
    public static func between(_ earlier: CounterSnapshot, _ later: CounterSnapshot) -> [PortInterval] {
        guard later.time > earlier.time else { return [] }
        var before: [PortKey: PortCounters] = [:]
        for port in earlier.ports where before[port.key] == nil { before[port.key] = port }
        return later.ports.compactMap { port in
            before[port.key].map { PortInterval(from: $0, to: port, start: earlier.time, end: later.time) }
        }
    }

    public init(from earlier: PortCounters, to later: PortCounters, start: MonitorTime, end: MonitorTime) {
        key = later.key
        kind = later.kind
        self.start = start
        self.end = end
        gauges = later.gauges
        var deltas: [String: UInt64] = [:]
        var resets: [String] = []
        for (name, value) in later.counters {
            guard let previous = earlier.counters[name] else { continue }
            if value >= previous { deltas[name] = value - previous } else { resets.append(name) }
        }
        self.deltas = deltas
        resetCounters = resets.sorted()
        pause = []
        dcqcn = DCQCNHealth()
        transport = TransportHealth()
        pause = PauseActivity.activities(in: self)
        dcqcn = DCQCNHealth(self)
        transport = TransportHealth(self)
    }
}

/// Pauses seen in one direction on one priority (nil: link-level) during an interval.
public struct PauseActivity: Sendable, Equatable {
    public var direction: PauseCounterName.Direction
    public var priority: Int?
    public var framesPerSecond: Double?
    /// Pause duration ÷ interval, 0…1; nil when the driver has no duration counter.
    public var pausedShare: Double?
    public var frames: UInt64?
    /// Pause ON→OFF transitions (mlx5 `rx_prioN_pause_transition`).
    public var transitions: UInt64?

    static func activities(in interval: PortInterval) -> [PauseActivity] {
        var byQueue: [String: PauseActivity] = [:]
        let microseconds = interval.seconds * 1e6
        for (name, delta) in interval.deltas {
            guard let parsed = PauseCounterName(parsing: name), parsed.measure != .stormWarnings, parsed.measure != .stormErrors else { continue }
            let queue = "\(parsed.direction.rawValue)\(parsed.priority ?? -1)"
            var activity = byQueue[queue] ?? PauseActivity(direction: parsed.direction, priority: parsed.priority)
            switch parsed.measure {
            case .frames:
                activity.frames = delta
                activity.framesPerSecond = interval.seconds > 0 ? Double(delta) / interval.seconds : nil
            case .durationMicroseconds:
                if microseconds > 0 { activity.pausedShare = min(1, Double(delta) / microseconds) }
            case .transitions:
                activity.transitions = delta
            case .stormWarnings, .stormErrors:
                break
            }
            byQueue[queue] = activity
        }
        return byQueue.values.sorted { ($0.direction.rawValue, $0.priority ?? -1) < ($1.direction.rawValue, $1.priority ?? -1) }
    }

    init(direction: PauseCounterName.Direction, priority: Int?) {
        self.direction = direction
        self.priority = priority
    }
}

/// DCQCN at work on a NIC: ECN-marked packets received (the NP's input), CNPs sent (NP) and
/// handled or ignored (RP). mlx5 `hw_counters` names, and the optional counters of
/// `rdma statistic set … optional-counters` (`cc_rx_ce_pkts`, `cc_tx_cnp_pkts`, `cc_rx_cnp_pkts`).
/// All nil on rxe and the soft engine: they have no DCQCN counters.
public struct DCQCNHealth: Sendable, Equatable {
    public static let ecnMarkedNames = ["np_ecn_marked_roce_packets", "cc_rx_ce_pkts"]
    public static let cnpSentNames = ["np_cnp_sent", "cc_tx_cnp_pkts"]
    public static let cnpHandledNames = ["rp_cnp_handled", "cc_rx_cnp_pkts"]
    public static let cnpIgnoredNames = ["rp_cnp_ignored"]

    public var ecnMarkedPerSecond: Double?
    public var cnpSentPerSecond: Double?
    public var cnpHandledPerSecond: Double?
    public var cnpIgnoredPerSecond: Double?

    public init() {}

    init(_ interval: PortInterval) {
        ecnMarkedPerSecond = interval.summedRate(Self.ecnMarkedNames)
        cnpSentPerSecond = interval.summedRate(Self.cnpSentNames)
        cnpHandledPerSecond = interval.summedRate(Self.cnpHandledNames)
        cnpIgnoredPerSecond = interval.summedRate(Self.cnpIgnoredNames)
    }

    /// CNPs ignored ÷ CNPs received (handled + ignored): a rate limiter that shrugs off
    /// congestion notifications. nil without CNPs.
    public var ignoredShare: Double? {
        guard let ignored = cnpIgnoredPerSecond, let handled = cnpHandledPerSecond, ignored + handled > 0 else { return nil }
        return ignored / (ignored + handled)
    }
}

/// Transport trouble: retransmissions (mlx5 adaptive retransmissions; duplicates the
/// responder saw), timeouts, sequence errors (NAK-sequence sent or received, out of order).
public struct TransportHealth: Sendable, Equatable {
    public static let retransmissionNames = ["roce_adp_retrans", "duplicate_request"]
    public static let timeoutNames = ["local_ack_timeout_err", "completer_retry_err"]
    public static let sequenceErrorNames = ["packet_seq_err", "out_of_sequence", "implied_nak_seq_err", "rcvd_seq_err", "out_of_seq_request"]

    public var retransmissionsPerSecond: Double?
    public var timeoutsPerSecond: Double?
    public var sequenceErrorsPerSecond: Double?

    public init() {}

    init(_ interval: PortInterval) {
        retransmissionsPerSecond = interval.summedRate(Self.retransmissionNames)
        timeoutsPerSecond = interval.summedRate(Self.timeoutNames)
        sequenceErrorsPerSecond = interval.summedRate(Self.sequenceErrorNames)
    }
}
