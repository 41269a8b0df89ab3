import CIBVerbs

/// What a device can do: the limits to size queues and regions against.
///
/// ```swift
/// let attributes = try context.deviceAttributes()
/// print(attributes.maxQueuePairs, attributes.maxCompletionQueueEntries)
/// ```
/// The corresponding C type is `struct ibv_device_attr` (from `ibv_query_device`).
public struct DeviceAttributes: Sendable, Equatable {
    /// The firmware version string.
    public var firmwareVersion: String
    /// The node GUID in host order.
    public var nodeGUID: UInt64
    public var vendorID: UInt32
    public var vendorPartID: UInt32
    public var hardwareVersion: UInt32
    /// The largest memory region, in bytes.
    public var maxMemoryRegionSize: UInt64
    public var maxQueuePairs: Int
    /// The deepest send or receive queue, in work requests.
    public var maxQueuePairWorkRequests: Int
    public var maxScatterGatherElements: Int
    public var maxCompletionQueues: Int
    public var maxCompletionQueueEntries: Int
    public var maxMemoryRegions: Int
    public var maxProtectionDomains: Int
    /// RDMA READ and atomic requests a QP can have outstanding as responder.
    public var maxQueuePairReadAtomicResponder: Int
    /// RDMA READ and atomic requests a QP can have outstanding as requester.
    public var maxQueuePairReadAtomicRequester: Int
    public var maxSharedReceiveQueues: Int
    public var maxSharedReceiveQueueWorkRequests: Int
    public var maxAddressHandles: Int
    /// Whether atomics are supported and at which granularity.
    public var atomicCapability: AtomicCapability
    public var physicalPortCount: Int

    /// How atomic operations behave. The corresponding C type is `enum ibv_atomic_cap`.
    public enum AtomicCapability: Sendable, Equatable {
        case none, withinDevice, global
    }

    init(_ raw: ibv_device_attr) {
        firmwareVersion = withUnsafeBytes(of: raw.fw_ver) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        nodeGUID = UInt64(bigEndian: raw.node_guid)
        vendorID = raw.vendor_id
        vendorPartID = raw.vendor_part_id
        hardwareVersion = raw.hw_ver
        maxMemoryRegionSize = raw.max_mr_size
        maxQueuePairs = Int(raw.max_qp)
        maxQueuePairWorkRequests = Int(raw.max_qp_wr)
        maxScatterGatherElements = Int(raw.max_sge)
        maxCompletionQueues = Int(raw.max_cq)
        maxCompletionQueueEntries = Int(raw.max_cqe)
        maxMemoryRegions = Int(raw.max_mr)
        maxProtectionDomains = Int(raw.max_pd)
        maxQueuePairReadAtomicResponder = Int(raw.max_qp_rd_atom)
        maxQueuePairReadAtomicRequester = Int(raw.max_qp_init_rd_atom)
        maxSharedReceiveQueues = Int(raw.max_srq)
        maxSharedReceiveQueueWorkRequests = Int(raw.max_srq_wr)
        maxAddressHandles = Int(raw.max_ah)
        switch raw.atomic_cap {
        case IBV_ATOMIC_HCA: atomicCapability = .withinDevice
        case IBV_ATOMIC_GLOB: atomicCapability = .global
        default: atomicCapability = .none
        }
        physicalPortCount = Int(raw.phys_port_cnt)
    }
}
