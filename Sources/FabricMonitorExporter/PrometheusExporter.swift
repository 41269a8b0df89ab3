import FabricMonitor
import Prometheus

/// Turns each poll's report into Prometheus series in a swift-prometheus registry.
///
/// Names follow the exporters dashboards already use: every raw counter as
/// `rdma_<counter>_total{node,device,port}` (rdma_exporter's scheme), pause frames and
/// durations as `rdma_roce_pfc_pause_frames_total{…,direction,priority}` and
/// `rdma_roce_pfc_pause_duration_total` (µs), NIC storm-prevention events as
/// `rdma_netdev_pause_storm_events_total{…,severity}`. The analysis is `rdma_monitor_*`:
/// pause share, DCQCN and transport rates, storms, deadlocks, the static CBD check.
///
/// Counters are exported as counters: the first reading adds its value, each later one adds
/// the increase, and one that went backwards (a device reset) adds its new value — so the
/// exported series never decreases, and Prometheus' `rate()` sees a reset as the restart it is.
///
/// ```swift
/// let exporter = PrometheusExporter()
/// exporter.update(with: try monitor.poll())
/// print(exporter.registry.emitToString())
/// ```
public final class PrometheusExporter: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    /// Last raw value per exported counter series, to add increases (touched by the polling thread only).
    private var lastValues: [String: UInt64] = [:]
    private var counters: [String: Counter] = [:]
    private var gauges: [String: Gauge] = [:]
    /// Gauges set to 1 at the last update (storms, deadlocked buffers), to clear when they end.
    private var raisedFlags: Set<String> = []

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// A metric name from a driver's counter name: characters outside [a-zA-Z0-9_] become `_`.
    static func metricName(_ counter: String) -> String {
        String(counter.unicodeScalars.map { scalar in
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_" ? Character(scalar) : "_"
        })
    }

    public func update(with report: MonitorReport, deadlockCheck: CyclicDependencyCheck.Report? = nil) {
        for port in report.snapshot.ports {
            let labels = Self.portLabels(port.key)
            for (name, value) in port.counters {
                let metric = Self.metricName(name)
                guard !metric.isEmpty, !metric.hasPrefix("monitor_") else { continue }
                addCounter("rdma_\(metric)_total", labels, value, help: "RDMA/Ethernet counter as the driver names it (sysfs counters/hw_counters, ethtool -S, soft engine)")
                if let pause = PauseCounterName(parsing: name) {
                    addPauseCounter(pause, labels: labels, value: value)
                }
            }
        }
        for interval in report.intervals {
            let labels = Self.portLabels(interval.key)
            for pause in interval.pause {
                guard let share = pause.pausedShare else { continue }
                gauge("rdma_monitor_pause_ratio", labels + [("direction", pause.direction.rawValue), ("priority", pause.priority.map(String.init) ?? "link")],
                      help: "Share of the last interval the port was paused (0..1), per direction and priority").set(to: share)
            }
            let health: [(String, Double?, String)] = [
                ("rdma_monitor_ecn_marked_packets_per_second", interval.dcqcn.ecnMarkedPerSecond, "ECN-marked RoCE packets received per second (DCQCN notification point input)"),
                ("rdma_monitor_cnp_sent_per_second", interval.dcqcn.cnpSentPerSecond, "CNPs sent per second (DCQCN notification point)"),
                ("rdma_monitor_cnp_handled_per_second", interval.dcqcn.cnpHandledPerSecond, "CNPs handled per second (DCQCN reaction point)"),
                ("rdma_monitor_cnp_ignored_per_second", interval.dcqcn.cnpIgnoredPerSecond, "CNPs ignored per second (DCQCN reaction point)"),
                ("rdma_monitor_retransmissions_per_second", interval.transport.retransmissionsPerSecond, "Retransmissions per second (adaptive retransmissions, duplicate requests seen)"),
                ("rdma_monitor_timeouts_per_second", interval.transport.timeoutsPerSecond, "Transport timeouts per second (local ACK timeouts, completer retries)"),
                ("rdma_monitor_sequence_errors_per_second", interval.transport.sequenceErrorsPerSecond, "Sequence errors per second (NAK-sequence, out of order)"),
            ]
            for (name, value, help) in health {
                if let value { gauge(name, labels, help: help).set(to: value) }
            }
        }
        for flag in PauseFlag.flags(in: report) {
            gauge("rdma_monitor_pause_active", Self.portLabels(flag.port) + [("direction", flag.direction.rawValue), ("priority", String(flag.priority))],
                  help: "1 while the port is paused (rx: being paused; tx: sending XOFF, its ingress buffer full)").set(to: flag.active ? 1.0 : 0.0)
        }

        var raised: Set<String> = []
        for queue in report.stormingQueues {
            let labels = Self.portLabels(queue.port) + [("priority", queue.priority.map(String.init) ?? "link"), ("role", queue.role.rawValue)]
            raised.insert(flagGauge("rdma_monitor_pfc_storm", labels, help: "1 while the PFC-storm watchdog holds this queue in a storm"))
        }
        for event in report.stormEvents where event.kind == .stormDetected {
            let labels = Self.portLabels(event.queue.port) + [("priority", event.queue.priority.map(String.init) ?? "link"), ("role", event.queue.role.rawValue)]
            counter("rdma_monitor_pfc_storms_detected_total", labels, help: "PFC storms the watchdog detected").increment()
        }
        for deadlock in report.deadlocks {
            for buffer in deadlock.buffers {
                raised.insert(flagGauge("rdma_monitor_pfc_deadlock_buffer",
                                        [("node", buffer.node), ("device", buffer.port), ("upstream", buffer.upstream), ("priority", String(buffer.priority))],
                                        help: "1 while this switch ingress buffer is part of a PFC deadlock (a cycle of paused buffers)"))
            }
        }
        for stale in raisedFlags.subtracting(raised) { gauges[stale]?.set(to: 0.0) }
        raisedFlags = raised
        gauge("rdma_monitor_pfc_deadlocks", [], help: "PFC deadlock cycles in progress").set(to: Double(report.deadlocks.count))
        if let deadlockCheck {
            gauge("rdma_monitor_cyclic_buffer_dependencies", [], help: "Cyclic buffer dependencies the routing admits (0: deadlock-free routing)")
                .set(to: Double(deadlockCheck.cycles.count))
        }
        counter("rdma_monitor_polls_total", [], help: "Polls of every counter source").increment()
    }

    private func addPauseCounter(_ pause: PauseCounterName, labels: [(String, String)], value: UInt64) {
        switch pause.measure {
        case .frames where pause.priority != nil:
            addCounter("rdma_roce_pfc_pause_frames_total", labels + [("direction", pause.direction.rawValue), ("priority", String(pause.priority!))], value,
                       help: "PFC pause frames per direction and priority")
        case .durationMicroseconds:
            addCounter("rdma_roce_pfc_pause_duration_total", labels + [("direction", pause.direction.rawValue), ("priority", String(pause.priority ?? 0))], value,
                       help: "PFC pause duration in microseconds per direction and priority")
        case .stormWarnings, .stormErrors:
            addCounter("rdma_netdev_pause_storm_events_total", labels + [("severity", pause.measure == .stormErrors ? "error" : "warning")], value,
                       help: "NIC pause-storm prevention events")
        case .frames, .transitions:
            break
        }
    }

    private func addCounter(_ name: String, _ labels: [(String, String)], _ value: UInt64, help: String) {
        let key = Self.seriesKey(name, labels)
        let increase: UInt64
        if let last = lastValues[key] { increase = value >= last ? value - last : value } else { increase = value }
        lastValues[key] = value
        if increase > 0 || counters[key] == nil {
            counter(name, labels, help: help, key: key).increment(by: Int64(clamping: increase))
        }
    }

    private func counter(_ name: String, _ labels: [(String, String)], help: String, key: String? = nil) -> Counter {
        let key = key ?? Self.seriesKey(name, labels)
        if let existing = counters[key] { return existing }
        let made = registry.makeCounter(descriptor: Self.descriptor(name, help: help), labels: labels)
        counters[key] = made
        return made
    }

    private func gauge(_ name: String, _ labels: [(String, String)], help: String) -> Gauge {
        let key = Self.seriesKey(name, labels)
        if let existing = gauges[key] { return existing }
        let made = registry.makeGauge(descriptor: Self.descriptor(name, help: help), labels: labels)
        gauges[key] = made
        return made
    }

    private func flagGauge(_ name: String, _ labels: [(String, String)], help: String) -> String {
        gauge(name, labels, help: help).set(to: 1.0)
        return Self.seriesKey(name, labels)
    }

    static func descriptor(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    static func portLabels(_ key: PortKey) -> [(String, String)] {
        [("node", key.node), ("device", key.device), ("port", String(key.port))]
    }

    static func seriesKey(_ name: String, _ labels: [(String, String)]) -> String {
        labels.reduce(name) { $0 + "\u{0}" + $1.0 + "=" + $1.1 }
    }
}
