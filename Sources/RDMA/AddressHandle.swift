import CIBVerbs

/// A resolved path to one remote port, used by unreliable-datagram sends.
///
/// ```swift
/// let handle = try AddressHandle(protectionDomain: pd,
///     addressVector: AddressVector(destinationGID: peer.gid, sourceGIDIndex: 1))
/// let destination = DatagramDestination(addressHandle: handle,
///     remoteQueuePairNumber: peer.queuePairNumber, remoteQKey: 0x11111111)
/// ```
/// Keeps its protection domain alive; `close()` is idempotent.
public final class AddressHandle: ClosableResource, @unchecked Sendable {
    private enum Handle {
        case verbs(UnsafeMutablePointer<ibv_ah>)
        case closed
    }

    private var handle: Handle
    public let protectionDomain: ProtectionDomain
    public let addressVector: AddressVector

    /// Creates the handle. The corresponding C function is `ibv_create_ah`.
    public init(protectionDomain: ProtectionDomain, addressVector: AddressVector) throws(RDMAError) {
        self.protectionDomain = protectionDomain
        self.addressVector = addressVector
        let domain = try protectionDomain.verbsDomain("ibv_create_ah")
        var attributes = addressVector.verbs
        handle = .verbs(try CReturn.nonNull("ibv_create_ah") { ibv_create_ah(domain, &attributes) }.get())
        protectionDomain.children.add(self)
    }

    /// The handle for a work request; a closed handle yields NULL, which the provider
    /// rejects at post time rather than dereferencing freed memory.
    var verbsHandleForPosting: UnsafeMutablePointer<ibv_ah>? {
        if case .verbs(let pointer) = handle { return pointer }
        return nil
    }

    /// Destroys the handle. Idempotent. The corresponding C function is `ibv_destroy_ah`.
    public func close() throws(RDMAError) {
        guard case .verbs(let pointer) = handle else { return }
        handle = .closed
        try CReturn.returnedErrno("ibv_destroy_ah") { ibv_destroy_ah(pointer) }.get()
    }

    deinit {
        try? close()
    }
}
