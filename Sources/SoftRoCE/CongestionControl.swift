import Congestion

/// DCQCN in the soft engine: what its packets carry in the IP header (DSCP, ECT(0)), whether
/// it answers CE-marked packets with CNPs (the notification point), and whether each RC queue
/// pair paces its transmissions at a rate its CNPs cut (the reaction point). Off by default:
/// packets go out unmarked, nothing is read, nothing is paced.
///
/// ```swift
/// var configuration = SoftDeviceConfiguration(address: "10.0.0.1")
/// configuration.congestion = .dcqcn(.mlx5Like, lineRateBitsPerSecond: 10e9)
/// // or only for some queue pairs: device.setReactionPoint(qp, parameters: .ns3MixConfig)
/// ```
public struct SoftCongestionControl: Sendable, Equatable {
    /// DSCP of data and acknowledgement packets (0…63).
    public var dataDSCP: UInt8
    /// Send ECN-capable (ECT(0)), so a RED or CoDel queue marks CE instead of dropping.
    public var ecnCapable: Bool
    /// Answer CE-marked packets of a QP with a CNP, at most one per QP per `cnpInterval`.
    public var notificationPoint: Bool
    /// N: the shortest gap between two CNPs of one QP (mlx5: `np_min_time_between_cnps`).
    public var cnpInterval: Nanoseconds
    /// The reaction point every RC QP of the device starts with; nil: none unless a QP is
    /// given one (`SoftDevice.setReactionPoint`).
    public var reactionPoint: DCQCNParameters?
    /// The rate a paced QP sends at before its first CNP, and R_C's ceiling after.
    public var lineRateBitsPerSecond: Double

    public init(dataDSCP: UInt8 = 0, ecnCapable: Bool = false, notificationPoint: Bool = false,
                cnpInterval: Nanoseconds = .microseconds(4), reactionPoint: DCQCNParameters? = nil,
                lineRateBitsPerSecond: Double = 10e9) {
        self.dataDSCP = dataDSCP
        self.ecnCapable = ecnCapable
        self.notificationPoint = notificationPoint
        self.cnpInterval = cnpInterval
        self.reactionPoint = reactionPoint
        self.lineRateBitsPerSecond = lineRateBitsPerSecond
    }

    /// Unmarked packets, no CNPs, no pacing: the engine as it was before DCQCN.
    public static let off = SoftCongestionControl()

    /// ECT(0) on every packet, CNPs at most every `parameters.minimumCNPInterval` per QP, and
    /// every RC QP paced by a reaction point with `parameters`.
    public static func dcqcn(_ parameters: DCQCNParameters, lineRateBitsPerSecond: Double, dataDSCP: UInt8 = 26) -> SoftCongestionControl {
        SoftCongestionControl(dataDSCP: dataDSCP, ecnCapable: true, notificationPoint: true, cnpInterval: parameters.minimumCNPInterval,
                              reactionPoint: parameters, lineRateBitsPerSecond: lineRateBitsPerSecond)
    }

    /// The DSCP/ECN byte data packets carry.
    var dataTrafficClass: TrafficClass {
        TrafficClass(dscp: dataDSCP, ecn: ecnCapable ? .ect0 : .notCapable)
    }

    /// True when received packets' ECN bits must be read.
    var readsECN: Bool { notificationPoint }

    /// The fields that cannot work, each with its reason; empty when usable.
    public var problems: [(field: String, problem: String)] {
        var found: [(String, String)] = []
        if dataDSCP > 63 { found.append(("dataDSCP", "must be 0…63")) }
        if cnpInterval < .zero { found.append(("cnpInterval", "must not be negative")) }
        if !(lineRateBitsPerSecond >= 1e3 && lineRateBitsPerSecond <= 1e13) {
            found.append(("lineRateBitsPerSecond", "must be 1 kb/s…10 Tb/s"))
        }
        for (field, problem) in reactionPoint?.problems ?? [] { found.append(("reactionPoint.\(field)", problem)) }
        return found
    }
}
