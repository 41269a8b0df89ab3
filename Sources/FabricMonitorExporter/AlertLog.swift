import FabricMonitor
import Logging

/// Alerts through swift-log: storms detected (warning) and over (notice), deadlocks when they
/// appear (critical) and when they clear (notice), each once rather than on every poll.
///
/// ```swift
/// var alerts = AlertLog(logger: Logger(label: "rdma-monitor"))
/// alerts.log(report)
/// ```
public struct AlertLog {
    public var logger: Logger
    private var activeDeadlocks: Set<String> = []

    public init(logger: Logger) { self.logger = logger }

    public mutating func log(_ report: MonitorReport) {
        for event in report.stormEvents {
            let metadata: Logger.Metadata = ["port": "\(event.queue.port)", "priority": "\(event.queue.priority.map(String.init) ?? "link")",
                                             "role": "\(event.queue.role.rawValue)", "action": "\(event.action.rawValue)"]
            switch event.kind {
            case .stormDetected, .nicStormCounter: logger.warning("\(event.description)", metadata: metadata)
            case .stormRestored: logger.notice("\(event.description)", metadata: metadata)
            }
        }
        let now = Set(report.deadlocks.map(\.description))
        for deadlock in report.deadlocks where !activeDeadlocks.contains(deadlock.description) {
            logger.critical("\(deadlock.description)", metadata: ["priority": "\(deadlock.priority)", "break_at": "\(deadlock.breakPoint.node)"])
        }
        for cleared in activeDeadlocks.subtracting(now) { logger.notice("PFC deadlock cleared: \(cleared)") }
        activeDeadlocks = now
    }
}
