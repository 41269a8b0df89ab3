import CIBVerbs

/// What happened on a connection identifier: librdmacm's sixteen `RDMA_CM_EVENT_*`, in
/// their C order (the raw value is the C value), delivered the same way by both backends.
///
/// ```swift
/// let event = try channel.waitForEvent(timeoutMilliseconds: 5000)
/// if event?.kind == .established { print("connected") }
/// ```
public enum ConnectionEventKind: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// `rdma_resolve_addr` finished: the identifier is bound to a local device.
    case addressResolved = 0
    /// `rdma_resolve_addr` failed (no route, no RDMA device for the address, timeout).
    case addressError = 1
    /// `rdma_resolve_route` finished.
    case routeResolved = 2
    /// `rdma_resolve_route` failed.
    case routeError = 3
    /// A peer asked to connect; the event's identifier is a new one to accept or reject.
    case connectRequest = 4
    /// The peer accepted and no queue pair was attached: move it yourself, then `establish()`.
    case connectResponse = 5
    /// Connecting failed on our side (the queue pair could not be moved to its states).
    case connectError = 6
    /// The peer did not answer (the CM's retries ran out) or is unreachable.
    case unreachable = 7
    /// The peer (or its CM) refused: `ConnectionEvent.rejectReason` says why.
    case rejected = 8
    /// The connection is up.
    case established = 9
    /// Either side disconnected (or the connection failed); the queue pair was moved to ERROR.
    case disconnected = 10
    /// The RDMA device of the identifier went away: close the identifier.
    case deviceRemoval = 11
    /// Joined a multicast group (UD).
    case multicastJoin = 12
    /// A multicast join failed (UD).
    case multicastError = 13
    /// The local address of the identifier changed (bonding failover, netdev change).
    case addressChange = 14
    /// The queue pair left its timewait state: its number may be reused.
    case timewaitExit = 15

    /// Decodes a C `enum rdma_cm_event_type`; nil for a value this library does not know.
    public init?(cValue: UInt32) { self.init(rawValue: cValue) }

    /// librdmacm's spelling, as `rdma_event_str` returns it (`RDMA_CM_EVENT_ESTABLISHED`).
    public var cName: String {
        switch self {
        case .addressResolved: "RDMA_CM_EVENT_ADDR_RESOLVED"
        case .addressError: "RDMA_CM_EVENT_ADDR_ERROR"
        case .routeResolved: "RDMA_CM_EVENT_ROUTE_RESOLVED"
        case .routeError: "RDMA_CM_EVENT_ROUTE_ERROR"
        case .connectRequest: "RDMA_CM_EVENT_CONNECT_REQUEST"
        case .connectResponse: "RDMA_CM_EVENT_CONNECT_RESPONSE"
        case .connectError: "RDMA_CM_EVENT_CONNECT_ERROR"
        case .unreachable: "RDMA_CM_EVENT_UNREACHABLE"
        case .rejected: "RDMA_CM_EVENT_REJECTED"
        case .established: "RDMA_CM_EVENT_ESTABLISHED"
        case .disconnected: "RDMA_CM_EVENT_DISCONNECTED"
        case .deviceRemoval: "RDMA_CM_EVENT_DEVICE_REMOVAL"
        case .multicastJoin: "RDMA_CM_EVENT_MULTICAST_JOIN"
        case .multicastError: "RDMA_CM_EVENT_MULTICAST_ERROR"
        case .addressChange: "RDMA_CM_EVENT_ADDR_CHANGE"
        case .timewaitExit: "RDMA_CM_EVENT_TIMEWAIT_EXIT"
        }
    }

    /// True for the events that end a connection attempt or a connection with a failure.
    public var isFailure: Bool {
        switch self {
        case .addressError, .routeError, .connectError, .unreachable, .rejected, .deviceRemoval, .multicastError: true
        default: false
        }
    }

    public var description: String { cName }
}

extension ConnectionEventKind {
    /// From the verbs backend's C event type.
    init?(verbs type: rdma_cm_event_type) { self.init(rawValue: type.rawValue) }
}
