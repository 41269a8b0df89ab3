import Congestion

/// The published metrics of one run: Jain's fairness index at the end and over time,
/// convergence time, queue depth percentiles, pause time per port, per-flow throughput
/// against its max-min fair share.
///
/// ```swift
/// let summary = SimulationSummary(result)
/// summary.jainIndexAtEnd          // e.g. 0.998
/// summary.convergenceTime         // after the last flow started; nil if never
/// summary.bottleneck?.p99Bytes
/// print(SummaryTable(summary).text)
/// ```
public struct SimulationSummary: Sendable {
    public struct Flow: Sendable {
        public var name: String
        public var start: Nanoseconds
        /// Bytes delivered over the time the flow was offering data, per second.
        public var averageThroughputBitsPerSecond: Double
        /// Throughput over the closing window (the last 10 % of the run); nil if the flow was
        /// not running through all of it.
        public var endThroughputBitsPerSecond: Double?
        /// Max-min fair rate among the flows running at the end; nil for the others.
        public var fairShareBitsPerSecond: Double?
        public var cnpsReceived: Int
        public var completion: Nanoseconds?

        /// End throughput as a fraction of the fair share.
        public var fractionOfFairShare: Double? {
            guard let end = endThroughputBitsPerSecond, let fair = fairShareBitsPerSecond, fair > 0 else { return nil }
            return end / fair
        }
    }

    public struct Queue: Sendable {
        public var port: String
        public var p50Bytes: Int
        public var p99Bytes: Int
        public var maxBytes: Int
        public var meanBytes: Double
        public var packetsMarked: Int
        /// Data sent through the port over the run, against its line rate.
        public var utilization: Double
    }

    public struct Pause: Sendable {
        /// The transmitter that was held.
        public var port: String
        public var pausedTime: Nanoseconds
        public var pauseFrames: Int
        public var fractionOfRun: Double
    }

    public struct Ingress: Sendable {
        /// "switch<-neighbour": bytes at `switch` that came from `neighbour`.
        public var port: String
        public var maxBytes: Int
        public var pauseFramesSent: Int
    }

    public var scenarioName: String
    public var dcqcnEnabled: Bool
    public var duration: Nanoseconds
    public var eventsProcessed: Int
    public var kMinBytes: Int
    public var kMaxBytes: Int
    public var xoffBytes: Int
    public var xonBytes: Int
    public var pfcEnabled: Bool
    public var fairnessWindow: Nanoseconds
    public var fairnessThreshold: Double
    /// Start of the closing window over which end throughputs and `jainIndexAtEnd` are taken.
    public var endWindowStart: Nanoseconds
    public var flows: [Flow]
    /// Jain's index of the end throughputs of the flows running through the closing window,
    /// each divided by its max-min fair share (Jain's normalised form: with one bottleneck it
    /// equals the index of the raw throughputs; with several it does not call a flow unfair
    /// for being held back elsewhere).
    public var jainIndexAtEnd: Double?
    /// Per sample: Jain's index of the throughputs averaged over the trailing fairness window,
    /// normalised by the fair shares of the flows running through that window; nil before
    /// there is such a window.
    public var jainIndexOverTime: [Double?]
    /// From the last start of a flow still running at the end, to the first sample from which
    /// Jain's index stays at or above the threshold. At least one fairness window.
    public var convergenceTime: Nanoseconds?
    /// Switch egress queues that ever held data, deepest first.
    public var queues: [Queue]
    /// Transmitters PFC held, longest first.
    public var pauses: [Pause]
    /// Switch ingress accounting that ever held data, fullest first.
    public var ingress: [Ingress]

    /// The egress queue with the highest p99: the bottleneck.
    public var bottleneck: Queue? { queues.max { $0.p99Bytes < $1.p99Bytes } }
    public var totalPauseFrames: Int { pauses.reduce(0) { $0 + $1.pauseFrames } }

