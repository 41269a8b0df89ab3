/// Polls every source, stamps the reading, and runs the analysis: per-interval rates, pause
/// shares, DCQCN and transport health, the PFC-storm watchdog and — given a topology — the
/// deadlock detector. One `poll()` per interval; the caller owns the loop and the output.
///
/// ```swift
/// var monitor = Monitor(sources: [try SysfsRDMASource()], clock: SystemMonotonicClock())
/// while true {
///     let report = try monitor.poll()
///     for event in report.stormEvents { print(event) }
///     sleep(1)
/// }
/// ```
public struct Monitor {
    public var sources: [any CounterSource]
    public let clock: any MonitorClock
    public var watchdog: PFCStormWatchdog
    /// Set when a topology is known (from `--topology` or a snapshot file's own).
    public let deadlockDetector: DeadlockDetector?
    public private(set) var previous: CounterSnapshot?
    /// False once every recorded source has replayed its last sample.
    public private(set) var hasMore = true

    public init(sources: [any CounterSource], clock: any MonitorClock, watchdog: PFCStormWatchdog = PFCStormWatchdog(), topology: FabricTopology? = nil) {
        self.sources = sources
        self.clock = clock
        self.watchdog = watchdog
        deadlockDetector = topology.map { DeadlockDetector(graph: BufferDependencyGraph(topology: $0)) }
    }

    /// Reads every source once and analyses the interval since the previous poll. The first
    /// poll has counters but no interval. Recorded sources bring their own time; when several
    /// do, the latest wins (they should describe the same instant).
    public mutating func poll() throws(MonitorError) -> MonitorReport {
        var ports: [PortCounters] = []
        var recorded: MonitorTime?
        var more = false
        for source in sources {
            let reading = try source.read()
            ports += reading.ports
            if let time = reading.recordedTime { recorded = max(recorded ?? time, time) }
            more = more || reading.hasMore
        }
        hasMore = more
        var time = recorded ?? clock.now()
        // A clock that did not advance (two snapshot sources out of step) must not divide by zero.
        if let previous, time <= previous.time { time = previous.time + MonitorTime(nanoseconds: 1) }
        let snapshot = CounterSnapshot(time: time, ports: ports.sorted { $0.key < $1.key })
        defer { previous = snapshot }
        guard let previous else {
            return MonitorReport(snapshot: snapshot, intervals: [], stormEvents: [], stormingQueues: [],
                                 deadlocks: deadlockDetector.map { $0.detect(PausedBuffers(snapshot: snapshot, graph: $0.graph)) } ?? [])
        }
        let intervals = PortInterval.between(previous, snapshot)
        let events = watchdog.observe(intervals)
        let deadlocks = deadlockDetector.map { $0.detect(PausedBuffers(snapshot: snapshot, previous: previous, graph: $0.graph)) } ?? []
        return MonitorReport(snapshot: snapshot, intervals: intervals, stormEvents: events,
                             stormingQueues: watchdog.stormingQueues, deadlocks: deadlocks)
    }
}

/// The outcome of one poll.
public struct MonitorReport: Sendable {
    public var snapshot: CounterSnapshot
    /// Empty on the first poll.
    public var intervals: [PortInterval]
    /// Storms detected or restored during this interval.
    public var stormEvents: [PFCStormWatchdog.Event]
    /// Every queue in a storm now.
    public var stormingQueues: [PFCStormWatchdog.Queue]
    public var deadlocks: [Deadlock]

    public init(snapshot: CounterSnapshot, intervals: [PortInterval], stormEvents: [PFCStormWatchdog.Event],
                stormingQueues: [PFCStormWatchdog.Queue], deadlocks: [Deadlock]) {
        self.snapshot = snapshot
        self.intervals = intervals
        self.stormEvents = stormEvents
        self.stormingQueues = stormingQueues
        self.deadlocks = deadlocks
    }
}
