import Congestion
import Foundation

/// The summary as the plain-text tables `fabric-sim` prints.
///
/// ```swift
/// print(SummaryTable(SimulationSummary(result), scenario: result.scenario).text)
/// ```
public struct SummaryTable: Sendable {
    public let text: String

    public init(_ summary: SimulationSummary, scenario: FabricScenario) {
        var lines: [String] = []
        let p = scenario.dcqcn
        lines.append("Scenario \(summary.scenarioName): simulated \(Self.milliseconds(summary.duration)) ms, \(summary.eventsProcessed) events")
        if summary.dcqcnEnabled {
            lines.append(
                "  DCQCN on: g \(String(format: "%.5f", p.alphaGain)), K \(p.alphaUpdatePeriod), T \(p.rateIncreaseTimer), "
                    + "B \(p.rateIncreaseStages == .timerOnly ? "off" : "\(p.byteCounterBytes) B"), F \(p.fastRecoveryThreshold), "
                    + "R_AI \(Self.rate(p.additiveIncreaseBitsPerSecond)), R_HAI \(Self.rate(p.hyperIncreaseBitsPerSecond)), "
                    + "N \(p.minimumCNPInterval.rawValue == 0 ? "0 (a CNP per marked packet)" : "\(p.minimumCNPInterval)"), R_min \(Self.rate(p.minimumRateBitsPerSecond)), "
                    + "R_T clamp \(p.targetRateClamp.rawValue), increase stages \(p.rateIncreaseStages.rawValue), "
                    + "cut \(p.rateDecreasePeriod.map { "at most once per \($0)" } ?? "on each CNP")"
            )
        } else {
            lines.append("  DCQCN off (PFC only): senders stay at line rate, no CNPs")
        }
        lines.append(
            "  ECN marking Kmin \(Self.kilobytes(summary.kMinBytes)) Kmax \(Self.kilobytes(summary.kMaxBytes)) "
                + "Pmax \(String(format: "%.2f", scenario.marking.maximumMarkingProbability)); "
                + "PFC \(summary.pfcEnabled ? "on" : "off") XOFF \(Self.kilobytes(summary.xoffBytes)) XON \(Self.kilobytes(summary.xonBytes)) per ingress port"
        )

        lines.append("")
        lines.append("Fairness")
        let jainAtEnd = summary.jainIndexAtEnd.map { String(format: "%.3f", $0) } ?? "n/a"
        lines.append("  Jain's index of throughput ÷ fair share, last 10% of the run (from \(Self.milliseconds(summary.endWindowStart)) ms): \(jainAtEnd)")
        let convergence = summary.convergenceTime.map { "\(Self.milliseconds($0)) ms" } ?? "not reached"
        lines.append(
            "  Convergence (Jain ≥ \(String(format: "%.2f", summary.fairnessThreshold)) over \(summary.fairnessWindow) windows, "
                + "from the last flow start): \(convergence)"
        )

        lines.append("")
        lines.append("Flows (Gb/s; end = last 10% of the run; fair = max-min share of the flows running then)")
        lines.append(Self.row(["flow", "start", "average", "end", "fair", "end/fair", "CNPs"], widths: [16, 10, 9, 9, 9, 9, 8]))
        for flow in summary.flows {
            lines.append(Self.row([
                flow.name,
                flow.start.description,
                String(format: "%.2f", flow.averageThroughputBitsPerSecond / 1e9),
                flow.endThroughputBitsPerSecond.map { String(format: "%.2f", $0 / 1e9) } ?? "-",
                flow.fairShareBitsPerSecond.map { String(format: "%.2f", $0 / 1e9) } ?? "-",
                flow.fractionOfFairShare.map { String(format: "%.0f%%", $0 * 100) } ?? "-",
                "\(flow.cnpsReceived)",
            ], widths: [16, 10, 9, 9, 9, 9, 8]))
        }

        lines.append("")
        lines.append("Switch egress queues (KB, time-weighted)")
        if summary.queues.isEmpty { lines.append("  none ever held data") }
        lines.append(Self.row(["port", "p50", "p99", "max", "mean", "CE marked", "link use"], widths: [16, 9, 9, 9, 9, 10, 9]))
        for queue in summary.queues.prefix(8) {
            lines.append(Self.row([
                queue.port, Self.kilobytes(queue.p50Bytes, unit: false), Self.kilobytes(queue.p99Bytes, unit: false),
                Self.kilobytes(queue.maxBytes, unit: false), String(format: "%.1f", queue.meanBytes / 1000), "\(queue.packetsMarked)",
                String(format: "%.0f%%", queue.utilization * 100),
            ], widths: [16, 9, 9, 9, 9, 10, 9]))
        }
        if summary.queues.count > 8 { lines.append("  … \(summary.queues.count - 8) more in timeseries.csv") }

        lines.append("")
        lines.append("PFC")
        let fullest = summary.ingress.prefix(4).map { "\($0.port) \(Self.kilobytes($0.maxBytes))" }
        lines.append("  ingress max (XOFF \(Self.kilobytes(summary.xoffBytes))): " + (fullest.isEmpty ? "none" : fullest.joined(separator: ", ")))
        if summary.pauses.isEmpty {
            lines.append("  pause time per port: none (no PAUSE frames)")
        } else {
            lines.append("  pause time per port (the transmitter held):")
            for pause in summary.pauses.prefix(12) {
                let fraction = String(format: "%.1f%%", pause.fractionOfRun * 100)
                lines.append(Self.row(
                    [pause.port, "\(Self.milliseconds(pause.pausedTime)) ms", "(\(fraction) of the run),", "\(pause.pauseFrames) PAUSE frames"],
                    widths: [16, 12, 22, 10]
                ))
            }
            if summary.pauses.count > 12 { lines.append("    … \(summary.pauses.count - 12) more ports") }
        }
        text = lines.joined(separator: "\n") + "\n"
    }

    static func milliseconds(_ time: Nanoseconds) -> String { String(format: "%.3f", time.milliseconds) }

    static func kilobytes(_ bytes: Int, unit: Bool = true) -> String {
        String(format: unit ? "%.1f KB" : "%.1f", Double(bytes) / 1000)
    }

    static func rate(_ bitsPerSecond: Double) -> String {
        bitsPerSecond >= 1e9 ? String(format: "%g Gb/s", bitsPerSecond / 1e9) : String(format: "%g Mb/s", bitsPerSecond / 1e6)
    }

    private static func row(_ cells: [String], widths: [Int]) -> String {
        var text = " "
        for (cell, width) in zip(cells, widths) {
            text += " " + cell + String(repeating: " ", count: max(0, width - cell.count))
        }
        while text.last == " " { text.removeLast() }
        return text
    }
}
