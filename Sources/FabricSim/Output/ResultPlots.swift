import Congestion

/// The charts of one run: throughput per flow, DCQCN rate per flow, queue depth against the
/// marking and PFC thresholds, and Jain's index over time.
public struct ResultPlots: Sendable {
    public let throughput: SVGLineChart
    /// Nil for a PFC-only run, where every sender sits at line rate.
    public let dcqcnRates: SVGLineChart?
    public let queues: SVGLineChart
    public let fairness: SVGLineChart

    public init(_ result: SimulationResult, summary: SimulationSummary) {
        let series = result.timeSeries
        let scenario = result.scenario
        let milliseconds = series.times.map(\.milliseconds)
        let variant = scenario.dcqcnEnabled ? "DCQCN + PFC" : "PFC only"
        let heading = "\(scenario.name) (\(variant))"

        // Averaged over the fairness window, as Jain's index sees it: a 10 µs sample holds only
        // a few packets of a 2.5 Gb/s flow.
        let smoothing = max(1, Int(scenario.fairnessWindow.rawValue / scenario.sampleInterval.rawValue))
        throughput = SVGLineChart(
            title: "\(heading): throughput per flow",
            subtitle: "delivered to the receiver, trailing average over \(Nanoseconds(Int64(smoothing) * scenario.sampleInterval.rawValue))",
            xLabel: "time (ms)", yLabel: "Gb/s",
            series: result.flows.indices.map { flow in
                .init(name: result.flows[flow].name, x: milliseconds, y: Self.trailingAverage(series.flowThroughputBitsPerSecond[flow], window: smoothing).map { $0 / 1e9 })
            }
        )
        dcqcnRates = scenario.dcqcnEnabled ? SVGLineChart(
            title: "\(heading): DCQCN sending rate per flow",
            subtitle: "the reaction point's current rate R_C, sampled every \(scenario.sampleInterval)",
            xLabel: "time (ms)", yLabel: "Gb/s",
            series: result.flows.indices.map { flow in
                .init(name: result.flows[flow].name, x: milliseconds, y: series.flowRateBitsPerSecond[flow].map { $0 / 1e9 })
            }
        ) : nil

        let egress = result.ports.indices
            .filter { result.ports[$0].isSwitchPort && result.ports[$0].egressQueue.maxBytes > 0 }
            .sorted { result.ports[$0].egressQueue.maxBytes > result.ports[$1].egressQueue.maxBytes }
            .prefix(3)
        let ingress = result.ports.indices
            .filter { result.ports[$0].isSwitchPort && result.ports[$0].ingressMaxBytes > 0 }
            .sorted { result.ports[$0].ingressMaxBytes > result.ports[$1].ingressMaxBytes }
            .prefix(2)
        var queueSeries: [SVGLineChart.Series] = egress.map { port in
            .init(name: "egress \(result.ports[port].name)", x: milliseconds, y: series.egressQueueBytes[port].map { Double($0) / 1000 })
        }
        queueSeries += ingress.map { port in
            .init(
                name: "ingress \(result.ports[port].ingressName)",
                x: milliseconds, y: series.ingressBytes[port].map { Double($0) / 1000 }, dashed: true
            )
        }
        var references = [
            SVGLineChart.ReferenceLine(label: "Kmin (egress)", y: Double(scenario.marking.kMinBytes) / 1000),
            SVGLineChart.ReferenceLine(label: "Kmax (egress)", y: Double(scenario.marking.kMaxBytes) / 1000),
        ]
        if scenario.pfc.enabled {
            references.append(.init(label: "XOFF (per ingress)", y: Double(scenario.pfc.xoffBytes) / 1000))
        }
        queues = SVGLineChart(
            title: "\(heading): queue depth",
            subtitle: "solid: switch egress queues (ECN marks against Kmin/Kmax); dashed: bytes buffered per ingress port (PFC against XOFF)",
            xLabel: "time (ms)", yLabel: "KB",
            series: queueSeries,
            referenceLines: references
        )

        fairness = SVGLineChart(
            title: "\(heading): Jain's fairness index",
            subtitle: "throughput over the trailing \(scenario.fairnessWindow) of the flows running through it",
            xLabel: "time (ms)", yLabel: "Jain's index",
            series: [.init(name: "Jain's index", x: milliseconds, y: summary.jainIndexOverTime.map { $0 ?? .nan })],
            referenceLines: [.init(label: "threshold \(scenario.fairnessThreshold)", y: scenario.fairnessThreshold)],
            yMaximum: 1
        )
    }

    /// Mean of the last `window` values at each position (fewer at the start); NaN stays NaN.
    static func trailingAverage(_ values: [Double], window: Int) -> [Double] {
        var sum = 0.0
        var averages: [Double] = []
        averages.reserveCapacity(values.count)
        for index in values.indices {
            sum += values[index]
            if index >= window { sum -= values[index - window] }
            averages.append(sum / Double(min(index + 1, window)))
        }
        return averages
    }
}
