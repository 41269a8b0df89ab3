import CIBVerbs

/// The state and capabilities of one port of a device.
///
/// ```swift
/// let port = try context.portAttributes(port: 1)
/// guard port.state == .active else { fatalError("port is \(port.state)") }
/// print(port.activeMTU, port.speedGigabitsPerSecond ?? 0)
/// ```
/// The corresponding C type is `struct ibv_port_attr` (from `ibv_query_port`).
public struct PortAttributes: Sendable, Equatable {
    public var state: PortState
    public var maxMTU: PathMTU?
    /// The MTU in use: the path MTU a QP on this port should use.
    public var activeMTU: PathMTU?
    public var gidTableLength: Int
    public var maxMessageSize: UInt32
    /// The local identifier (0 on RoCE, where addressing is by GID).
    public var lid: UInt16
    public var linkLayer: LinkLayer
    /// Lanes × per-lane rate code, as the device reports them.
    public var activeWidthCode: UInt8
    public var activeSpeedCode: UInt8

    init(_ raw: ibv_port_attr) {
        state = PortState(verbs: raw.state)
        maxMTU = PathMTU(verbs: raw.max_mtu)
        activeMTU = PathMTU(verbs: raw.active_mtu)
        gidTableLength = Int(raw.gid_tbl_len)
        maxMessageSize = raw.max_msg_sz
        lid = raw.lid
        linkLayer = LinkLayer(verbs: raw.link_layer)
        activeWidthCode = raw.active_width
        activeSpeedCode = raw.active_speed
    }

    /// Lanes in use (1, 2, 4, 8 or 12), nil for an unknown code.
    public var laneCount: Int? {
        switch activeWidthCode {
        case 1: 1
        case 2: 4
        case 4: 8
        case 8: 12
        case 16: 2
        default: nil
        }
    }

    /// Per-lane signalling rate in Gb/s (IBTA speed codes: SDR … NDR), nil when unknown.
    public var laneGigabitsPerSecond: Double? {
        switch activeSpeedCode {
        case 1: 2.5
        case 2: 5
        case 4, 8: 10
        case 16: 14
        case 32: 25
        case 64: 50
        case 128: 100
        default: nil
        }
    }

    /// The link speed in Gb/s (lanes × lane rate), nil when the device reports codes this
    /// library does not know.
    public var speedGigabitsPerSecond: Double? {
        guard let lanes = laneCount, let rate = laneGigabitsPerSecond else { return nil }
        return Double(lanes) * rate
    }
}

/// One entry of a port's GID table.
///
/// The corresponding C type is `struct ibv_gid_entry` (from `ibv_query_gid_table`).
public struct GIDEntry: Sendable, Equatable, CustomStringConvertible {
    public var gid: GID
    /// The index to pass as `gidIndex` (perftest's `-x`).
    public var index: Int
    public var port: UInt8
    public var type: GIDType
    /// The network interface the GID belongs to (RoCE), 0 when none.
    public var networkInterfaceIndex: UInt32

    public var description: String { "GID[\(index)] \(gid) (\(type), port \(port))" }

    /// The entry a RoCEv2 peer reaching us over IPv4 must use: type RoCEv2 and an
    /// IPv4-mapped address. Where several exist (several addresses), the lowest index wins.
    public static func preferredRoCEv2(in table: [GIDEntry]) -> GIDEntry? {
        table.filter { $0.type == .roceV2 && $0.gid.isIPv4Mapped }.min { $0.index < $1.index }
    }
}
