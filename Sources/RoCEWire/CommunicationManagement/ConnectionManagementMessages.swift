// The CM messages of IBTA Vol 1 chapter 12 that a connected (RC) service needs, each a value
// type with the byte offsets of its attribute (counted after the 24-byte MAD header, as in
// the kernel's `ibta_vol1_c12.h`). Bit fields are numbered from the most significant bit of
// their byte, as the IBTA tables are.

/// The 16-byte GID of a RoCEv2 port (an IPv6 address, or `::ffff:a.b.c.d` for IPv4).
public typealias GlobalIdentifier = RoCEEncapsulation.IPv6Address

/// IBTA path MTU codes (1 = 256 … 5 = 4096).
public enum PathMTU: UInt8, Hashable, Sendable, CaseIterable {
    case bytes256 = 1, bytes512, bytes1024, bytes2048, bytes4096
    public var byteCount: Int { 128 << Int(rawValue) }
    public init?(byteCount: Int) {
        guard let code = PathMTU.allCases.first(where: { $0.byteCount == byteCount }) else { return nil }
        self = code
    }
}

/// REQ (attribute 0x10): the active side asks for a connection to a service ID.
public struct ConnectRequest: Hashable, Sendable {
    public static let privateDataCapacity = 92
    public var localCommunicationID: UInt32 = 0
    public var serviceID: UInt64 = 0
    public var localCAGUID: UInt64 = 0
    public var localQKey: UInt32 = 0
    public var localQueuePairNumber: QueuePairNumber = 0
    public var responderResources: UInt8 = 0
    public var initiatorDepth: UInt8 = 0
    /// 4.096 µs · 2^n the sender waits for the peer's answer (5 bits).
    public var remoteCMResponseTimeout: UInt8 = 20
    /// 0 = RC, 1 = UC (2 bits); RD (2) is refused when parsing.
    public var transportServiceType: UInt8 = 0
    public var endToEndFlowControl = false
    public var startingPSN: PacketSequenceNumber = 0
    /// 4.096 µs · 2^n the sender takes to answer (5 bits).
    public var localCMResponseTimeout: UInt8 = 20
    /// Transport retry count for the QP (3 bits).
    public var retryCount: UInt8 = 7
    public var partitionKey: UInt16 = 0xFFFF
    public var pathMTU: PathMTU = .bytes1024
    public var rnrRetryCount: UInt8 = 7
    /// CM retries before the sender gives up (4 bits).
    public var maxCMRetries: UInt8 = 15
    public var sharedReceiveQueue = false
    public var primaryLocalLID: UInt16 = 0xFFFF
    public var primaryRemoteLID: UInt16 = 0xFFFF
    public var primaryLocalGID = GlobalIdentifier(high: 0, low: 0)
    public var primaryRemoteGID = GlobalIdentifier(high: 0, low: 0)
    /// 20 bits.
    public var primaryFlowLabel: UInt32 = 0
    /// 6 bits.
    public var primaryPacketRate: UInt8 = 0
    public var primaryTrafficClass: UInt8 = 0
    public var primaryHopLimit: UInt8 = 64
    /// 4 bits.
    public var primaryServiceLevel: UInt8 = 0
    public var primarySubnetLocal = false
    /// The QP's ACK timeout, 4.096 µs · 2^n (5 bits).
    public var primaryLocalACKTimeout: UInt8 = 17
    /// Up to 92 bytes (rdma_cm puts its 36-byte header first).
    public var privateData: [UInt8] = []

    public init() {}

    enum Layout {
        static let localCommunicationID = 0, serviceID = 8, localCAGUID = 16, localQKey = 28, localQueuePairNumber = 32
        static let responderResources = 35, initiatorDepth = 39, timeoutsAndTransport = 43, startingPSN = 44
        static let responseTimeoutAndRetry = 47, partitionKey = 48, mtuAndRNRRetry = 50, cmRetriesAndSRQ = 51
        static let primaryLocalLID = 52, primaryRemoteLID = 54, primaryLocalGID = 56, primaryRemoteGID = 72
        static let primaryFlowLabel = 88, primaryPacketRate = 91, primaryTrafficClass = 92, primaryHopLimit = 93
        static let primaryServiceLevel = 94, primaryLocalACKTimeout = 95, privateData = 140
    }

