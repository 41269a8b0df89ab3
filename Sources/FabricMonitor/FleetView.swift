import Foundation

/// The deadlock detector over a whole fabric: pause state collected from many hosts and
/// switches — from a Prometheus server that scrapes every `rdma-monitor` (the series
/// `rdma_monitor_pause_active`), or from snapshot files — matched against one topology.
///
/// ```swift
/// let flags = try FleetView.pauseFlags(prometheusResponse: body)   // GET /api/v1/query?query=rdma_monitor_pause_active
/// let result = FleetView(topology: topology).analyze(flags)
/// for deadlock in result.deadlocks { print(deadlock) }
/// ```
public struct FleetView: Sendable {
    public let detector: DeadlockDetector

    public init(topology: FabricTopology) {
        detector = DeadlockDetector(graph: BufferDependencyGraph(topology: topology))
    }

    public struct Result: Sendable {
        public var routing: CyclicDependencyCheck.Report
        public var pausedBuffers: Int
        public var unmatchedPorts: [PortKey]
        public var deadlocks: [Deadlock]
    }

    public func analyze(_ flags: [PauseFlag]) -> Result {
        let graph = detector.graph
        let paused = PausedBuffers(snapshot: PauseFlag.snapshot(of: flags), graph: graph)
        let unmatched = Set(flags.filter { graph.link(arrivingAt: $0.port.node, port: $0.port.device) == nil }.map(\.port)).sorted()
        return Result(routing: CyclicDependencyCheck(graph: graph).run(),
                      pausedBuffers: paused.byPriority.values.reduce(0) { $0 + $1.count },
                      unmatchedPorts: unmatched, deadlocks: detector.detect(paused))
    }

    /// Pause flags from snapshot files: each file's last two samples (or its only one).
    public static func pauseFlags(snapshots files: [SnapshotFile]) -> [PauseFlag] {
        files.flatMap { file -> [PauseFlag] in
            let last = file.samples[file.samples.count - 1]
            let intervals = file.samples.count > 1 ? PortInterval.between(file.samples[file.samples.count - 2], last) : []
            return PauseFlag.flags(in: MonitorReport(snapshot: last, intervals: intervals, stormEvents: [], stormingQueues: [], deadlocks: []))
        }
    }

    /// Pause flags from the JSON of a Prometheus instant query for `rdma_monitor_pause_active`
    /// (labels `node`, `device`, `port`, `direction`, `priority`). Hostile input: every
    /// field is checked and a malformed answer is refused naming the field.
    public static func pauseFlags(prometheusResponse data: Data) throws(MonitorError) -> [PauseFlag] {
        let document = "Prometheus response"
        let root = try JSONObjectReader(try JSONValue.parse(data, document: document), path: "", document: document,
                                        allowedKeys: ["status", "data", "warnings", "infos", "error", "errorType"])
        let status = try root.string("status")
        guard status == "success" else {
            throw MonitorError(document, "query failed: \((try? root.string("error", maximumLength: 4096)) ?? status)")
        }
        let body = try JSONObjectReader(try root.required("data"), path: "data", document: document, allowedKeys: ["resultType", "result", "stats"])
        guard try body.string("resultType") == "vector" else { throw body.error("resultType", "expected \"vector\" (an instant query)") }
        var flags: [PauseFlag] = []
        for (index, item) in try body.array("result", maximumCount: 10_000_000).enumerated() {
            let sample = try JSONObjectReader(item, path: "data.result[\(index)]", document: document, allowedKeys: ["metric", "value"])
            let labels = try sample.map("metric", maximumCount: 64) { (value, error) throws(MonitorError) -> String in
                guard case .string(let text) = value else { throw error("expected a string") }
                return text
            }
            func label(_ name: String) throws(MonitorError) -> String {
                guard let value = labels[name] else { throw sample.error("metric.\(name)", "missing label") }
                return value
            }
            guard let direction = PauseCounterName.Direction(rawValue: try label("direction")) else {
                throw sample.error("metric.direction", "expected rx or tx")
            }
            guard let priority = Int(try label("priority")), (0...7).contains(priority) else { throw sample.error("metric.priority", "expected 0…7") }
            guard let portNumber = Int(try label("port")), (0...65535).contains(portNumber) else { throw sample.error("metric.port", "expected 0…65535") }
            let values = try sample.array("value", maximumCount: 2)
            guard values.count == 2, case .string(let text) = values[1], let value = Double(text) else {
                throw sample.error("value", "expected [time, \"number\"]")
            }
            flags.append(PauseFlag(port: PortKey(node: try label("node"), device: try label("device"), port: portNumber),
                                   direction: direction, priority: priority, active: value >= 1))
        }
        return flags
    }
}
