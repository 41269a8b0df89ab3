import RoCEWire

/// How a soft connection manager times its handshakes (IBTA's 4.096 µs · 2^n codes).
///
/// ```swift
/// var configuration = SoftConnectionManagerConfiguration()
/// configuration.responseTimeout = 12        // ≈ 16.8 ms per attempt (tests)
/// configuration.maxRetries = 3
/// ```
package struct SoftConnectionManagerConfiguration: Sendable {
    /// How long to wait for an answer to a REQ, REP or DREQ: 4.096 µs · 2^n. rdma_cm's 20 (≈ 4.3 s).
    package var responseTimeout: UInt8 = 20
    /// Retransmissions of a REQ, REP or DREQ before giving up. rdma_cm's 15.
    package var maxRetries: UInt8 = 15
    /// How long a closed connection's (QPN, CA GUID) stays in timewait (stale REQs are
    /// refused with REJ 10 meanwhile). Default: one response timeout.
    package var timewaitNanoseconds: UInt64? = nil
    /// The largest path MTU offered in a REQ (and accepted from one).
    package var pathMTU: PathMTU = .bytes4096
    /// The QP's ACK timeout code given to both sides (REQ's local ACK timeout).
    package var ackTimeout: UInt8 = 14
    /// Seeds communication IDs and starting PSNs (nil: from the clock).
    package var seed: UInt64? = nil
    package init() {}

    var responseNanoseconds: UInt64 { 4096 << UInt64(min(responseTimeout, 31)) }
}

/// What a connection asks of its QP, as in `struct rdma_conn_param`.
package struct SoftConnectionParameters: Sendable, Equatable {
    /// RDMA READs/atomics the peer may have outstanding at us.
    package var responderResources: UInt8
    /// RDMA READs/atomics we may have outstanding at the peer.
    package var initiatorDepth: UInt8
    package var retryCount: UInt8
    package var rnrRetryCount: UInt8
    package init(responderResources: UInt8 = 1, initiatorDepth: UInt8 = 1, retryCount: UInt8 = 7, rnrRetryCount: UInt8 = 7) {
        self.responderResources = responderResources
        self.initiatorDepth = initiatorDepth
        self.retryCount = min(retryCount, 7)
        self.rnrRetryCount = min(rnrRetryCount, 7)
    }
}

/// librdmacm's 16 `RDMA_CM_EVENT_*` kinds, in its order.
package enum SoftConnectionEventKind: Int, Sendable, Equatable, CaseIterable {
    case addressResolved, addressError, routeResolved, routeError, connectRequest, connectResponse, connectError,
         unreachable, rejected, established, disconnected, deviceRemoval, multicastJoin, multicastError,
         addressChange, timewaitExit
}

/// One connection event, as `struct rdma_cm_event` carries it.
package struct SoftConnectionEvent: Sendable, Equatable {
    package var kind: SoftConnectionEventKind
    /// The connection the event belongs to (for `connectRequest`: the new request's id).
    package var id: UInt32
    /// `connectRequest`: the listener that received it.
    package var listenerID: UInt32?
    package var peer: SoftAddress?
    /// The peer's rdma_cm port (the active side's source port, or the listener's port).
    package var peerPort: UInt16
    /// The user's private data (after rdma_cm's 36-byte header in a REQ).
    package var privateData: [UInt8]
    /// `connectRequest` and `established`: what the peer offered.
    package var parameters: SoftConnectionParameters?
    /// `rejected`: the IB CM reason.
    package var rejectReason: ConnectRejectReason?
    /// librdmacm's `status`: 0, or a negative errno (`-ETIMEDOUT` for `unreachable`).
    package var status: Int32

    init(_ kind: SoftConnectionEventKind, id: UInt32, peer: SoftAddress? = nil, peerPort: UInt16 = 0, privateData: [UInt8] = [],
         parameters: SoftConnectionParameters? = nil, rejectReason: ConnectRejectReason? = nil, status: Int32 = 0, listenerID: UInt32? = nil) {
        self.kind = kind
        self.id = id
        self.listenerID = listenerID
        self.peer = peer
        self.peerPort = peerPort
        self.privateData = privateData
        self.parameters = parameters
        self.rejectReason = rejectReason
        self.status = status
    }
}

/// Where a connection stands (the IB CM's states, IBTA 12.9.6).
enum ConnectionState: Equatable {
    /// Active: REQ sent, waiting for REP (an MRA stretches the wait).
    case requestSent
    /// Passive: REQ delivered as a CONNECT_REQUEST event, waiting for accept or reject.
    case requestReceived
    /// Passive: REP sent, waiting for RTU.
    case replySent
    case established
    /// DREQ sent, waiting for DREP.
    case disconnectRequestSent
    /// Closed; the (QPN, CA GUID) pair is remembered until `deadline`.
    case timewait
}

/// One connection (a CM id) and its handshake state. Lives in `ConnectionManagerCore`.
final class ConnectionRecord {
    let id: UInt32
    let isActive: Bool
    var state: ConnectionState
    var listenerID: UInt32?
    var queuePair: SoftQueuePair?
    let peer: SoftAddress
    var peerPort: UInt16
    var localPort: UInt16
    var remoteCommunicationID: UInt32 = 0
    var remoteQueuePairNumber: UInt32 = 0
    var remoteCAGUID: UInt64 = 0
    /// The starting PSN the peer's REQ/REP carried: where we start sending.
    var remoteStartingPSN: UInt32 = 0
    /// The starting PSN our REQ/REP carried: where we start receiving.
    var localStartingPSN: UInt32 = 0
    var transactionID: UInt64
    var parameters: SoftConnectionParameters
    var pathMTU: PathMTU
    /// The last REQ/REP/DREQ sent, resent on timeout or to answer a duplicate.
    var lastMessage: [UInt8] = []
    var retriesLeft = 0
    /// When the current wait ends (0: none).
    var deadline: UInt64 = 0
    /// The caller's bound on the whole handshake (0: none).
    var handshakeDeadline: UInt64 = 0
    /// The user destroyed the id: no more events, the record lives only for timewait.
    var destroyed = false
    /// Where this connection's events go.
    var events: SoftConnectionEventQueue

    init(id: UInt32, isActive: Bool, state: ConnectionState, peer: SoftAddress, peerPort: UInt16, localPort: UInt16,
         transactionID: UInt64, parameters: SoftConnectionParameters, pathMTU: PathMTU, events: SoftConnectionEventQueue) {
        self.id = id
        self.events = events
        self.isActive = isActive
        self.state = state
        self.peer = peer
        self.peerPort = peerPort
        self.localPort = localPort
        self.transactionID = transactionID
        self.parameters = parameters
        self.pathMTU = pathMTU
    }
}

/// A listening id: REQs for its port (and address, if bound) become CONNECT_REQUEST events.
struct ListenerRecord {
    let id: UInt32
    let address: SoftAddress?
    let port: UInt16
    let backlog: Int
    /// Where its connect requests (and then those connections' events) go.
    var events: SoftConnectionEventQueue
}
