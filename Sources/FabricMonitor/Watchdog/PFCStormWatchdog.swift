/// A PFC-storm watchdog in SONiC's three stages, per lossless queue, on measured elapsed time
/// (not poll counts, which change meaning when the poll interval does):
///
/// 1. **Detection** — an interval is *stormy* when the queue was paused for at least 99 % of
///    it (pause-duration counters; SONiC's 2024 rule) or, on counters without durations, when
///    pauses arrived and the queue sent nothing while holding packets (the older rule).
///    Occupancy and transmit counters, where present, must agree (packets waiting, none
///    sent). A storm is declared once stormy intervals add up to `detectionTime` in a row.
/// 2. **Mitigation** — an alert event, always. The action hook runs only when the
///    configuration asks for `drop` or `forward`, as SONiC's actions do.
/// 3. **Restoration** — once intervals without a single pause add up to `restorationTime`.
///
/// Two kinds of queue are watched: a switch egress queue that *receives* pauses (snapshots
/// of switch ports), and a NIC that keeps *sending* them — the seed paper's storm, whose cure
/// was exactly such a watchdog on NIC and switch. A NIC's own storm-prevention counters
/// (`tx_pause_storm_warning_events`, `…_error_events`) raise an event the moment they move.
///
/// ```swift
/// var watchdog = PFCStormWatchdog(configuration: .init(detectionTime: .milliseconds(200)))
/// for event in watchdog.observe(PortInterval.between(earlier, later)) { logger.warning("\(event)") }
/// ```
public struct PFCStormWatchdog {
    public enum Action: String, Sendable, CaseIterable { case alert, drop, forward }

    public struct Configuration: Sendable {
        public var detectionTime: MonitorTime
        public var restorationTime: MonitorTime
        /// The share of an interval a queue must be paused for it to count as stormy.
        public var fullyPausedShare: Double
        public var action: Action

        public init(detectionTime: MonitorTime = .milliseconds(200), restorationTime: MonitorTime = .milliseconds(200),
                    fullyPausedShare: Double = 0.99, action: Action = .alert) {
            self.detectionTime = detectionTime
            self.restorationTime = restorationTime
            self.fullyPausedShare = fullyPausedShare
            self.action = action
        }
    }

    /// Which side of a pause the queue is on.
    public enum Role: String, Sendable {
        /// A switch egress queue held by pauses it receives.
        case switchQueue
        /// A NIC sending pauses (its receive pipeline stalled, or a bug).
        case nicTransmitter
    }

    public struct Queue: Hashable, Sendable, Comparable, CustomStringConvertible {
        public var port: PortKey
        /// nil: link-level pause.
        public var priority: Int?
        public var role: Role

        public init(port: PortKey, priority: Int?, role: Role) {
            self.port = port
            self.priority = priority
            self.role = role
        }

        public static func < (a: Queue, b: Queue) -> Bool { (a.port, a.priority ?? -1) < (b.port, b.priority ?? -1) }
        public var description: String {
            "\(port) \(priority.map { "prio \($0)" } ?? "link-level") (\(role == .switchQueue ? "switch queue receiving pauses" : "NIC sending pauses"))"
        }
    }

    public struct Event: Sendable, Equatable, CustomStringConvertible {
        public enum Kind: String, Sendable { case stormDetected, stormRestored, nicStormCounter }
        public var kind: Kind
        public var queue: Queue
        public var time: MonitorTime
        /// Stormy time accumulated at detection; clear time at restoration.
        public var over: MonitorTime
        public var action: Action

        public var description: String {
            switch kind {
            case .stormDetected:
                "PFC storm detected on \(queue): paused for \(over) in a row (action: \(action.rawValue))"
            case .stormRestored:
                "PFC storm over on \(queue): no pause for \(over)"
            case .nicStormCounter:
                "NIC pause-storm prevention fired on \(queue.port) (tx_pause_storm_*_events grew)"
            }
        }
    }

    struct QueueState {
        var stormy: Int64 = 0
        var clear: Int64 = 0
        var inStorm = false
    }

    public var configuration: Configuration
    /// Runs on detection and restoration when `configuration.action` is not `.alert`.
    public var actionHook: ((Event) -> Void)?
    var states: [Queue: QueueState] = [:]

