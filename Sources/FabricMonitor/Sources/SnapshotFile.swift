import Foundation

/// Recorded counters in a JSON file, so that counters collected on switches, on other hosts
/// or by the fabric simulator are analysed exactly like live ones.
///
/// ## Format (`rdma-monitor-snapshot/1`)
/// ```json
/// {
///   "format": "rdma-monitor-snapshot/1",
///   "samples": [
///     { "timeNanoseconds": 0,
///       "ports": [
///         { "node": "S1", "device": "Ethernet8", "port": 0, "kind": "switch",
///           "counters": { "rx_prio3_pause": 120, "rx_prio3_pause_duration": 95000,
///                         "tx_prio3_packets": 500000 },
///           "gauges": { "tx_prio3_queue_bytes": 65536, "tx_prio3_paused": 1 } } ] },
///     { "timeNanoseconds": 100000000, "ports": [ … ] }
///   ],
///   "topology": { … see FabricTopology … }
/// }
/// ```
/// - `samples`: in increasing `timeNanoseconds` (a monotonic time, any origin); 1…1,000,000.
/// - a port: `node` (host or switch name), `device` (RDMA device, netdev or switch port name),
///   `port` (RDMA port number, default 0), `kind` (`rdma`, `ethernet`, `soft`, `switch`),
///   `counters` (name → whole number 0…2⁶⁴−1, names as the source spells them: rxe's, mlx5's
///   hw_counters, ethtool's), `gauges` (name → number, values that are not counters).
/// - per-priority names follow mlx5's ethtool names: `rx_prioN_pause` / `tx_prioN_pause`
///   (frames), `…_pause_duration` (µs), `rx_prioN_pause_transition`, `tx_prioN_packets`;
///   the gauges `tx_prioN_queue_bytes` (egress queue occupancy), `tx_prioN_paused` (this port
///   is sending XOFF now: its ingress buffer is full) and `rx_prioN_paused` (this port is being
///   paused now) are this format's own.
/// - `topology` (optional) describes switches, links and routes for the deadlock detector.
/// Limits: names 1…256 bytes, 100,000 ports per sample, 10,000 counters per port. Unknown
/// fields are errors, and every error names the field at fault.
public struct SnapshotFile: Sendable {
    public static let formatName = "rdma-monitor-snapshot/1"
    public static let maximumSamples = 1_000_000
    public static let maximumPortsPerSample = 100_000
    public static let maximumCountersPerPort = 10_000

    public var samples: [CounterSnapshot]
    public var topology: FabricTopology?

    public init(samples: [CounterSnapshot], topology: FabricTopology? = nil) {
        self.samples = samples
        self.topology = topology
    }

