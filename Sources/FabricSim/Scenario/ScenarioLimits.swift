/// The bounds a scenario file is held to, chosen so that whatever a file says, loading it
/// cannot trap (every time and rate converts to an integer safely) and running it cannot
/// grow without bound (nodes, links, flows and recorded samples are capped).
///
/// ```swift
/// let limits = ScenarioLimits.standard
/// print(limits.maximumDurationMicroseconds)   // 10 s of simulated time
/// ```
public struct ScenarioLimits: Sendable, Equatable {
    /// Hosts and switches together.
    public var maximumNodes = 2048
    public var maximumLinks = 8192
    public var maximumFlows = 4096
    /// Simulated time: 10 s.
    public var maximumDurationMicroseconds = 1e7
    /// Any other time (link delay, flow start/stop, DCQCN timers, sampling): at most the
    /// longest run.
    public var maximumTimeMicroseconds = 1e7
    /// Link rates: 1 Mb/s … 10 Tb/s.
    public var rateGigabitsPerSecond = 0.001...10_000.0
    /// DCQCN rate steps and floors, in Mb/s: at most 10 Tb/s.
    public var maximumMegabitsPerSecond = 1e7
    /// Flow sizes: 1 TiB.
    public var maximumFlowBytes = 1 << 40
    /// Buffer thresholds (PFC, ECN): 1 TiB.
    public var maximumBufferBytes = 1 << 40
    /// Samples per series (duration ÷ sampling interval).
    public var maximumSamples = 1_000_000
    /// Values recorded in all (samples × (2 per flow + 6 per link)): ~320 MB of them.
    public var maximumRecordedValues = 40_000_000

    public static let standard = ScenarioLimits()

    /// A time in µs from a file, checked before it becomes nanoseconds.
    func time(_ microseconds: Double, _ field: String, allowZero: Bool = false,
              maximum: Double? = nil) throws -> Double {
        let most = maximum ?? maximumTimeMicroseconds
        guard microseconds.isFinite, allowZero ? microseconds >= 0 : microseconds > 0, microseconds <= most else {
            let range = allowZero ? "in 0…\(most) µs" : "more than 0 and at most \(most) µs"
            throw ScenarioError(field: field, problem: "\(microseconds) µs: must be \(range)")
        }
        return microseconds
    }

    /// A count from a file.
    func count(_ value: Int, _ field: String, _ range: ClosedRange<Int>) throws -> Int {
        guard range.contains(value) else { throw ScenarioError(field: field, problem: "\(value): must be in \(range.lowerBound)…\(range.upperBound)") }
        return value
    }

    /// What a run of `scenario` will record — samples per series, values in all — checked
    /// against the bounds (also after `--duration-milliseconds` changes the duration).
    public func check(recordingOf scenario: FabricScenario) throws {
        // One sample per interval, the last at the end of the run.
        let interval = max(1, scenario.sampleInterval.rawValue)
        let samples = (scenario.duration.rawValue + interval - 1) / interval
        guard samples <= maximumSamples else {
            throw ScenarioError(field: "sampling.intervalMicroseconds",
                                problem: "\(samples) samples over the run (at most \(maximumSamples)): sample less often or run shorter")
        }
        let values = Int(samples) * (2 * scenario.flows.count + 6 * scenario.links.count)
        guard values <= maximumRecordedValues else {
            throw ScenarioError(field: "sampling.intervalMicroseconds",
                                problem: "\(values) values to record (\(samples) samples × \(scenario.flows.count) flows, \(scenario.links.count) links; at most \(maximumRecordedValues))")
        }
    }
}
