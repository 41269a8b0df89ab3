import CIBVerbs

/// What a memory region or queue pair allows: local writes by the device, and remote
/// reads, writes and atomics by the peer.
///
/// ```swift
/// let region = try MemoryRegion(protectionDomain: pd, length: 4096,
///                               access: [.localWrite, .remoteWrite, .remoteRead])
/// ```
/// The corresponding C type is `enum ibv_access_flags`.
public struct AccessFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The device may write into the region (needed for receives, READ responses, atomics).
    public static let localWrite = AccessFlags(rawValue: Int32(IBV_ACCESS_LOCAL_WRITE.rawValue))
    /// A peer may RDMA WRITE into the region. Requires `.localWrite`.
    public static let remoteWrite = AccessFlags(rawValue: Int32(IBV_ACCESS_REMOTE_WRITE.rawValue))
    /// A peer may RDMA READ from the region.
    public static let remoteRead = AccessFlags(rawValue: Int32(IBV_ACCESS_REMOTE_READ.rawValue))
    /// A peer may run atomic operations on the region. Requires `.localWrite`.
    public static let remoteAtomic = AccessFlags(rawValue: Int32(IBV_ACCESS_REMOTE_ATOMIC.rawValue))
    /// Memory windows may be bound to the region.
    public static let memoryWindowBind = AccessFlags(rawValue: Int32(IBV_ACCESS_MW_BIND.rawValue))
    /// The device may relax PCIe ordering for this region (faster; ignored where unsupported).
    public static let relaxedOrdering = AccessFlags(rawValue: Int32(IBV_ACCESS_RELAXED_ORDERING.rawValue))

    /// Everything a peer can do, plus the local write it needs.
    public static let allRemote: AccessFlags = [.localWrite, .remoteWrite, .remoteRead, .remoteAtomic]

    /// Checks the rule of the verbs specification that remote write and remote atomic
    /// access need local write: `ibv_reg_mr` fails with a bare EINVAL otherwise.
    func validateForRegistration(operation: String) throws(RDMAError) {
        if !contains(.localWrite) && (contains(.remoteWrite) || contains(.remoteAtomic)) {
            throw RDMAError(operation: operation, kind: .invalidArgument,
                            hint: "remote write and remote atomic access need .localWrite as well")
        }
    }

    public var description: String {
        let names: [(AccessFlags, String)] = [
            (.localWrite, "localWrite"), (.remoteWrite, "remoteWrite"), (.remoteRead, "remoteRead"),
            (.remoteAtomic, "remoteAtomic"), (.memoryWindowBind, "memoryWindowBind"),
            (.relaxedOrdering, "relaxedOrdering"),
        ]
        return "[" + names.filter { contains($0.0) }.map(\.1).joined(separator: ", ") + "]"
    }
}