    init(validating bytes: UnsafeRawBufferPointer) throws(ConnectionManagementError) {
        localCommunicationID = bytes.loadBigEndian(at: Layout.localCommunicationID)
        serviceID = bytes.loadBigEndian(at: Layout.serviceID)
        localCAGUID = bytes.loadBigEndian(at: Layout.localCAGUID)
        localQKey = bytes.loadBigEndian(at: Layout.localQKey)
        localQueuePairNumber = QueuePairNumber(unchecked: bytes.loadUInt24(at: Layout.localQueuePairNumber))
        responderResources = bytes[Layout.responderResources]
        initiatorDepth = bytes[Layout.initiatorDepth]
        let timeouts = bytes[Layout.timeoutsAndTransport]
        remoteCMResponseTimeout = timeouts >> 3
        transportServiceType = timeouts >> 1 & 0x3
        guard transportServiceType <= 1 else { throw .unsupported(field: "REQ transport service type", value: UInt64(transportServiceType)) }
        endToEndFlowControl = timeouts & 1 != 0
        startingPSN = PacketSequenceNumber(truncating: bytes.loadUInt24(at: Layout.startingPSN))
        let retry = bytes[Layout.responseTimeoutAndRetry]
        localCMResponseTimeout = retry >> 3
        retryCount = retry & 0x7
        partitionKey = bytes.loadBigEndian(at: Layout.partitionKey)
        let mtu = bytes[Layout.mtuAndRNRRetry]
        guard let pathMTU = PathMTU(rawValue: mtu >> 4) else { throw .unsupported(field: "REQ path MTU", value: UInt64(mtu >> 4)) }
        self.pathMTU = pathMTU
        rnrRetryCount = mtu & 0x7
        let cmRetries = bytes[Layout.cmRetriesAndSRQ]
        maxCMRetries = cmRetries >> 4
        sharedReceiveQueue = cmRetries & 0x08 != 0
        primaryLocalLID = bytes.loadBigEndian(at: Layout.primaryLocalLID)
        primaryRemoteLID = bytes.loadBigEndian(at: Layout.primaryRemoteLID)
        primaryLocalGID = bytes.loadGID(at: Layout.primaryLocalGID)
        primaryRemoteGID = bytes.loadGID(at: Layout.primaryRemoteGID)
        primaryFlowLabel = (bytes.loadBigEndian(at: Layout.primaryFlowLabel) as UInt32) >> 12
        primaryPacketRate = bytes[Layout.primaryPacketRate] & 0x3F
        primaryTrafficClass = bytes[Layout.primaryTrafficClass]
        primaryHopLimit = bytes[Layout.primaryHopLimit]
        primaryServiceLevel = bytes[Layout.primaryServiceLevel] >> 4
        primarySubnetLocal = bytes[Layout.primaryServiceLevel] & 0x08 != 0
        primaryLocalACKTimeout = bytes[Layout.primaryLocalACKTimeout] >> 3
        privateData = Array(bytes[Layout.privateData..<(Layout.privateData + Self.privateDataCapacity)])
    }

