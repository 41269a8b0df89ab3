import CIBVerbs
import SoftRoCE

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
        case soft(SoftAddress)
        case closed
    }

    private var handle: Handle
    public let protectionDomain: ProtectionDomain
    public let addressVector: AddressVector

    /// Creates the handle. The corresponding C function is `ibv_create_ah`.
    public init(protectionDomain: ProtectionDomain, addressVector: AddressVector) throws(RDMAError) {
        self.protectionDomain = protectionDomain
        self.addressVector = addressVector
        if try protectionDomain.softDomain("ibv_create_ah") != nil {
            handle = .soft(SoftTranslate.address(of: addressVector.destinationGID))
            protectionDomain.children.add(self)
            return
        }
        let domain = try protectionDomain.verbsDomain("ibv_create_ah")
        var attributes = addressVector.verbs
        handle = .verbs(try CReturn.nonNull("ibv_create_ah") { ibv_create_ah(domain, &attributes) }.get())
        protectionDomain.children.add(self)
    }

    /// The handle for a work request; a closed handle yields NULL, which the provider
    /// rejects at post time rather than dereferencing freed memory.
    /// What goes into `ibv_send_wr.wr.ud.ah`: the verbs handle, or — on a soft device —
    /// this object itself (unretained; the soft post path reads it back, see SoftTranslate).
    var verbsHandleForPosting: UnsafeMutablePointer<ibv_ah>? {
        switch handle {
        case .verbs(let pointer): return pointer
        case .soft: return UnsafeMutableRawPointer(Unmanaged.passUnretained(self).toOpaque()).assumingMemoryBound(to: ibv_ah.self)
        case .closed: return nil
        }
    }

    /// The peer address of a soft handle.
    var softDestination: SoftAddress? {
        if case .soft(let address) = handle { return address }
        return nil
    }

    /// Destroys the handle. Idempotent. The corresponding C function is `ibv_destroy_ah`.
    public func close() throws(RDMAError) {
        if case .soft = handle { handle = .closed; return }
        guard case .verbs(let pointer) = handle else { return }
        handle = .closed
        try CReturn.returnedErrno("ibv_destroy_ah") { ibv_destroy_ah(pointer) }.get()
    }

    deinit {
        try? close()
    }
}
