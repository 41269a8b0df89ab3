import Foundation

/// The live table: one row per port with traffic, pauses, DCQCN and transport health, then
/// storms and deadlocks. Plain text, at most `width` columns; the executable repaints it in place.
///
/// ```swift
/// print(ReportTable.render(report))
/// ```
public enum ReportTable {
    public static func render(_ report: MonitorReport, width: Int = 120, deadlockCheck: CyclicDependencyCheck.Report? = nil) -> String {
        var lines: [String] = []
        let intervals = Dictionary(report.intervals.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        let interval = report.intervals.first.map { String(format: "%.2f s", $0.seconds) } ?? "first sample, no rates yet"
        lines.append("rdma-monitor — \(report.snapshot.ports.count) ports, interval \(interval)")
        lines.append(columns(["PORT", "KIND", "TX PKT/s", "RX PKT/s", "PAUSED RX", "PAUSED TX", "ECN/s", "CNP TX/s", "CNP RX/s", "RETX/s", "TMO/s", "SEQERR/s"]))
        for port in report.snapshot.ports {
            let interval = intervals[port.key]
            // The same packets under several names (rxe's sent_pkts, the IB port counter,
            // ethtool's): the first one the device has; per-priority counters add up.
            func rate(_ names: [String], perPriority: [String]) -> String {
                guard let interval else { return "-" }
                if let first = names.lazy.compactMap({ interval.rate($0) }).first { return number(first) }
                let rates = perPriority.compactMap { interval.rate($0) }
                return rates.isEmpty ? "-" : number(rates.reduce(0, +))
            }
            func paused(_ direction: PauseCounterName.Direction) -> String {
                let shares = interval?.pause.filter { $0.direction == direction && $0.pausedShare != nil } ?? []
                guard let worst = shares.max(by: { $0.pausedShare! < $1.pausedShare! }) else { return "-" }
                return String(format: "%.0f%%", worst.pausedShare! * 100) + (worst.priority.map { " p\($0)" } ?? "")
            }
            lines.append(columns([
                port.key.description, port.kind.rawValue,
                rate(["sent_pkts", "port_xmit_packets", "tx_packets_phy", "tx_packets"], perPriority: (0...7).map { "tx_prio\($0)_packets" }),
                rate(["rcvd_pkts", "port_rcv_packets", "rx_packets_phy", "rx_packets"], perPriority: (0...7).map { "rx_prio\($0)_packets" }),
                paused(.receive), paused(.transmit),
                optional(interval?.dcqcn.ecnMarkedPerSecond), optional(interval?.dcqcn.cnpSentPerSecond),
                optional(interval?.dcqcn.cnpHandledPerSecond),
                optional(interval?.transport.retransmissionsPerSecond), optional(interval?.transport.timeoutsPerSecond),
                optional(interval?.transport.sequenceErrorsPerSecond),
            ]))
            if let interval, !interval.resetCounters.isEmpty {
                lines.append("    counters went backwards (device reset?): \(interval.resetCounters.prefix(5).joined(separator: ", "))")
            }
        }
        if report.stormingQueues.isEmpty {
            lines.append("PFC storms: none")
        } else {
            lines.append("PFC storms:")
            for queue in report.stormingQueues { lines.append("  STORM \(queue)") }
        }
        if let deadlockCheck {
            lines.append(deadlockCheck.isFree ? "Routing: no cyclic buffer dependency"
                         : "Routing: \(deadlockCheck.cycles.count) cyclic buffer dependenc\(deadlockCheck.cycles.count == 1 ? "y" : "ies") (deadlock possible)")
        }
        if report.deadlocks.isEmpty {
            lines.append("PFC deadlocks: none")
        } else {
            for deadlock in report.deadlocks { lines.append("  DEADLOCK \(deadlock)") }
        }
        return lines.map { $0.count > width ? String($0.prefix(width)) : $0 }.joined(separator: "\n")
    }

    static let columnWidths = [18, 6, 9, 9, 10, 10, 7, 8, 8, 7, 6, 8]

    static func columns(_ cells: [String]) -> String {
        zip(cells, columnWidths).enumerated().map { index, pair in
            let (cell, width) = pair
            let clipped = cell.count > width ? String(cell.prefix(width - 1)) + "…" : cell
            let padding = String(repeating: " ", count: max(0, width - clipped.count))
            return index == 0 ? clipped + padding : padding + clipped
        }.joined(separator: " ")
    }

    static func optional(_ value: Double?) -> String { value.map(number) ?? "-" }

    /// 3 significant figures with k/M/G.
    static func number(_ value: Double) -> String {
        switch value {
        case 1e9...: String(format: "%.1fG", value / 1e9)
        case 1e6...: String(format: "%.1fM", value / 1e6)
        case 1e4...: String(format: "%.1fk", value / 1e3)
        case 100...: String(format: "%.0f", value)
        default: String(format: "%.1f", value)
        }
    }
}

/// One JSON object per poll (`--json`), keys sorted:
/// `{"time_ns", "ports": [{"node", "device", "port", "kind", "counters", "gauges", "rates",
/// "pause": [{"direction", "priority", "paused_share", "frames_per_second"}], "dcqcn", "transport",
/// "reset_counters"}], "storm_events", "storming", "deadlocks"}`.
public enum ReportJSON {
    struct Line: Encodable {
        var time_ns: Int64
        var ports: [Port]
        var storm_events: [StormEvent]
        var storming: [String]
        var deadlocks: [DeadlockEntry]
    }
    struct Port: Encodable {
        var node: String, device: String, port: Int, kind: String
        var counters: [String: UInt64]
        var gauges: [String: Double]
        var rates: [String: Double]?
        var pause: [Pause]?
        var dcqcn: [String: Double]?
        var transport: [String: Double]?
        var reset_counters: [String]?
    }
    struct Pause: Encodable {
        var direction: String, priority: Int?, paused_share: Double?, frames_per_second: Double?
    }
    struct StormEvent: Encodable {
        var kind: String, queue: String, time_ns: Int64, over_ns: Int64, action: String, message: String
    }
    struct DeadlockEntry: Encodable {
        var priority: Int, buffers: [String], break_point: String, message: String
    }