    func write(into bytes: UnsafeMutableRawBufferPointer) throws(ConnectionManagementError) {
        try checkFits(privateData, Self.privateDataCapacity, "REQ private data")
        try checkBits(remoteCMResponseTimeout, 5, "REQ remote CM response timeout")
        try checkBits(localCMResponseTimeout, 5, "REQ local CM response timeout")
        try checkBits(transportServiceType, 1, "REQ transport service type")
        try checkBits(retryCount, 3, "REQ retry count")
        try checkBits(rnrRetryCount, 3, "REQ RNR retry count")
        try checkBits(maxCMRetries, 4, "REQ max CM retries")
        try checkBits(primaryServiceLevel, 4, "REQ primary SL")
        try checkBits(primaryPacketRate, 6, "REQ primary packet rate")
        try checkBits(primaryLocalACKTimeout, 5, "REQ primary local ACK timeout")
        guard primaryFlowLabel <= 0xF_FFFF else { throw .unsupported(field: "REQ primary flow label", value: UInt64(primaryFlowLabel)) }
        bytes.storeBigEndian(localCommunicationID, at: Layout.localCommunicationID)
        bytes.storeBigEndian(serviceID, at: Layout.serviceID)
        bytes.storeBigEndian(localCAGUID, at: Layout.localCAGUID)
        bytes.storeBigEndian(localQKey, at: Layout.localQKey)
        bytes.storeUInt24(localQueuePairNumber.rawValue, at: Layout.localQueuePairNumber)
        bytes[Layout.responderResources] = responderResources
        bytes[Layout.initiatorDepth] = initiatorDepth
        bytes[Layout.timeoutsAndTransport] = remoteCMResponseTimeout << 3 | transportServiceType << 1 | (endToEndFlowControl ? 1 : 0)
        bytes.storeUInt24(startingPSN.rawValue, at: Layout.startingPSN)
        bytes[Layout.responseTimeoutAndRetry] = localCMResponseTimeout << 3 | retryCount
        bytes.storeBigEndian(partitionKey, at: Layout.partitionKey)
        bytes[Layout.mtuAndRNRRetry] = pathMTU.rawValue << 4 | rnrRetryCount
        bytes[Layout.cmRetriesAndSRQ] = maxCMRetries << 4 | (sharedReceiveQueue ? 0x08 : 0)
        bytes.storeBigEndian(primaryLocalLID, at: Layout.primaryLocalLID)
        bytes.storeBigEndian(primaryRemoteLID, at: Layout.primaryRemoteLID)
        bytes.storeGID(primaryLocalGID, at: Layout.primaryLocalGID)
        bytes.storeGID(primaryRemoteGID, at: Layout.primaryRemoteGID)
        bytes.storeBigEndian(primaryFlowLabel << 12, at: Layout.primaryFlowLabel)
        bytes[Layout.primaryPacketRate] = primaryPacketRate
        bytes[Layout.primaryTrafficClass] = primaryTrafficClass
        bytes[Layout.primaryHopLimit] = primaryHopLimit
        bytes[Layout.primaryServiceLevel] = primaryServiceLevel << 4 | (primarySubnetLocal ? 0x08 : 0)
        bytes[Layout.primaryLocalACKTimeout] = primaryLocalACKTimeout << 3
        bytes.storeBytes(privateData, at: Layout.privateData)
    }
}

/// REP (attribute 0x13): the passive side accepts, with its QP and starting PSN.
public struct ConnectReply: Hashable, Sendable {
    public static let privateDataCapacity = 196
    public var localCommunicationID: UInt32 = 0
    public var remoteCommunicationID: UInt32 = 0
    public var localQKey: UInt32 = 0
    public var localQueuePairNumber: QueuePairNumber = 0
    public var startingPSN: PacketSequenceNumber = 0
    public var responderResources: UInt8 = 0
    public var initiatorDepth: UInt8 = 0
    /// 5 bits.
    public var targetACKDelay: UInt8 = 0
    /// 2 bits.
    public var failoverAccepted: UInt8 = 0
    public var endToEndFlowControl = false
    /// 3 bits.
    public var rnrRetryCount: UInt8 = 7
    public var sharedReceiveQueue = false
    public var localCAGUID: UInt64 = 0
    public var privateData: [UInt8] = []

    public init() {}

    enum Layout {
        static let localCommunicationID = 0, remoteCommunicationID = 4, localQKey = 8, localQueuePairNumber = 12
        static let startingPSN = 20, responderResources = 24, initiatorDepth = 25, ackDelayAndFailover = 26
        static let rnrRetryAndSRQ = 27, localCAGUID = 28, privateData = 36
    }

    init(validating bytes: UnsafeRawBufferPointer) {
        localCommunicationID = bytes.loadBigEndian(at: Layout.localCommunicationID)
        remoteCommunicationID = bytes.loadBigEndian(at: Layout.remoteCommunicationID)
        localQKey = bytes.loadBigEndian(at: Layout.localQKey)
        localQueuePairNumber = QueuePairNumber(unchecked: bytes.loadUInt24(at: Layout.localQueuePairNumber))
        startingPSN = PacketSequenceNumber(truncating: bytes.loadUInt24(at: Layout.startingPSN))
        responderResources = bytes[Layout.responderResources]
        initiatorDepth = bytes[Layout.initiatorDepth]
        let delay = bytes[Layout.ackDelayAndFailover]
        targetACKDelay = delay >> 3
        failoverAccepted = delay >> 1 & 0x3
        endToEndFlowControl = delay & 1 != 0
        rnrRetryCount = bytes[Layout.rnrRetryAndSRQ] >> 5
        sharedReceiveQueue = bytes[Layout.rnrRetryAndSRQ] & 0x10 != 0
        localCAGUID = bytes.loadBigEndian(at: Layout.localCAGUID)
        privateData = Array(bytes[Layout.privateData..<(Layout.privateData + Self.privateDataCapacity)])
    }

