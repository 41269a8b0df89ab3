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
    /// The backend's handle: a `let`, so that a call through it needs no retain;
    /// it outlives `close()`, and every use checks `isClosed` first.
    private let operations: any AddressHandleOperations
    /// True after `close()` — set once the destroy call succeeded.
    public private(set) var isClosed = false
    public let protectionDomain: ProtectionDomain
    public let addressVector: AddressVector

    /// Creates the handle. The corresponding C function is `ibv_create_ah`.
    public init(protectionDomain: ProtectionDomain, addressVector: AddressVector) throws(RDMAError) {
        self.protectionDomain = protectionDomain
        self.addressVector = addressVector
        operations = try protectionDomain.operations("ibv_create_ah").createAddressHandle(addressVector)
        protectionDomain.children.add(self)
    }

    /// The backend's handle for a UD send, nil once closed: the QP of the same backend
    /// reads what it needs from its own class (VerbsBackend/SoftBackend), and refuses a
    /// request whose handle is closed or of another backend.
    var currentOperations: (any AddressHandleOperations)? { isClosed ? nil : operations }

    /// Destroys the handle. Idempotent; after a failure the handle stays open and
    /// `close()` may be retried. The corresponding C function is `ibv_destroy_ah`.
    public func close() throws(RDMAError) {
        if isClosed { return }
        try operations.destroy()
        isClosed = true
    }

    deinit {
        LeakCheck.objectDeinitialized("AddressHandle", isOpen: !isClosed, detail: "to \(addressVector.destinationGID)")
        try? close()
    }
}
