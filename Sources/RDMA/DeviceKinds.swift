import CIBVerbs

// The small enums that classify a device and its ports. They live together because each is
// a few lines and they are always read together (ibv_devinfo prints them side by side).

/// What kind of node a device is. The corresponding C type is `enum ibv_node_type`.
public enum NodeType: Sendable, Equatable, CustomStringConvertible {
    case channelAdapter, infiniBandSwitch, router, rdmaNIC, usnicUDP, usnic, unspecified
    case unknown(Int32)

    init(verbs value: ibv_node_type) {
        switch value {
        case IBV_NODE_CA: self = .channelAdapter
        case IBV_NODE_SWITCH: self = .infiniBandSwitch
        case IBV_NODE_ROUTER: self = .router
        case IBV_NODE_RNIC: self = .rdmaNIC
        case IBV_NODE_USNIC: self = .usnic
        case IBV_NODE_USNIC_UDP: self = .usnicUDP
        case IBV_NODE_UNSPECIFIED: self = .unspecified
        default: self = .unknown(value.rawValue)
        }
    }

    public var description: String {
        switch self {
        case .channelAdapter: "CA"
        case .infiniBandSwitch: "switch"
        case .router: "router"
        case .rdmaNIC: "RNIC"
        case .usnicUDP: "usNIC UDP"
        case .usnic: "usNIC"
        case .unspecified: "unspecified"
        case .unknown(let raw): "unknown(\(raw))"
        }
    }
}

/// The transport family of a device (RoCE and rxe report InfiniBand: RoCE *is* the IB
/// transport over Ethernet). The corresponding C type is `enum ibv_transport_type`.
public enum TransportType: Sendable, Equatable, CustomStringConvertible {
    case infiniBand, iWARP, usnic, usnicUDP, unspecified
    case unknown(Int32)

    init(verbs value: ibv_transport_type) {
        switch value {
        case IBV_TRANSPORT_IB: self = .infiniBand
        case IBV_TRANSPORT_IWARP: self = .iWARP
        case IBV_TRANSPORT_USNIC: self = .usnic
        case IBV_TRANSPORT_USNIC_UDP: self = .usnicUDP
        case IBV_TRANSPORT_UNSPECIFIED: self = .unspecified
        default: self = .unknown(value.rawValue)
        }
    }

    public var description: String {
        switch self {
        case .infiniBand: "InfiniBand"
        case .iWARP: "iWARP"
        case .usnic: "usNIC"
        case .usnicUDP: "usNIC UDP"
        case .unspecified: "unspecified"
        case .unknown(let raw): "unknown(\(raw))"
        }
    }
}

/// The link layer of a port: Ethernet for RoCE (and rxe), InfiniBand otherwise.
/// The corresponding C constants are `IBV_LINK_LAYER_*`.
public enum LinkLayer: Sendable, Equatable, CustomStringConvertible {
    case infiniBand, ethernet, unspecified

    init(verbs value: UInt8) {
        switch Int32(value) {
        case Int32(IBV_LINK_LAYER_ETHERNET): self = .ethernet
        case Int32(IBV_LINK_LAYER_INFINIBAND): self = .infiniBand
        default: self = .unspecified
        }
    }

    public var description: String {
        switch self {
        case .infiniBand: "InfiniBand"
        case .ethernet: "Ethernet"
        case .unspecified: "unspecified"
        }
    }
}

/// The logical state of a port. Only `.active` ports carry traffic.
/// The corresponding C type is `enum ibv_port_state`.
public enum PortState: Sendable, Equatable, CustomStringConvertible {
    case down, initializing, armed, active, activeDeferred
    case unknown(UInt32)

    init(verbs value: ibv_port_state) {
        switch value {
        case IBV_PORT_DOWN: self = .down
        case IBV_PORT_INIT: self = .initializing
        case IBV_PORT_ARMED: self = .armed
        case IBV_PORT_ACTIVE: self = .active
        case IBV_PORT_ACTIVE_DEFER: self = .activeDeferred
        default: self = .unknown(value.rawValue)
        }
    }

    public var description: String {
        switch self {
        case .down: "DOWN"
        case .initializing: "INIT"
        case .armed: "ARMED"
        case .active: "ACTIVE"
        case .activeDeferred: "ACTIVE_DEFER"
        case .unknown(let raw): "unknown(\(raw))"
        }
    }
}

/// The kind of a GID table entry. RoCEv2 (routable, UDP/IP) is what this toolkit speaks.
/// The corresponding C type is `enum ibv_gid_type`.
public enum GIDType: Sendable, Equatable, CustomStringConvertible {
    case infiniBand, roceV1, roceV2
    case unknown(UInt32)

    init(verbs value: UInt32) {
        switch value {
        case IBV_GID_TYPE_IB.rawValue: self = .infiniBand
        case IBV_GID_TYPE_ROCE_V1.rawValue: self = .roceV1
        case IBV_GID_TYPE_ROCE_V2.rawValue: self = .roceV2
        default: self = .unknown(value)
        }
    }

    public var description: String {
        switch self {
        case .infiniBand: "IB"
        case .roceV1: "RoCE v1"
        case .roceV2: "RoCE v2"
        case .unknown(let raw): "unknown(\(raw))"
        }
    }
}