    /// Reads and validates a snapshot file.
    public static func load(path: String) throws(MonitorError) -> SnapshotFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MonitorError("snapshot \(path)", "cannot read the file (missing or not readable)")
        }
        return try decode(data, document: "snapshot \(path)")
    }

    public static func decode(_ data: Data, document: String = "snapshot") throws(MonitorError) -> SnapshotFile {
        let root = try JSONObjectReader(try JSONValue.parse(data, document: document), path: "", document: document,
                                        allowedKeys: ["format", "samples", "topology"])
        let format = try root.string("format")
        guard format == formatName else { throw root.error("format", "expected \"\(formatName)\", found \"\(format)\"") }
        var samples: [CounterSnapshot] = []
        for (index, item) in try root.array("samples", maximumCount: maximumSamples).enumerated() {
            let sample = try decodeSample(item, path: "samples[\(index)]", document: document)
            if let previous = samples.last, sample.time <= previous.time {
                throw MonitorError("\(document) samples[\(index)].timeNanoseconds", "must be greater than the previous sample's (\(previous.time.nanoseconds))")
            }
            samples.append(sample)
        }
        guard !samples.isEmpty else { throw root.error("samples", "must hold at least one sample") }
        var topology: FabricTopology?
        if root.has("topology") {
            topology = try FabricTopology.decode(try root.required("topology"), path: "topology", document: document)
        }
        return SnapshotFile(samples: samples, topology: topology)
    }

    private static func decodeSample(_ value: JSONValue, path: String, document: String) throws(MonitorError) -> CounterSnapshot {
        let sample = try JSONObjectReader(value, path: path, document: document, allowedKeys: ["timeNanoseconds", "ports"])
        let time = try sample.integer("timeNanoseconds", in: 0...Int64.max)
        var ports: [PortCounters] = []
        var seen = Set<PortKey>()
        for (index, item) in try sample.array("ports", maximumCount: maximumPortsPerSample).enumerated() {
            let port = try JSONObjectReader(item, path: "\(path).ports[\(index)]", document: document,
                                            allowedKeys: ["node", "device", "port", "kind", "counters", "gauges"])
            let key = PortKey(node: try port.string("node"), device: try port.string("device"),
                              port: Int(try port.optionalInteger("port", in: 0...65535) ?? 0))
            guard seen.insert(key).inserted else { throw port.error("device", "port \(key) appears twice in this sample") }
            let kindName = try port.string("kind")
            guard let kind = PortKind(rawValue: kindName) else {
                throw port.error("kind", "expected one of \(PortKind.allCases.map(\.rawValue).joined(separator: ", ")), found \"\(kindName)\"")
            }
            let counters = try port.map("counters", maximumCount: maximumCountersPerPort) { (value, error) throws(MonitorError) -> UInt64 in
                switch value {
                case .unsigned(let number): return number
                case .signed(let number) where number >= 0: return UInt64(number)
                default: throw error("expected a whole number 0…18446744073709551615, found \(value.typeName)")
                }
            }
            let gauges = try port.map("gauges", maximumCount: maximumCountersPerPort) { (value, error) throws(MonitorError) -> Double in
                switch value {
                case .unsigned(let number): return Double(number)
                case .signed(let number): return Double(number)
                case .double(let number) where number.isFinite: return number
                default: throw error("expected a finite number, found \(value.typeName)")
                }
            }
            ports.append(PortCounters(key: key, kind: kind, counters: counters, gauges: gauges))
        }
        return CounterSnapshot(time: MonitorTime(nanoseconds: time), ports: ports)
    }

    /// The file's JSON, sorted keys, one sample per line group: what `load` reads back.
    public func encoded() -> String {
        var text = "{\n  \"format\": \"\(Self.formatName)\",\n  \"samples\": [\n"
        for (sampleIndex, sample) in samples.enumerated() {
            text += "    { \"timeNanoseconds\": \(sample.time.nanoseconds), \"ports\": [\n"
            for (portIndex, port) in sample.ports.enumerated() {
                text += "      { \"node\": \(jsonString(port.key.node)), \"device\": \(jsonString(port.key.device)), \"port\": \(port.key.port), \"kind\": \"\(port.kind.rawValue)\""
                text += ", \"counters\": {" + port.counters.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)): \($0.value)" }.joined(separator: ", ") + "}"
                if !port.gauges.isEmpty {
                    text += ", \"gauges\": {" + port.gauges.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)): \(jsonNumber($0.value))" }.joined(separator: ", ") + "}"
                }
                text += portIndex == sample.ports.count - 1 ? " }\n" : " },\n"
            }
            text += sampleIndex == samples.count - 1 ? "    ] }\n" : "    ] },\n"
        }
        text += "  ]"
        if let topology { text += ",\n  \"topology\": \(topology.encoded())" }
        return text + "\n}\n"
    }
}

/// A JSON string literal.
func jsonString(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}

/// A finite number as JSON (whole numbers without a fraction).
func jsonNumber(_ value: Double) -> String {
    guard value.isFinite else { return "0" }
    if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
    return "\(value)"
}

/// Replays a snapshot file one sample per read, with the sample's recorded time.
///
/// ```swift
/// let source = try SnapshotFileSource(path: "switches.json")
/// var monitor = Monitor(sources: [source], clock: SystemMonotonicClock())
/// ```
public final class SnapshotFileSource: CounterSource {
    public let path: String
    public let file: SnapshotFile
    private var next = 0
    /// true: after the last sample, start again (time keeps increasing by the file's span),
    /// so a snapshot can stand in for a live source under Prometheus.
    public let loops: Bool
    private var timeOffset: Int64 = 0

    public init(path: String, loops: Bool = false) throws(MonitorError) {
        self.path = path
        self.loops = loops
        file = try SnapshotFile.load(path: path)
    }

    public init(file: SnapshotFile, name: String = "snapshot", loops: Bool = false) {
        path = name
        self.file = file
        self.loops = loops
    }

    public var sourceDescription: String { "snapshot \(path)" }

    public func read() throws(MonitorError) -> CounterReading {
        let samples = file.samples
        if next >= samples.count {
            guard loops else {
                let last = samples[samples.count - 1]
                return CounterReading(ports: last.ports, recordedTime: MonitorTime(nanoseconds: last.time.nanoseconds &+ timeOffset), hasMore: false)
            }
            // One step past the last sample, so the interval across the wrap stays positive.
            let span = samples[samples.count - 1].time.nanoseconds - samples[0].time.nanoseconds
            let step = samples.count > 1 ? span / Int64(samples.count - 1) : 1_000_000_000
            timeOffset &+= span &+ max(step, 1)
            next = 0
        }
        let sample = samples[next]
        next += 1
        return CounterReading(ports: sample.ports, recordedTime: MonitorTime(nanoseconds: sample.time.nanoseconds &+ timeOffset),
                              hasMore: loops || next < samples.count)
    }
}
