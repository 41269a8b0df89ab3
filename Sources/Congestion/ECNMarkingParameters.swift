/// RED-style ECN marking thresholds of a switch egress queue (the DCQCN congestion point).
///
/// Below ``kMinBytes`` nothing is marked; from Kmin to ``kMaxBytes`` the probability rises
/// linearly from 0 to ``maximumMarkingProbability`` (Pmax); above Kmax every packet is marked.
///
/// ```swift
/// let thresholds = ECNMarkingParameters(kMinBytes: 5_000, kMaxBytes: 200_000, maximumMarkingProbability: 0.01)
/// ```
public struct ECNMarkingParameters: Hashable, Sendable {
    public var kMinBytes: Int
    public var kMaxBytes: Int
    /// Pmax, in [0, 1].
    public var maximumMarkingProbability: Double

    public init(kMinBytes: Int, kMaxBytes: Int, maximumMarkingProbability: Double) {
        self.kMinBytes = kMinBytes
        self.kMaxBytes = kMaxBytes
        self.maximumMarkingProbability = maximumMarkingProbability
    }

    /// The fields that make marking meaningless, with the reason; empty when usable.
    public var problems: [(field: String, problem: String)] {
        var found: [(String, String)] = []
        if kMinBytes < 0 { found.append(("kMinBytes", "must not be negative")) }
        if kMaxBytes < kMinBytes { found.append(("kMaxBytes", "must not be below kMinBytes")) }
        if !(maximumMarkingProbability >= 0 && maximumMarkingProbability <= 1) {
            found.append(("maximumMarkingProbability", "must be in [0, 1]"))
        }
        return found
    }

    /// bobzhuyb/ns3-rdma `mix/config.txt`: KMIN 40 and KMAX 1000 cells of 1030 B, PMAX 1.0.
    public static let ns3MixConfig = ECNMarkingParameters(
        kMinBytes: 40 * 1030, kMaxBytes: 1000 * 1030, maximumMarkingProbability: 1.0
    )

    /// The HPCC simulator's "dcqcn_paper" profile (scaled for 25 Gb/s): 100 KB, 400 KB, 0.2.
    public static let hpccDCQCNPaperProfile = ECNMarkingParameters(
        kMinBytes: 100_000, kMaxBytes: 400_000, maximumMarkingProbability: 0.2
    )

    /// The presets by the names scenario files use.
    public static let presets: [(name: String, parameters: ECNMarkingParameters)] = [
        ("ns3MixConfig", .ns3MixConfig),
        ("hpccDCQCNPaperProfile", .hpccDCQCNPaperProfile),
    ]
}
