/// Why a peer's connection manager refused a connection: the IB CM REJ reason
/// (`enum ib_cm_rej_reason`, IBTA vol. 1 §12.6.7.2), which is what librdmacm reports as
/// the status of `RDMA_CM_EVENT_REJECTED` on InfiniBand and RoCE.
///
/// ```swift
/// if event.kind == .rejected, let reason = event.rejectReason {
///     print(reason)   // "INVALID_SERVICE_ID (8): no listener on that port"
/// }
/// ```
public struct ConnectionRejectReason: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// From the status of an `RDMA_CM_EVENT_REJECTED` event; nil when it is not a reason
    /// (a negative errno, as some transports report).
    public init?(status: Int32) {
        guard status > 0, status <= Int32(UInt16.max) else { return nil }
        self.init(rawValue: UInt16(status))
    }

    public static let noQueuePair = Self(rawValue: 1)
    public static let noEndToEndContext = Self(rawValue: 2)
    public static let noResources = Self(rawValue: 3)
    public static let timeout = Self(rawValue: 4)
    public static let unsupported = Self(rawValue: 5)
    public static let invalidCommunicationID = Self(rawValue: 6)
    public static let invalidCommunicationInstance = Self(rawValue: 7)
    /// No listener for the service ID: on rdma_cm, nobody listens on that port.
    public static let invalidServiceID = Self(rawValue: 8)
    public static let invalidTransportType = Self(rawValue: 9)
    /// The (QP number, CA GUID) pair is still in timewait on the peer.
    public static let staleConnection = Self(rawValue: 10)
    public static let reliableDatagramChannelDoesNotExist = Self(rawValue: 11)
    /// The peer has no route back for the addresses in the request.
    public static let invalidGID = Self(rawValue: 12)
    public static let invalidLID = Self(rawValue: 13)
    public static let invalidServiceLevel = Self(rawValue: 14)
    public static let invalidTrafficClass = Self(rawValue: 15)
    public static let invalidHopLimit = Self(rawValue: 16)
    public static let invalidPacketRate = Self(rawValue: 17)
    public static let invalidAlternateGID = Self(rawValue: 18)
    public static let invalidAlternateLID = Self(rawValue: 19)
    public static let invalidAlternateServiceLevel = Self(rawValue: 20)
    public static let invalidAlternateTrafficClass = Self(rawValue: 21)
    public static let invalidAlternateHopLimit = Self(rawValue: 22)
    public static let invalidAlternatePacketRate = Self(rawValue: 23)
    public static let portCMRedirect = Self(rawValue: 24)
    public static let portRedirect = Self(rawValue: 25)
    public static let invalidMTU = Self(rawValue: 26)
    public static let insufficientResponderResources = Self(rawValue: 27)
    /// The peer application refused (`rdma_reject`): its private data says why.
    public static let consumerDefined = Self(rawValue: 28)
    public static let invalidRNRRetry = Self(rawValue: 29)
    public static let duplicateLocalCommunicationID = Self(rawValue: 30)
    public static let invalidClassVersion = Self(rawValue: 31)
    public static let invalidFlowLabel = Self(rawValue: 32)
    public static let invalidAlternateFlowLabel = Self(rawValue: 33)
    public static let vendorOptionNotSupported = Self(rawValue: 35)

    /// The kernel's name without its `IB_CM_REJ_` prefix, nil for a number it does not define.
    public var name: String? { Self.names[rawValue]?.name }

    /// What the reason usually means for a user of rdma_cm, nil when not known.
    public var explanation: String? { Self.names[rawValue]?.explanation }

    public var description: String {
        guard let entry = Self.names[rawValue] else { return "reason \(rawValue) (not an IB CM reason)" }
        return "\(entry.name) (\(rawValue))" + (entry.explanation.map { ": \($0)" } ?? "")
    }

    private static let names: [UInt16: (name: String, explanation: String?)] = [
        1: ("NO_QP", "the peer has no queue pair for the request"),
        2: ("NO_EEC", nil),
        3: ("NO_RESOURCES", "the peer is out of resources"),
        4: ("TIMEOUT", "the peer's CM timed out waiting for us"),
        5: ("UNSUPPORTED", "the peer does not support a requested feature"),
        6: ("INVALID_COMM_ID", nil),
        7: ("INVALID_COMM_INSTANCE", nil),
        8: ("INVALID_SERVICE_ID", "no listener on that port"),
        9: ("INVALID_TRANSPORT_TYPE", "the queue pair type does not match the listener's"),
        10: ("STALE_CONN", "a previous connection with this queue pair is still in timewait on the peer"),
        11: ("RDC_NOT_EXIST", nil),
        12: ("INVALID_GID", "the peer has no route back to our address"),
        13: ("INVALID_LID", nil),
        14: ("INVALID_SL", nil),
        15: ("INVALID_TRAFFIC_CLASS", nil),
        16: ("INVALID_HOP_LIMIT", nil),
        17: ("INVALID_PACKET_RATE", nil),
        18: ("INVALID_ALT_GID", nil),
        19: ("INVALID_ALT_LID", nil),
        20: ("INVALID_ALT_SL", nil),
        21: ("INVALID_ALT_TRAFFIC_CLASS", nil),
        22: ("INVALID_ALT_HOP_LIMIT", nil),
        23: ("INVALID_ALT_PACKET_RATE", nil),
        24: ("PORT_CM_REDIRECT", nil),
        25: ("PORT_REDIRECT", nil),
        26: ("INVALID_MTU", "the path MTU is not acceptable to the peer"),
        27: ("INSUFFICIENT_RESP_RESOURCES", "ask for fewer outstanding RDMA reads (responder resources)"),
        28: ("CONSUMER_DEFINED", "the peer application refused the connection (see its private data)"),
        29: ("INVALID_RNR_RETRY", nil),
        30: ("DUPLICATE_LOCAL_COMM_ID", nil),
        31: ("INVALID_CLASS_VERSION", nil),
        32: ("INVALID_FLOW_LABEL", nil),
        33: ("INVALID_ALT_FLOW_LABEL", nil),
        35: ("VENDOR_OPTION_NOT_SUPPORTED", nil),
    ]
}
