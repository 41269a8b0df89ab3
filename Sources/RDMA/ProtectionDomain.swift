/// A protection domain: memory regions, queue pairs, address handles and shared receive
/// queues in the same domain may be used together, and only together.
///
/// ```swift
/// let pd = try ProtectionDomain(context: context)
/// let region = try MemoryRegion(protectionDomain: pd, length: 1 << 20, access: .allRemote)
/// ```
/// Keeps its context alive; `close()` closes its children first and is idempotent.
public final class ProtectionDomain: ClosableResource, @unchecked Sendable {
    /// The backend's domain; nil once closed.
    private var operations: (any ProtectionDomainOperations)?
    /// The context this domain belongs to.
    public let context: Context
    let children = ChildRegistry()

    /// Allocates a protection domain. The corresponding C function is `ibv_alloc_pd`.
    public init(context: Context) throws(RDMAError) {
        self.context = context
        operations = try context.operations("ibv_alloc_pd").allocateProtectionDomain()
        context.children.add(self)
    }

    /// The backend's domain, or a `.closed` error naming `operation`.
    func operations(_ operation: StaticString) throws(RDMAError) -> any ProtectionDomainOperations {
        guard let operations else { throw RDMAError.closed(operation, "ProtectionDomain") }
        return operations
    }

    /// True after `close()`.
    public var isClosed: Bool { operations == nil }

    /// Closes the children (queue pairs, regions, address handles, SRQs), then the domain.
    /// Idempotent; after a failure (EBUSY: something in the domain is still open) the
    /// domain stays open and `close()` may be retried.
    /// The corresponding C function is `ibv_dealloc_pd`.
    public func close() throws(RDMAError) {
        guard let operations else { return }
        try children.closeAll()
        try operations.deallocate()
        self.operations = nil
    }

    deinit {
        LeakCheck.objectDeinitialized("ProtectionDomain", isOpen: operations != nil, detail: context.device.name)
        try? close()
    }
}
