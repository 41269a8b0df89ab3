/// The per-priority pause counters drivers export, parsed from their names:
/// mlx5's `rx_prio3_pause`, `tx_prio3_pause_duration`, `rx_prio3_pause_transition`, the
/// link-level `rx_pause_ctrl_phy` / `tx_pause_ctrl_phy`, and the NIC watchdog's
/// `tx_pause_storm_warning_events` / `tx_pause_storm_error_events`.
///
/// ```swift
/// PauseCounterName(parsing: "tx_prio3_pause_duration")   // direction .transmit, priority 3, .durationMicroseconds
/// ```
public struct PauseCounterName: Hashable, Sendable {
    public enum Direction: String, Sendable, CaseIterable { case receive = "rx", transmit = "tx" }
    public enum Measure: String, Sendable { case frames, durationMicroseconds, transitions, stormWarnings, stormErrors }

    public var direction: Direction
    /// nil: link-level (802.3x) pause, not per priority.
    public var priority: Int?
    public var measure: Measure

    public init(direction: Direction, priority: Int?, measure: Measure) {
        self.direction = direction
        self.priority = priority
        self.measure = measure
    }

    public init?(parsing rawName: String) {
        let name = rawName.trimmingWhitespace()
        switch name {
        case "rx_pause_ctrl_phy": self.init(direction: .receive, priority: nil, measure: .frames); return
        case "tx_pause_ctrl_phy": self.init(direction: .transmit, priority: nil, measure: .frames); return
        case "tx_pause_storm_warning_events": self.init(direction: .transmit, priority: nil, measure: .stormWarnings); return
        case "tx_pause_storm_error_events": self.init(direction: .transmit, priority: nil, measure: .stormErrors); return
        default: break
        }
        let parts = name.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count >= 3, let direction = Direction(rawValue: String(parts[0])), parts[1].hasPrefix("prio"),
              let priority = Int(parts[1].dropFirst(4)), (0...7).contains(priority), parts[1].count == 5 else { return nil }
        switch parts[2...].joined(separator: "_") {
        case "pause": self.init(direction: direction, priority: priority, measure: .frames)
        case "pause_duration": self.init(direction: direction, priority: priority, measure: .durationMicroseconds)
        case "pause_transition": self.init(direction: direction, priority: priority, measure: .transitions)
        default: return nil
        }
    }

    /// The name mlx5 uses (what snapshot files carry).
    public var name: String {
        switch (measure, priority) {
        case (.stormWarnings, _): "tx_pause_storm_warning_events"
        case (.stormErrors, _): "tx_pause_storm_error_events"
        case (.frames, nil): "\(direction.rawValue)_pause_ctrl_phy"
        case (.frames, let priority?): "\(direction.rawValue)_prio\(priority)_pause"
        case (.durationMicroseconds, let priority): "\(direction.rawValue)_prio\(priority ?? 0)_pause_duration"
        case (.transitions, let priority): "\(direction.rawValue)_prio\(priority ?? 0)_pause_transition"
        }
    }
}
