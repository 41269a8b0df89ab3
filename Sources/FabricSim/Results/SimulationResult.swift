import Congestion

/// Everything one run produced: per-port and per-flow totals and the sampled time series.
/// ``SimulationSummary`` turns it into the published metrics.
public struct SimulationResult: Sendable {
    public var scenario: FabricScenario
    public var eventsProcessed: Int
    public var ports: [PortReport]
    public var flows: [FlowReport]
    public var timeSeries: TimeSeries
}

/// One direction of a link: the transmitter at `node` towards `peer`, and — when `node` is a
/// switch — the buffer accounting of what arrived at `node` from `peer`.
public struct PortReport: Sendable {
    /// "node->peer": the transmitter.
    public var name: String
    /// "node<-peer": the bytes at `node` that came in from `peer`.
    public var ingressName: String
    public var node: Int
    public var peer: Int
    public var isSwitchPort: Bool
    public var rateBitsPerSecond: Int64
    /// Depth of the egress data queue over time (switch ports; hosts pace instead of queueing).
    public var egressQueue: QueueOccupancyHistogram
    /// The most bytes buffered at `node` that came in from `peer` (what PFC compares with XOFF).
    public var ingressMaxBytes: Int
    /// PAUSE frames `node` sent to `peer`.
    public var pauseFramesSent: Int
    /// PAUSE frames that stopped this transmitter, and for how long in total.
    public var pauseFramesReceived: Int
    public var pausedTime: Nanoseconds
    public var dataBytesTransmitted: Int64
    /// Data packets this transmitter sent with the CE mark.
    public var packetsMarked: Int
    /// Lossless packets that arrived through this port for a destination whose MAC entry
    /// the switch lacks, dropped (`UnknownDestinationAction.drop`).
    public var unknownDestinationDrops: Int = 0
    /// Flooded copies this transmitter queued (`UnknownDestinationAction.flood`).
    public var floodedCopiesSent: Int = 0
    /// Switch PFC watchdog on this transmitter's queue: storms detected, restorations, and
    /// packets dropped while mitigating.
    public var watchdogDetections: Int = 0
    public var watchdogRestorations: Int = 0
    public var watchdogDroppedPackets: Int = 0
    public var watchdogFirstDetection: Nanoseconds?
    public var watchdogLastRestoration: Nanoseconds?
    /// The watchdog was still dropping for this queue when the run ended.
    public var watchdogDroppingAtEnd: Bool = false
}

public struct FlowReport: Sendable {
    public var name: String
    /// Node indices, source to destination.
    public var route: [Int]
    /// Indices in `SimulationResult.ports` of the transmitters the data crosses, in order.
    public var routePorts: [Int]
    public var start: Nanoseconds
    public var stop: Nanoseconds?
    public var sizeBytes: Int?
    public var bytesSent: Int64
    public var bytesReceived: Int64
    /// When the last byte of a sized flow arrived.
    public var completion: Nanoseconds?
    public var markedPacketsReceived: Int
    public var cnpsSent: Int
    public var cnpsReceived: Int
    public var reactionPoint: ReactionPointCounters
    public var finalRateBitsPerSecond: Double
}

/// Values sampled every `scenario.sampleInterval`; row k describes the interval ending at
/// `times[k]`.
public struct TimeSeries: Sendable {
    public var times: [Nanoseconds] = []
    /// DCQCN's current rate R_C per flow (line rate without DCQCN); NaN while the flow does
    /// not send.
    public var flowRateBitsPerSecond: [[Double]]
    /// Bits delivered to the receiver during the interval, per second.
    public var flowThroughputBitsPerSecond: [[Double]]
    /// Egress data queue depth per port at the sample instant.
    public var egressQueueBytes: [[Int]]
    /// Bytes buffered per ingress port at the sample instant.
    public var ingressBytes: [[Int]]
    /// Whether the port's transmitter was held by PAUSE at the sample instant.
    public var paused: [[Bool]]

    init(flowCount: Int, portCount: Int) {
        flowRateBitsPerSecond = Array(repeating: [], count: flowCount)
        flowThroughputBitsPerSecond = Array(repeating: [], count: flowCount)
        egressQueueBytes = Array(repeating: [], count: portCount)
        ingressBytes = Array(repeating: [], count: portCount)
        paused = Array(repeating: [], count: portCount)
    }
}