    public static func line(_ report: MonitorReport) -> String {
        let intervals = Dictionary(report.intervals.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        let ports = report.snapshot.ports.map { port -> Port in
            var entry = Port(node: port.key.node, device: port.key.device, port: port.key.port, kind: port.kind.rawValue,
                             counters: port.counters, gauges: port.gauges)
            if let interval = intervals[port.key] {
                entry.rates = Dictionary(uniqueKeysWithValues: interval.deltas.keys.compactMap { name in interval.rate(name).map { (name, $0) } })
                entry.pause = interval.pause.map { Pause(direction: $0.direction.rawValue, priority: $0.priority, paused_share: $0.pausedShare, frames_per_second: $0.framesPerSecond) }
                entry.dcqcn = compact(["ecn_marked_per_second": interval.dcqcn.ecnMarkedPerSecond, "cnp_sent_per_second": interval.dcqcn.cnpSentPerSecond,
                                       "cnp_handled_per_second": interval.dcqcn.cnpHandledPerSecond, "cnp_ignored_per_second": interval.dcqcn.cnpIgnoredPerSecond])
                entry.transport = compact(["retransmissions_per_second": interval.transport.retransmissionsPerSecond,
                                           "timeouts_per_second": interval.transport.timeoutsPerSecond,
                                           "sequence_errors_per_second": interval.transport.sequenceErrorsPerSecond])
                entry.reset_counters = interval.resetCounters.isEmpty ? nil : interval.resetCounters
            }
            return entry
        }
        let line = Line(
            time_ns: report.snapshot.time.nanoseconds, ports: ports,
            storm_events: report.stormEvents.map { StormEvent(kind: $0.kind.rawValue, queue: $0.queue.description, time_ns: $0.time.nanoseconds,
                                                              over_ns: $0.over.nanoseconds, action: $0.action.rawValue, message: $0.description) },
            storming: report.stormingQueues.map(\.description),
            deadlocks: report.deadlocks.map { DeadlockEntry(priority: $0.priority, buffers: $0.buffers.map(\.description),
                                                            break_point: $0.breakPoint.description, message: $0.description) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(line)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func compact(_ values: [String: Double?]) -> [String: Double]? {
        let present = values.compactMapValues { $0 }
        return present.isEmpty ? nil : present
    }
}
