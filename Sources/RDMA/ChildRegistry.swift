import Synchronization

/// Something a parent can close before it closes itself.
protocol ClosableResource: AnyObject, Sendable {
    var isClosed: Bool { get }
    func close() throws(RDMAError)
}

/// The children of one parent, held weakly, so that `parent.close()` can close them first
/// (the order verbs requires: a QP before its CQs and PD, an MR before its PD …) while a
/// child's strong reference to its parent keeps the parent alive for as long as the child
/// is used. Registration happens when a resource is created, never on the data path.
final class ChildRegistry: Sendable {
    private struct WeakChild {
        weak var child: (any ClosableResource)?
    }

    private let children = Mutex<[WeakChild]>([])

    func add(_ child: any ClosableResource) {
        children.withLock { list in
            list.removeAll { $0.child == nil }
            list.append(WeakChild(child: child))
        }
    }

    /// Forgets `child` (it moved to another parent).
    func remove(_ child: any ClosableResource) {
        children.withLock { list in list.removeAll { $0.child == nil || $0.child === child } }
    }

    /// Closes every live child, newest first, and keeps going after a failure so that one
    /// stuck child does not leak the rest; the first failure is rethrown. A child whose
    /// close failed stays registered, so that the parent's retried `close()` retries it.
    func closeAll() throws(RDMAError) {
        let live = children.withLock { list in list.compactMap(\.child) }
        var firstError: RDMAError?
        for child in live.reversed() {
            do throws(RDMAError) { try child.close() } catch { firstError = firstError ?? error }
        }
        children.withLock { list in list.removeAll { $0.child?.isClosed ?? true } }
        if let firstError { throw firstError }
    }
}
