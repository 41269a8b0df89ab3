/// The local choices `QueuePair.connect(to:options:)` needs beyond the peer's `Endpoint`,
/// with the defaults perftest and rdma-core's examples use.
///
/// ```swift
/// var options = ConnectionOptions(gidIndex: 1)
/// options.retryCount = 3          // fail fast in tests
/// try queuePair.connect(to: peer, options: options)
/// ```
public struct ConnectionOptions: Sendable, Equatable {
    /// The local port, numbered from 1.
    public var port: UInt8
    /// The local GID index to send from (the RoCEv2 IPv4 entry: see `Context.preferredRoCEv2GID`).
    public var gidIndex: UInt8
    public var pkeyIndex: UInt16
    /// What the peer may do on this QP (RC/UC). Default: remote read, write and atomics.
    public var access: AccessFlags
    /// The path MTU; nil means the smaller of ours (from the local endpoint) and the peer's.
    public var pathMTU: PathMTU?
    /// ACK timeout code: 4.096 µs × 2^timeout; 14 ≈ 67 ms, perftest's default.
    public var timeout: UInt8
    /// Retransmissions before RETRY_EXC_ERR (0…7).
    public var retryCount: UInt8
    /// RNR retries before RNR_RETRY_EXC_ERR (7 = infinite).
    public var rnrRetry: UInt8
    /// RNR delay code we ask the peer to wait (12 ≈ 0.64 ms).
    public var minRNRTimer: UInt8
    /// Outstanding READ/atomic requests each way.
    public var maxReadAtomic: UInt8
    public var serviceLevel: UInt8
    public var trafficClass: UInt8
    public var hopLimit: UInt8
    /// The Q_Key of a UD QP.
    public var qkey: UInt32

    public init(port: UInt8 = 1, gidIndex: UInt8, pkeyIndex: UInt16 = 0,
                access: AccessFlags = [.remoteRead, .remoteWrite, .remoteAtomic], pathMTU: PathMTU? = nil,
                timeout: UInt8 = 14, retryCount: UInt8 = 7, rnrRetry: UInt8 = 7, minRNRTimer: UInt8 = 12,
                maxReadAtomic: UInt8 = 1, serviceLevel: UInt8 = 0, trafficClass: UInt8 = 0, hopLimit: UInt8 = 64,
                qkey: UInt32 = 0x1111_1111) {
        self.port = port
        self.gidIndex = gidIndex
        self.pkeyIndex = pkeyIndex
        self.access = access
        self.pathMTU = pathMTU
        self.timeout = timeout
        self.retryCount = retryCount
        self.rnrRetry = rnrRetry
        self.minRNRTimer = minRNRTimer
        self.maxReadAtomic = maxReadAtomic
        self.serviceLevel = serviceLevel
        self.trafficClass = trafficClass
        self.hopLimit = hopLimit
        self.qkey = qkey
    }
}