    func write(into bytes: UnsafeMutableRawBufferPointer) throws(ConnectionManagementError) {
        try checkFits(privateData, Self.privateDataCapacity, "REP private data")
        try checkBits(targetACKDelay, 5, "REP target ACK delay")
        try checkBits(failoverAccepted, 2, "REP failover accepted")
        try checkBits(rnrRetryCount, 3, "REP RNR retry count")
        bytes.storeBigEndian(localCommunicationID, at: Layout.localCommunicationID)
        bytes.storeBigEndian(remoteCommunicationID, at: Layout.remoteCommunicationID)
        bytes.storeBigEndian(localQKey, at: Layout.localQKey)
        bytes.storeUInt24(localQueuePairNumber.rawValue, at: Layout.localQueuePairNumber)
        bytes.storeUInt24(startingPSN.rawValue, at: Layout.startingPSN)
        bytes[Layout.responderResources] = responderResources
        bytes[Layout.initiatorDepth] = initiatorDepth
        bytes[Layout.ackDelayAndFailover] = targetACKDelay << 3 | failoverAccepted << 1 | (endToEndFlowControl ? 1 : 0)
        bytes[Layout.rnrRetryAndSRQ] = rnrRetryCount << 5 | (sharedReceiveQueue ? 0x10 : 0)
        bytes.storeBigEndian(localCAGUID, at: Layout.localCAGUID)
        bytes.storeBytes(privateData, at: Layout.privateData)
    }
}

/// RTU, DREQ's and DREP's shape: two communication IDs, then (DREQ only) the remote QPN,
/// then private data. RTU (0x14), DREP (0x16) carry 224 bytes; DREQ (0x15) 220.
public struct ConnectionManagementNotice: Hashable, Sendable {
    public var localCommunicationID: UInt32 = 0
    public var remoteCommunicationID: UInt32 = 0
    /// DREQ only: the QPN the receiver of the DREQ is connected to (its own QP).
    public var remoteQueuePairNumber: QueuePairNumber = 0
    public var privateData: [UInt8] = []

    public init(localCommunicationID: UInt32, remoteCommunicationID: UInt32, remoteQueuePairNumber: QueuePairNumber = 0,
                privateData: [UInt8] = []) {
        self.localCommunicationID = localCommunicationID
        self.remoteCommunicationID = remoteCommunicationID
        self.remoteQueuePairNumber = remoteQueuePairNumber
        self.privateData = privateData
    }

    static func privateDataOffset(carriesQueuePair: Bool) -> Int { carriesQueuePair ? 12 : 8 }
    static func privateDataCapacity(carriesQueuePair: Bool) -> Int { carriesQueuePair ? 220 : 224 }

    init(validating bytes: UnsafeRawBufferPointer, carriesQueuePair: Bool) {
        localCommunicationID = bytes.loadBigEndian(at: 0)
        remoteCommunicationID = bytes.loadBigEndian(at: 4)
        if carriesQueuePair { remoteQueuePairNumber = QueuePairNumber(unchecked: bytes.loadUInt24(at: 8)) }
        let start = Self.privateDataOffset(carriesQueuePair: carriesQueuePair)
        privateData = Array(bytes[start..<(start + Self.privateDataCapacity(carriesQueuePair: carriesQueuePair))])
    }