    public init(_ result: SimulationResult) {
        let scenario = result.scenario
        scenarioName = scenario.name
        dcqcnEnabled = scenario.dcqcnEnabled
        duration = scenario.duration
        eventsProcessed = result.eventsProcessed
        kMinBytes = scenario.marking.kMinBytes
        kMaxBytes = scenario.marking.kMaxBytes
        xoffBytes = scenario.pfc.xoffBytes
        xonBytes = scenario.pfc.xonBytes
        pfcEnabled = scenario.pfc.enabled
        fairnessWindow = scenario.fairnessWindow
        fairnessThreshold = scenario.fairnessThreshold
        let endWindowStart = Nanoseconds(scenario.duration.rawValue * 9 / 10)
        self.endWindowStart = endWindowStart

        let series = result.timeSeries
        let delivery = CumulativeDelivery(series)
        let running = { (flow: FlowReport, from: Nanoseconds, to: Nanoseconds) -> Bool in
            flow.start <= from && (flow.stop ?? .init(.max)) >= to && (flow.completion ?? .init(.max)) >= to
        }
        let endRunning = result.flows.map { running($0, endWindowStart, scenario.duration) }
        let endThroughputs = result.flows.indices.map { flow -> Double? in
            guard endRunning[flow] else { return nil }
            return delivery.averageThroughput(flow, after: endWindowStart, through: scenario.duration)
        }
        let fairShares = Self.fairShares(result, including: endRunning)
        flows = result.flows.enumerated().map { index, flow in
            let finished = min(flow.stop ?? scenario.duration, flow.completion ?? scenario.duration)
            let span = (finished - flow.start).seconds
            return Flow(
                name: flow.name,
                start: flow.start,
                averageThroughputBitsPerSecond: span > 0 ? Double(flow.bytesReceived) * 8 / span : 0,
                endThroughputBitsPerSecond: endThroughputs[index],
                fairShareBitsPerSecond: fairShares[index],
                cnpsReceived: flow.cnpsReceived,
                completion: flow.completion
            )
        }
        jainIndexAtEnd = jainFairnessIndex(result.flows.indices.compactMap { flow in
            endThroughputs[flow].flatMap { throughput in fairShares[flow].map { throughput / $0 } }
        })

        let windowSamples = max(1, Int((scenario.fairnessWindow.rawValue + scenario.sampleInterval.rawValue - 1) / scenario.sampleInterval.rawValue))
        var sharesBySet: [[Bool]: [Double?]] = [:]
        let jainSeries = series.times.indices.map { sample -> Double? in
            guard sample >= windowSamples else { return nil }
            let windowStart = series.times[sample - windowSamples]
            let runningNow = result.flows.map { running($0, windowStart, series.times[sample]) }
            let shares = sharesBySet[runningNow] ?? Self.fairShares(result, including: runningNow)
            sharesBySet[runningNow] = shares
            let normalized = result.flows.indices.compactMap { flow -> Double? in
                guard runningNow[flow], let share = shares[flow], share > 0 else { return nil }
                return delivery.averageThroughput(flow, after: windowStart, through: series.times[sample]) / share
            }
            return jainFairnessIndex(normalized)
        }
        jainIndexOverTime = jainSeries
        let lastStart = result.flows.indices.filter { endRunning[$0] }.map { result.flows[$0].start }.max()
        convergenceTime = lastStart.flatMap { lastStart in
            var converged: Int?
            for sample in series.times.indices.reversed() {
                guard sample >= windowSamples, series.times[sample - windowSamples] >= lastStart,
                      let jain = jainSeries[sample], jain >= scenario.fairnessThreshold else { break }
                converged = sample
            }
            return converged.map { series.times[$0] - lastStart }
        }

        queues = result.ports.filter { $0.isSwitchPort && $0.egressQueue.maxBytes > 0 }.map {
            Queue(
                port: $0.name,
                p50Bytes: $0.egressQueue.percentileBytes(0.5),
                p99Bytes: $0.egressQueue.percentileBytes(0.99),
                maxBytes: $0.egressQueue.maxBytes,
                meanBytes: $0.egressQueue.meanBytes,
                packetsMarked: $0.packetsMarked,
                utilization: Double($0.dataBytesTransmitted) * 8 / (Double($0.rateBitsPerSecond) * scenario.duration.seconds)
            )
        }.sorted { $0.maxBytes > $1.maxBytes }
        pauses = result.ports.filter { $0.pausedTime > .zero }.map {
            Pause(
                port: $0.name,
                pausedTime: $0.pausedTime,
                pauseFrames: $0.pauseFramesReceived,
                fractionOfRun: $0.pausedTime.seconds / scenario.duration.seconds
            )
        }.sorted { $0.pausedTime > $1.pausedTime }
        ingress = result.ports.filter { $0.isSwitchPort && $0.ingressMaxBytes > 0 }.map {
            Ingress(port: $0.ingressName, maxBytes: $0.ingressMaxBytes, pauseFramesSent: $0.pauseFramesSent)
        }.sorted { $0.maxBytes > $1.maxBytes }
    }

    /// Bits delivered to each flow from time zero through each sample, so that the average
    /// over any window is one subtraction.
    struct CumulativeDelivery {
        let times: [Nanoseconds]
        let bits: [[Double]]

        init(_ series: TimeSeries) {
            times = series.times
            bits = series.flowThroughputBitsPerSecond.map { throughput in
                var total = 0.0
                var previous = Nanoseconds.zero
                return zip(throughput, series.times).map { rate, time in
                    total += rate * (time - previous).seconds
                    previous = time
                    return total
                }
            }
        }

        /// Bits delivered through the last sample at or before `time`.
        private func delivered(_ flow: Int, through time: Nanoseconds) -> Double {
            var low = 0
            var high = times.count
            while low < high {
                let middle = (low + high) / 2
                if times[middle] <= time { low = middle + 1 } else { high = middle }
            }
            return low == 0 ? 0 : bits[flow][low - 1]
        }

        /// Average throughput of `flow` over the samples after `start` through `end`.
        func averageThroughput(_ flow: Int, after start: Nanoseconds, through end: Nanoseconds) -> Double {
            let span = (end - start).seconds
            guard span > 0 else { return 0 }
            return (delivered(flow, through: end) - delivered(flow, through: start)) / span
        }
    }

    private static func fairShares(_ result: SimulationResult, including: [Bool]) -> [Double?] {
        let included = result.flows.indices.filter { including[$0] }
        let routes = included.map { result.flows[$0].routePorts }
        let shares = maxMinFairShares(routes: routes, capacities: result.ports.map { Double($0.rateBitsPerSecond) })
        var byFlow = [Double?](repeating: nil, count: result.flows.count)
        for (position, flow) in included.enumerated() { byFlow[flow] = shares[position] }
        return byFlow
    }
}
