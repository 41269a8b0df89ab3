import Congestion

/// A complete, validated description of one simulation: topology, flows, and the congestion
/// settings of every box.
///
/// Build one with ``ScenarioLoader`` from a JSON file, or with the factories in
/// `FabricScenario+Builders.swift` (`.incast`, `.staggeredStart`, `.victimFlow`):
///
/// ```swift
/// var scenario = FabricScenario.incast(senderCount: 4, linkRateBitsPerSecond: 10_000_000_000)
/// scenario.dcqcnEnabled = false          // the PFC-only variant
/// var simulator = FabricSimulator(scenario: scenario)
/// let result = simulator.run()
/// ```
///
/// Nodes, links and flows refer to each other by index into their arrays. Links are full
/// duplex; a flow's route lists nodes from its source host to its destination host, and its
/// CNPs travel the same nodes in reverse.
public struct FabricScenario: Hashable, Sendable {
    public enum NodeKind: String, Hashable, Sendable { case host, `switch` }

    public struct Node: Hashable, Sendable {
        public var name: String
        public var kind: NodeKind
        public init(name: String, kind: NodeKind) {
            self.name = name
            self.kind = kind
        }
    }

    public struct Link: Hashable, Sendable {
        public var nodeA: Int
        public var nodeB: Int
        public var rateBitsPerSecond: Int64
        public var propagationDelay: Nanoseconds
        public init(nodeA: Int, nodeB: Int, rateBitsPerSecond: Int64, propagationDelay: Nanoseconds) {
            self.nodeA = nodeA
            self.nodeB = nodeB
            self.rateBitsPerSecond = rateBitsPerSecond
            self.propagationDelay = propagationDelay
        }
    }

    public struct Flow: Hashable, Sendable {
        public var name: String
        /// Node indices from the source host to the destination host.
        public var route: [Int]
        public var start: Nanoseconds
        /// When the sender stops offering data; nil: it never does.
        public var stop: Nanoseconds?
        /// Bytes to deliver; nil: an endless backlog.
        public var sizeBytes: Int?
        public init(name: String, route: [Int], start: Nanoseconds = .zero, stop: Nanoseconds? = nil, sizeBytes: Int? = nil) {
            self.name = name
            self.route = route
            self.start = start
            self.stop = stop
            self.sizeBytes = sizeBytes
        }
        public var source: Int { route[0] }
        public var destination: Int { route[route.count - 1] }
    }

    /// Priority flow control of the lossless class, accounted per switch ingress port.
    public struct PFC: Hashable, Sendable {
        public var enabled: Bool
        /// When the bytes buffered from one ingress port reach this, PAUSE goes upstream.
        public var xoffBytes: Int
        /// When they fall to this, RESUME goes upstream.
        public var xonBytes: Int
        public init(enabled: Bool = true, xoffBytes: Int, xonBytes: Int) {
            self.enabled = enabled
            self.xoffBytes = xoffBytes
            self.xonBytes = xonBytes
        }
    }

    public var name: String
    public var summary: String
    public var duration: Nanoseconds
    public var seed: UInt64
    /// Size of every data packet on the wire (the last packet of a sized flow may be shorter).
    public var packetSizeBytes: Int
    /// Size of a CNP on the wire.
    public var cnpSizeBytes: Int
    /// False: the PFC-only variant — senders stay at line rate and receivers send no CNPs
    /// (switches still mark, so the marks are counted).
    public var dcqcnEnabled: Bool
    public var dcqcn: DCQCNParameters
    public var marking: ECNMarkingParameters
    public var pfc: PFC
    /// How often rates, queues and pause states are recorded.
    public var sampleInterval: Nanoseconds
    /// Throughput is averaged over this window for Jain's index and the rate plot.
    public var fairnessWindow: Nanoseconds
    /// Jain's index at or above which the flows count as converged.
    public var fairnessThreshold: Double
    public var nodes: [Node]
    public var links: [Link]
    public var flows: [Flow]
    /// Missing MAC table entries and what switches do with lossless packets they cannot
    /// place (default: none missing).
    public var unknownUnicast = UnknownUnicast()
    /// The switch-side PFC watchdog; nil: none (the default).
    public var pfcWatchdog: PFCWatchdog?

    public init(
        name: String,
        summary: String = "",
        duration: Nanoseconds,
        seed: UInt64 = 1,
        packetSizeBytes: Int = 1000,
        cnpSizeBytes: Int = 64,
        dcqcnEnabled: Bool = true,
        dcqcn: DCQCNParameters,
        marking: ECNMarkingParameters,
        pfc: PFC,
        sampleInterval: Nanoseconds = .microseconds(10),
        fairnessWindow: Nanoseconds = .microseconds(500),
        fairnessThreshold: Double = 0.95,
        nodes: [Node],
        links: [Link],
        flows: [Flow]
    ) {
        self.name = name
        self.summary = summary
        self.duration = duration
        self.seed = seed
        self.packetSizeBytes = packetSizeBytes
        self.cnpSizeBytes = cnpSizeBytes
        self.dcqcnEnabled = dcqcnEnabled
        self.dcqcn = dcqcn
        self.marking = marking
        self.pfc = pfc
        self.sampleInterval = sampleInterval
        self.fairnessWindow = fairnessWindow
        self.fairnessThreshold = fairnessThreshold
        self.nodes = nodes
        self.links = links
        self.flows = flows
    }

    public func nodeIndex(named name: String) -> Int? { nodes.firstIndex { $0.name == name } }
}
