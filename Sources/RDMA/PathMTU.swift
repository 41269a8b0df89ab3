import CIBVerbs

/// The path MTU of a queue pair: the largest payload of one RoCE packet.
///
/// RoCE runs with the largest of these that fits the Ethernet MTU minus the RoCEv2
/// headers: 1024 for a 1500-byte Ethernet MTU, 4096 for jumbo frames.
/// ```swift
/// let mtu = PathMTU(bytes: 1024)!     // .mtu1024
/// ```
/// The corresponding C type is `enum ibv_mtu`.
public enum PathMTU: Int, Sendable, Codable, CaseIterable, Comparable, CustomStringConvertible {
    case mtu256 = 256
    case mtu512 = 512
    case mtu1024 = 1024
    case mtu2048 = 2048
    case mtu4096 = 4096

    /// The MTU for a byte count, nil when it is not one of 256…4096 in powers of two.
    public init?(bytes: Int) { self.init(rawValue: bytes) }

    /// The payload bytes per packet.
    public var bytes: Int { rawValue }

    init?(verbs value: ibv_mtu) {
        switch value {
        case IBV_MTU_256: self = .mtu256
        case IBV_MTU_512: self = .mtu512
        case IBV_MTU_1024: self = .mtu1024
        case IBV_MTU_2048: self = .mtu2048
        case IBV_MTU_4096: self = .mtu4096
        default: return nil
        }
    }

    var verbsValue: ibv_mtu {
        switch self {
        case .mtu256: IBV_MTU_256
        case .mtu512: IBV_MTU_512
        case .mtu1024: IBV_MTU_1024
        case .mtu2048: IBV_MTU_2048
        case .mtu4096: IBV_MTU_4096
        }
    }

    public static func < (lhs: PathMTU, rhs: PathMTU) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { String(rawValue) }
}
