/// A protection domain: memory regions, queue pairs, address handles and shared receive
/// queues in the same domain may be used together, and only together.
///
/// ```swift
/// let pd = try ProtectionDomain(context: context)
/// let region = try MemoryRegion(protectionDomain: pd, length: 1 << 20, access: .allRemote)
/// ```
/// Keeps its context alive; `close()` closes its children first and is idempotent.
public final class ProtectionDomain: ClosableResource, @unchecked Sendable {
    /// The backend's domain: a `let`, so that a call through it needs no retain;
    /// it outlives `close()`, and every use checks `isClosed` first.
    private let operations: any ProtectionDomainOperations
    /// True after `close()` — set once the destroy call succeeded.
    public private(set) var isClosed = false
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
        if isClosed { throw RDMAError.closed(operation, "ProtectionDomain") }
        return operations
    }

    /// Closes the children (queue pairs, regions, address handles, SRQs), then the domain.
    /// Idempotent; after a failure (EBUSY: something in the domain is still open) the
    /// domain stays open and `close()` may be retried.
    /// The corresponding C function is `ibv_dealloc_pd`.
    public func close() throws(RDMAError) {
        if isClosed { return }
        try children.closeAll()
        try operations.deallocate()
        isClosed = true
    }

    deinit {
        LeakCheck.objectDeinitialized("ProtectionDomain", isOpen: !isClosed, detail: context.device.name)
        try? close()
    }
}
