import Foundation

/// Everything `fabric-sim` writes for one run, as named texts: the caller decides where they
/// go (the tool writes them into its `--out` directory).
///
/// ```swift
/// let report = SimulationReport(result)
/// for file in report.files { try file.contents.write(toFile: "out/" + file.name, atomically: true, encoding: .utf8) }
/// ```
public struct SimulationReport: Sendable {
    public struct File: Sendable {
        public var name: String
        public var contents: String
    }

    public let summary: SimulationSummary
    /// The summary tables, as printed and as written to summary.txt.
    public let summaryText: String
    public let files: [File]

    public init(_ result: SimulationResult) {
        let summary = SimulationSummary(result)
        self.summary = summary
        summaryText = SummaryTable(summary, scenario: result.scenario).text + SwitchFaultsText(result).text
        let plots = ResultPlots(result, summary: summary)
        var files = [
            File(name: "summary.txt", contents: summaryText),
            File(name: "timeseries.csv", contents: TimeSeriesCSV(result, summary: summary).text),
            File(name: "throughput.svg", contents: plots.throughput.render()),
            File(name: "queues.svg", contents: plots.queues.render()),
            File(name: "fairness.svg", contents: plots.fairness.render()),
        ]
        if let rates = plots.dcqcnRates { files.append(File(name: "rates.svg", contents: rates.render())) }
        self.files = files
    }
}