    func write(into bytes: UnsafeMutableRawBufferPointer, carriesQueuePair: Bool, name: String) throws(ConnectionManagementError) {
        try checkFits(privateData, Self.privateDataCapacity(carriesQueuePair: carriesQueuePair), "\(name) private data")
        bytes.storeBigEndian(localCommunicationID, at: 0)
        bytes.storeBigEndian(remoteCommunicationID, at: 4)
        if carriesQueuePair { bytes.storeUInt24(remoteQueuePairNumber.rawValue, at: 8) }
        bytes.storeBytes(privateData, at: Self.privateDataOffset(carriesQueuePair: carriesQueuePair))
    }
}

/// Which message a REJ or MRA refers to (2 bits).
public enum ConnectionManagementMessageKind: UInt8, Hashable, Sendable {
    case request = 0, reply = 1, other = 2
}

/// REJ (attribute 0x12): a connection refused (or abandoned), with the reason.
public struct ConnectReject: Hashable, Sendable {
    public static let privateDataCapacity = 148
    public static let additionalInformationCapacity = 72
    public var localCommunicationID: UInt32 = 0
    public var remoteCommunicationID: UInt32 = 0
    public var rejectedMessage: ConnectionManagementMessageKind = .request
    public var reason: ConnectRejectReason = .consumerDefined
    public var additionalInformation: [UInt8] = []
    public var privateData: [UInt8] = []

    public init(localCommunicationID: UInt32 = 0, remoteCommunicationID: UInt32, rejectedMessage: ConnectionManagementMessageKind = .request,
                reason: ConnectRejectReason, additionalInformation: [UInt8] = [], privateData: [UInt8] = []) {
        self.localCommunicationID = localCommunicationID
        self.remoteCommunicationID = remoteCommunicationID
        self.rejectedMessage = rejectedMessage
        self.reason = reason
        self.additionalInformation = additionalInformation
        self.privateData = privateData
    }

    enum Layout { static let rejectedMessage = 8, informationLength = 9, reason = 10, additionalInformation = 12, privateData = 84 }

    init(validating bytes: UnsafeRawBufferPointer) throws(ConnectionManagementError) {
        localCommunicationID = bytes.loadBigEndian(at: 0)
        remoteCommunicationID = bytes.loadBigEndian(at: 4)
        let kind = bytes[Layout.rejectedMessage] >> 6
        guard let rejectedMessage = ConnectionManagementMessageKind(rawValue: kind) else {
            throw .unsupported(field: "REJ message rejected", value: UInt64(kind))
        }
        self.rejectedMessage = rejectedMessage
        let length = Int(bytes[Layout.informationLength] >> 1)
        guard length <= Self.additionalInformationCapacity else {
            throw .tooLong(field: "REJ additional information", limit: Self.additionalInformationCapacity, actual: length)
        }
        reason = ConnectRejectReason(rawValue: bytes.loadBigEndian(at: Layout.reason))
        additionalInformation = Array(bytes[Layout.additionalInformation..<(Layout.additionalInformation + length)])
        privateData = Array(bytes[Layout.privateData..<(Layout.privateData + Self.privateDataCapacity)])
    }

    func write(into bytes: UnsafeMutableRawBufferPointer) throws(ConnectionManagementError) {
        try checkFits(privateData, Self.privateDataCapacity, "REJ private data")
        try checkFits(additionalInformation, Self.additionalInformationCapacity, "REJ additional information")
        bytes.storeBigEndian(localCommunicationID, at: 0)
        bytes.storeBigEndian(remoteCommunicationID, at: 4)
        bytes[Layout.rejectedMessage] = rejectedMessage.rawValue << 6
        bytes[Layout.informationLength] = UInt8(additionalInformation.count) << 1
        bytes.storeBigEndian(reason.rawValue, at: Layout.reason)
        bytes.storeBytes(additionalInformation, at: Layout.additionalInformation)
        bytes.storeBytes(privateData, at: Layout.privateData)
    }
}

/// MRA (attribute 0x11): "your message arrived, my answer will take longer".
public struct MessageReceiptAcknowledgement: Hashable, Sendable {
    public static let privateDataCapacity = 222
    public var localCommunicationID: UInt32 = 0
    public var remoteCommunicationID: UInt32 = 0
    public var acknowledgedMessage: ConnectionManagementMessageKind = .request
    /// The extra wait the sender asks for: 4.096 µs · 2^n (5 bits).
    public var serviceTimeout: UInt8 = 0
    public var privateData: [UInt8] = []

