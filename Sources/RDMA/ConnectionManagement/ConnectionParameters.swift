import CIBVerbs

/// What one side offers when connecting or accepting, and what an event reports of the
/// peer's offer: RDMA READ depth, retry counts and the private data carried in the CM
/// messages. The corresponding C type is `struct rdma_conn_param`.
///
/// ```swift
/// var parameters = ConnectionParameters(privateData: Array("hello".utf8))
/// parameters.responderResources = 4     // RDMA READs the peer may have outstanding at us
/// try identifier.connect(parameters)
/// ```
public struct ConnectionParameters: Sendable, Equatable {
    /// User bytes for the peer. Limits come from the IB CM message that carries them, less
    /// rdma_cm's 36-byte header in a REQ: `PrivateDataLimit`.
    public var privateData: [UInt8]
    /// Outstanding RDMA READ/atomic requests the peer may have at us.
    public var responderResources: UInt8
    /// Outstanding RDMA READ/atomic requests we may have at the peer.
    public var initiatorDepth: UInt8
    /// True when the hardware flow control (end-to-end credits) is used.
    public var flowControl: Bool
    /// Transport retries before a send fails (0…7); ignored when accepting.
    public var retryCount: UInt8
    /// RNR retries before a send fails (0…7, 7 = forever).
    public var rnrRetryCount: UInt8

    public init(privateData: [UInt8] = [], responderResources: UInt8 = 1, initiatorDepth: UInt8 = 1,
                flowControl: Bool = false, retryCount: UInt8 = 7, rnrRetryCount: UInt8 = 7) {
        self.privateData = privateData
        self.responderResources = responderResources
        self.initiatorDepth = initiatorDepth
        self.flowControl = flowControl
        self.retryCount = retryCount
        self.rnrRetryCount = rnrRetryCount
    }

    /// Checks the fields against what the wire can carry; `operation` names the step.
    func validate(privateDataLimit: Int, operation: String) throws(RDMAError) {
        try ConnectionParameters.validate(privateData: privateData, limit: privateDataLimit, operation: operation)
        if retryCount > 7 {
            throw RDMAError(operation: operation, kind: .invalidArgument, hint: "retryCount is a 3-bit field (0…7); got \(retryCount)")
        }
        if rnrRetryCount > 7 {
            throw RDMAError(operation: operation, kind: .invalidArgument, hint: "rnrRetryCount is a 3-bit field (0…7, 7 = forever); got \(rnrRetryCount)")
        }
    }

    static func validate(privateData: [UInt8], limit: Int, operation: String) throws(RDMAError) {
        if privateData.count > limit {
            throw RDMAError(operation: operation, kind: .invalidArgument,
                            hint: "privateData is \(privateData.count) bytes; this message carries at most \(limit)")
        }
    }
}

/// How many user bytes of private data each CM message carries under rdma_cm on
/// InfiniBand and RoCE (the IB CM field sizes; a REQ loses 36 bytes to rdma_cm's header).
/// A receiver sees the whole field, zero-padded: send a length if it matters.
///
/// ```swift
/// let hello = Array("v1 key=42".utf8)
/// precondition(hello.count <= PrivateDataLimit.connect)
/// ```
public enum PrivateDataLimit {
    /// `rdma_connect` on a connected (TCP port space) identifier: a REQ.
    public static let connect = 56
    /// `rdma_accept`: a REP.
    public static let accept = 196
    /// `rdma_reject`: a REJ.
    public static let reject = 148
    /// `rdma_connect` on a datagram (UDP port space) identifier: a SIDR REQ.
    public static let datagramConnect = 180
    /// `rdma_accept` on a datagram identifier: a SIDR REP.
    public static let datagramAccept = 136
}

/// Which rdma_cm port space an identifier lives in; a port number is only unique inside
/// one. The corresponding C type is `enum rdma_port_space`.
///
/// ```swift
/// let datagrams = try ConnectionIdentifier(channel: channel, portSpace: .udp)
/// ```
public enum ConnectionPortSpace: Sendable, Equatable, CustomStringConvertible {
    /// Reliable connected queue pairs (`RDMA_PS_TCP`): what rping, perftest and most services use.
    case tcp
    /// Unreliable datagram queue pairs (`RDMA_PS_UDP`), connected through SIDR.
    case udp

    public var description: String {
        switch self {
        case .tcp: "RDMA_PS_TCP"
        case .udp: "RDMA_PS_UDP"
        }
    }

    var verbs: rdma_port_space {
        switch self {
        case .tcp: RDMA_PS_TCP
        case .udp: RDMA_PS_UDP
        }
    }

    var connectPrivateDataLimit: Int { self == .tcp ? PrivateDataLimit.connect : PrivateDataLimit.datagramConnect }
    var acceptPrivateDataLimit: Int { self == .tcp ? PrivateDataLimit.accept : PrivateDataLimit.datagramAccept }
}

/// What a datagram (UDP port space) peer told us: where to send and with which Q_Key.
/// Events of `ConnectionPortSpace.udp` identifiers carry it.
///
/// ```swift
/// if let peer = event.datagram {
///     let handle = try AddressHandle(protectionDomain: pd, addressVector: peer.addressVector)
///     let destination = DatagramDestination(addressHandle: handle, remoteQueuePairNumber: peer.remoteQueuePairNumber,
///                                           remoteQKey: peer.remoteQKey)
/// }
/// ```
public struct DatagramParameters: Sendable, Equatable {
    public var remoteQueuePairNumber: UInt32
    public var remoteQKey: UInt32
    /// The path to the peer, for an `AddressHandle`.
    public var addressVector: AddressVector
}
