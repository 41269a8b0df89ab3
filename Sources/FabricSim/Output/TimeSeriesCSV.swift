import Foundation

/// The sampled time series as one CSV table, a row per sample.
///
/// Columns: `time_us`; per flow `<flow> rate_gbps` (DCQCN's R_C; empty while the flow does
/// not send) and `<flow> throughput_gbps` (delivered during the sample interval);
/// `jain_index` (over the trailing fairness window); per switch egress queue that ever held
/// data `<switch->next> queue_bytes`; per switch ingress that ever held data
/// `<switch<-previous> ingress_bytes`; per transmitter ever paused `<node->next> paused` (0/1).
///
/// ```swift
/// let csv = TimeSeriesCSV(result, summary: SimulationSummary(result)).text
/// ```
public struct TimeSeriesCSV: Sendable {
    public let text: String

    public init(_ result: SimulationResult, summary: SimulationSummary) {
        let series = result.timeSeries
        let queuePorts = result.ports.indices.filter { result.ports[$0].isSwitchPort && result.ports[$0].egressQueue.maxBytes > 0 }
        let ingressPorts = result.ports.indices.filter { result.ports[$0].isSwitchPort && result.ports[$0].ingressMaxBytes > 0 }
        let pausedPorts = result.ports.indices.filter { result.ports[$0].pauseFramesReceived > 0 }

        var header = ["time_us"]
        for flow in result.flows { header += ["\(flow.name) rate_gbps", "\(flow.name) throughput_gbps"] }
        header.append("jain_index")
        header += queuePorts.map { "\(result.ports[$0].name) queue_bytes" }
        header += ingressPorts.map { "\(result.ports[$0].ingressName) ingress_bytes" }
        header += pausedPorts.map { "\(result.ports[$0].name) paused" }

        var lines = [header.map(Self.quoted).joined(separator: ",")]
        lines.reserveCapacity(series.times.count + 1)
        for sample in series.times.indices {
            var row = [String(format: "%.3f", series.times[sample].microseconds)]
            for flow in result.flows.indices {
                let rate = series.flowRateBitsPerSecond[flow][sample]
                row.append(rate.isFinite ? String(format: "%.4f", rate / 1e9) : "")
                row.append(String(format: "%.4f", series.flowThroughputBitsPerSecond[flow][sample] / 1e9))
            }
            row.append(summary.jainIndexOverTime[sample].map { String(format: "%.4f", $0) } ?? "")
            row += queuePorts.map { String(series.egressQueueBytes[$0][sample]) }
            row += ingressPorts.map { String(series.ingressBytes[$0][sample]) }
            row += pausedPorts.map { series.paused[$0][sample] ? "1" : "0" }
            lines.append(row.joined(separator: ","))
        }
        text = lines.joined(separator: "\n") + "\n"
    }

    private static func quoted(_ field: String) -> String {
        guard field.contains(",") || field.contains("\"") else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