    public init(localCommunicationID: UInt32, remoteCommunicationID: UInt32, acknowledgedMessage: ConnectionManagementMessageKind,
                serviceTimeout: UInt8, privateData: [UInt8] = []) {
        self.localCommunicationID = localCommunicationID
        self.remoteCommunicationID = remoteCommunicationID
        self.acknowledgedMessage = acknowledgedMessage
        self.serviceTimeout = serviceTimeout
        self.privateData = privateData
    }

    init(validating bytes: UnsafeRawBufferPointer) throws(ConnectionManagementError) {
        localCommunicationID = bytes.loadBigEndian(at: 0)
        remoteCommunicationID = bytes.loadBigEndian(at: 4)
        let kind = bytes[8] >> 6
        guard let acknowledgedMessage = ConnectionManagementMessageKind(rawValue: kind) else {
            throw .unsupported(field: "MRA message MRAed", value: UInt64(kind))
        }
        self.acknowledgedMessage = acknowledgedMessage
        serviceTimeout = bytes[9] >> 3
        privateData = Array(bytes[10..<(10 + Self.privateDataCapacity)])
    }

    func write(into bytes: UnsafeMutableRawBufferPointer) throws(ConnectionManagementError) {
        try checkFits(privateData, Self.privateDataCapacity, "MRA private data")
        try checkBits(serviceTimeout, 5, "MRA service timeout")
        bytes.storeBigEndian(localCommunicationID, at: 0)
        bytes.storeBigEndian(remoteCommunicationID, at: 4)
        bytes[8] = acknowledgedMessage.rawValue << 6
        bytes[9] = serviceTimeout << 3
        bytes.storeBytes(privateData, at: 10)
    }
}

/// The REJ reason codes (IBTA table 109, `enum ib_cm_rej_reason`); unknown codes are kept.
public struct ConnectRejectReason: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let noQueuePair = Self(rawValue: 1)
    public static let noResources = Self(rawValue: 3)
    public static let timeout = Self(rawValue: 4)
    public static let unsupported = Self(rawValue: 5)
    public static let invalidCommunicationID = Self(rawValue: 6)
    public static let invalidCommunicationInstance = Self(rawValue: 7)
    public static let invalidServiceID = Self(rawValue: 8)
    public static let invalidTransportType = Self(rawValue: 9)
    public static let staleConnection = Self(rawValue: 10)
    public static let invalidGID = Self(rawValue: 12)
    public static let invalidMTU = Self(rawValue: 26)
    public static let consumerDefined = Self(rawValue: 28)
    public static let invalidClassVersion = Self(rawValue: 31)

    public var description: String {
        let names: [UInt16: String] = [1: "no QP", 3: "no resources", 4: "timeout", 5: "unsupported", 6: "invalid communication ID",
                                       7: "invalid communication instance", 8: "invalid service ID (no listener on that port)",
                                       9: "invalid transport type", 10: "stale connection", 12: "invalid GID", 26: "invalid MTU",
                                       28: "consumer defined (rejected by the application)", 31: "invalid class version"]
        return "\(rawValue) (\(names[rawValue] ?? "IBTA reason"))"
    }
}

// MARK: - Field helpers

extension UnsafeRawBufferPointer {
    func loadGID(at offset: Int) -> GlobalIdentifier {
        GlobalIdentifier(high: loadBigEndian(at: offset), low: loadBigEndian(at: offset + 8))
    }
}

extension UnsafeMutableRawBufferPointer {
    func storeGID(_ gid: GlobalIdentifier, at offset: Int) {
        storeBigEndian(gid.high, at: offset)
        storeBigEndian(gid.low, at: offset + 8)
    }

    func storeBytes(_ bytes: [UInt8], at offset: Int) {
        for (index, byte) in bytes.enumerated() { self[offset + index] = byte }
    }
}

func checkFits(_ bytes: [UInt8], _ limit: Int, _ field: String) throws(ConnectionManagementError) {
    guard bytes.count <= limit else { throw .tooLong(field: field, limit: limit, actual: bytes.count) }
}

func checkBits(_ value: UInt8, _ width: Int, _ field: String) throws(ConnectionManagementError) {
    guard value < 1 << width else { throw .unsupported(field: field, value: UInt64(value)) }
}
