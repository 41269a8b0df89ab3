import CIBVerbs
import SoftRoCE

/// A protection domain: memory regions, queue pairs, address handles and shared receive
/// queues in the same domain may be used together, and only together.
///
/// ```swift
/// let pd = try ProtectionDomain(context: context)
/// let region = try MemoryRegion(protectionDomain: pd, length: 1 << 20, access: .allRemote)
/// ```
/// Keeps its context alive; `close()` closes its children first and is idempotent.
public final class ProtectionDomain: ClosableResource, @unchecked Sendable {
    private enum Handle {
        case verbs(UnsafeMutablePointer<ibv_pd>)
        case soft(UInt32, SoftDevice)
        case closed
    }

    private var handle: Handle
    /// The context this domain belongs to.
    public let context: Context
    let children = ChildRegistry()

    /// Allocates a protection domain. The corresponding C function is `ibv_alloc_pd`.
    public init(context: Context) throws(RDMAError) {
        self.context = context
        if let soft = try context.softEngine("ibv_alloc_pd") {
            handle = .soft(soft.allocateProtectionDomain(), soft)
            context.children.add(self)
            return
        }
        let verbsContext = try context.verbsContext("ibv_alloc_pd")
        handle = .verbs(try CReturn.nonNull("ibv_alloc_pd") { ibv_alloc_pd(verbsContext) }.get())
        context.children.add(self)
    }

    func verbsDomain(_ operation: StaticString) throws(RDMAError) -> UnsafeMutablePointer<ibv_pd> {
        switch handle {
        case .verbs(let pointer): return pointer
        case .soft: throw RDMAError(operation: "\(operation)", kind: .unsupported, hint: "a soft protection domain has no verbs handle")
        case .closed: throw RDMAError(operation: "\(operation)", kind: .closed, hint: "the ProtectionDomain was closed")
        }
    }

    /// The soft engine and domain number, nil on verbs; throws once closed.
    func softDomain(_ operation: StaticString) throws(RDMAError) -> (domain: UInt32, device: SoftDevice)? {
        switch handle {
        case .soft(let domain, let device): return (domain, device)
        case .verbs: return nil
        case .closed: throw RDMAError(operation: "\(operation)", kind: .closed, hint: "the ProtectionDomain was closed")
        }
    }

    /// True after `close()`.
    public var isClosed: Bool {
        if case .closed = handle { return true }
        return false
    }

    /// Closes the children (queue pairs, regions, address handles, SRQs), then the domain.
    /// Idempotent. The corresponding C function is `ibv_dealloc_pd`.
    public func close() throws(RDMAError) {
        if case .soft = handle {
            try children.closeAll()
            handle = .closed
            return
        }
        guard case .verbs(let pointer) = handle else { return }
        try children.closeAll()
        handle = .closed
        try CReturn.returnedErrno("ibv_dealloc_pd") { ibv_dealloc_pd(pointer) }.get()
    }

    deinit {
        try? close()
    }
}