    public init(configuration: Configuration = Configuration(), actionHook: ((Event) -> Void)? = nil) {
        self.configuration = configuration
        self.actionHook = actionHook
    }

    /// Queues in a storm now.
    public var stormingQueues: [Queue] { states.filter(\.value.inStorm).map(\.key).sorted() }

    /// Feeds one interval per port; returns what changed.
    public mutating func observe(_ intervals: [PortInterval]) -> [Event] {
        var events: [Event] = []
        for interval in intervals {
            let role: Role = interval.kind.isHost ? .nicTransmitter : .switchQueue
            let direction: PauseCounterName.Direction = role == .switchQueue ? .receive : .transmit
            for activity in interval.pause where activity.direction == direction {
                let queue = Queue(port: interval.key, priority: activity.priority, role: role)
                if let event = step(queue, verdict: verdict(activity, role: role, in: interval), interval: interval) { events.append(event) }
            }
            // Queues seen before but whose counters vanished or went backwards: no verdict.
            for reset in interval.resetCounters {
                guard let name = PauseCounterName(parsing: reset), name.direction == direction,
                      name.measure == .frames || name.measure == .durationMicroseconds else { continue }
                _ = step(Queue(port: interval.key, priority: name.priority, role: role), verdict: .unknown, interval: interval)
            }
            let stormCounters = (interval.deltas["tx_pause_storm_warning_events"] ?? 0) + (interval.deltas["tx_pause_storm_error_events"] ?? 0)
            if role == .nicTransmitter, stormCounters > 0 {
                events.append(Event(kind: .nicStormCounter, queue: Queue(port: interval.key, priority: nil, role: role),
                                    time: interval.end, over: interval.end - interval.start, action: configuration.action))
            }
        }
        for event in events where event.kind != .nicStormCounter && configuration.action != .alert { actionHook?(event) }
        return events
    }

    enum Verdict { case stormy, paused, clear, unknown }

    func verdict(_ activity: PauseActivity, role: Role, in interval: PortInterval) -> Verdict {
        let priority = activity.priority
        let framesGrew = (activity.frames ?? 0) > 0
        let paused = framesGrew || (activity.pausedShare ?? 0) > 0
        guard paused else {
            return activity.frames != nil || activity.pausedShare != nil ? .clear : .unknown
        }
        if let priority {
            // Agreement from queue counters where the source has them: a switch queue holding
            // packets and sending none; a NIC whose receive pipeline takes in nothing.
            let waiting = role == .switchQueue ? interval.gauges["tx_prio\(priority)_queue_bytes"].map { $0 > 0 } : nil
            let progress = role == .switchQueue ? interval.deltas["tx_prio\(priority)_packets"] : interval.deltas["rx_prio\(priority)_packets"]
            if waiting == false || (progress ?? 0) > 0 { return .paused }
            if let share = activity.pausedShare { return share >= configuration.fullyPausedShare ? .stormy : .paused }
            // Frames only: the older rule needs evidence the queue is stuck.
            return framesGrew && (progress != nil || waiting == true) ? .stormy : .paused
        }
        if let share = activity.pausedShare { return share >= configuration.fullyPausedShare ? .stormy : .paused }
        return .paused
    }

    mutating func step(_ queue: Queue, verdict: Verdict, interval: PortInterval) -> Event? {
        var state = states[queue] ?? QueueState()
        defer { states[queue] = state }
        let length = (interval.end - interval.start).nanoseconds
        switch verdict {
        case .stormy:
            state.stormy += length
            state.clear = 0
            if !state.inStorm, state.stormy >= configuration.detectionTime.nanoseconds {
                state.inStorm = true
                return Event(kind: .stormDetected, queue: queue, time: interval.end, over: MonitorTime(nanoseconds: state.stormy), action: configuration.action)
            }
        case .paused:
            state.stormy = 0
            state.clear = 0
        case .clear:
            state.stormy = 0
            state.clear += length
            if state.inStorm, state.clear >= configuration.restorationTime.nanoseconds {
                state.inStorm = false
                return Event(kind: .stormRestored, queue: queue, time: interval.end, over: MonitorTime(nanoseconds: state.clear), action: configuration.action)
            }
        case .unknown:
            state.stormy = 0
            state.clear = 0
        }
        return nil
    }
}
