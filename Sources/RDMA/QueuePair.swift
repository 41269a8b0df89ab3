import Congestion
import SoftRoCE

/// A queue pair: the send and receive queues of one RC, UC or UD endpoint.
///
/// Create it, move it RESET → INIT → RTR → RTS (or let `connect(to:options:)` do that),
/// post work requests, and poll its completion queues.
///
/// ```swift
/// let queuePair = try QueuePair(protectionDomain: pd, kind: .reliableConnected,
///                               sendCompletionQueue: cq, receiveCompletionQueue: cq)
/// let mine = try queuePair.localEndpoint(gidIndex: 1, psn: 0x1000)
/// // … exchange endpoints with the peer …
/// try queuePair.connect(to: theirs, options: ConnectionOptions(gidIndex: 1))
/// try queuePair.post(SendWorkRequest(id: 1, operation: .write(remote)), scatterGather: local)
/// ```
///
/// Posting is the one unsafe contract of this API: the memory a request names must stay
/// registered and must not be reused until the request's completion is polled.
/// Keeps its protection domain, completion queues and SRQ alive; `close()` is idempotent.
public final class QueuePair: ClosableResource, @unchecked Sendable {
    /// The backend's queue pair: a `let`, so that a call through it needs no retain;
    /// it outlives `close()`, and every use checks `isClosed` first.
    private let operations: any QueuePairOperations
    /// True after `close()` — set once the destroy call succeeded.
    /// Unchecked exclusivity: read on every post, written once by `close()`.
    @exclusivity(unchecked) public private(set) var isClosed = false
    public let protectionDomain: ProtectionDomain
    public let sendCompletionQueue: CompletionQueue
    public let receiveCompletionQueue: CompletionQueue
    public let sharedReceiveQueue: SharedReceiveQueue?
    public let kind: QueuePairKind
    /// What the device granted (may exceed what was asked for).
    public let capabilities: QueuePairCapabilities
    /// The 24-bit QP number peers address.
    public let number: UInt32
    /// The rdma_cm identifier that moves this QP through its states (it was created
    /// through it, `ConnectionIdentifier.createQueuePair`, or handed to it, `attach`); nil
    /// for a QP connected by hand. Held strongly: the QP keeps its identifier (and so its
    /// event channel) alive.
    public internal(set) var connectionIdentifier: ConnectionIdentifier?

    /// Creates a queue pair in the RESET state. With `sharedReceiveQueue`, receives come
    /// from the SRQ and `postReceive` on the QP is refused.
    /// The corresponding C function is `ibv_create_qp`.
    public init(protectionDomain: ProtectionDomain, kind: QueuePairKind,
                sendCompletionQueue: CompletionQueue, receiveCompletionQueue: CompletionQueue,
                capabilities: QueuePairCapabilities = QueuePairCapabilities(),
                sharedReceiveQueue: SharedReceiveQueue? = nil, signalAllSends: Bool = false) throws(RDMAError) {
        let created = try protectionDomain.operations("ibv_create_qp").createQueuePair(
            kind: kind, sendCompletionQueue: sendCompletionQueue, receiveCompletionQueue: receiveCompletionQueue,
            capabilities: capabilities, sharedReceiveQueue: sharedReceiveQueue, signalAllSends: signalAllSends)
        self.protectionDomain = protectionDomain
        self.sendCompletionQueue = sendCompletionQueue
        self.receiveCompletionQueue = receiveCompletionQueue
        self.sharedReceiveQueue = sharedReceiveQueue
        self.kind = kind
        self.capabilities = created.granted
        number = created.number
        operations = created.operations
        protectionDomain.children.add(self)
        sendCompletionQueue.children.add(self)
        if receiveCompletionQueue !== sendCompletionQueue { receiveCompletionQueue.children.add(self) }
        sharedReceiveQueue?.children.add(self)
    }

    /// The backend's queue pair, or a `.closed` error naming `operation`.
    @inline(__always)
    private func operations(_ operation: StaticString) throws(RDMAError) -> any QueuePairOperations {
        if isClosed { throw RDMAError.closed(operation, "QueuePair") }
        return operations
    }

    /// The backend's queue pair while open, for the connection manager of the same backend.
    var currentOperations: (any QueuePairOperations)? { isClosed ? nil : operations }

    /// The state the device reports now (it moves to ERROR by itself after a failed
    /// request). The corresponding C function is `ibv_query_qp`.
    public func state() throws(RDMAError) -> QueuePairState {
        try operations("ibv_query_qp").state()
    }

    /// Moves the QP to `attributes.targetState`, after checking that the transition
    /// exists and that exactly the attributes it needs and allows are set.
    /// The corresponding C function is `ibv_modify_qp`.
    public func modify(_ attributes: QueuePairAttributes) throws(RDMAError) {
        let operations = try operations("ibv_modify_qp")
        try QueuePairTransition.validate(kind: kind, from: try operations.state(), attributes: attributes)
        try operations.modify(attributes)
    }

    /// This QP's half of the connection exchange: its number, `psn`, and the port's GID at
    /// `gidIndex`, LID and active MTU.
    public func localEndpoint(port: UInt8 = 1, gidIndex: Int, psn: UInt32) throws(RDMAError) -> Endpoint {
        let context = protectionDomain.context
        let portAttributes = try context.portAttributes(port: port)
        guard let entry = try context.gidTable(port: port).first(where: { $0.index == gidIndex }) else {
            throw RDMAError(operation: "QueuePair.localEndpoint", kind: .invalidArgument,
                            hint: "port \(port) of \(context.device.name) has no GID at index \(gidIndex); valid: \((try? context.gidTable(port: port).map(\.index)) ?? [])")
        }
        return Endpoint(queuePairNumber: number, packetSequenceNumber: psn, gid: entry.gid,
                        lid: portAttributes.lid, mtu: portAttributes.activeMTU ?? .mtu1024)
    }

    /// Moves the QP from RESET (or INIT) to RTS, connected to `remote` (RC/UC); a UD QP
    /// just becomes ready (its peers are named per request). `local` is this QP's own
    /// endpoint as sent to the peer: its PSN becomes our send PSN and its MTU caps the path.
    public func connect(to remote: Endpoint, local: Endpoint, options: ConnectionOptions) throws(RDMAError) {
        if try state() == .reset {
            var initAttributes = QueuePairAttributes(targetState: .initialized)
            initAttributes.port = options.port
            initAttributes.pkeyIndex = options.pkeyIndex
            if kind == .unreliableDatagram { initAttributes.qkey = options.qkey } else { initAttributes.access = options.access }
            try modify(initAttributes)
        }
        var ready = QueuePairAttributes(targetState: .readyToReceive)
        if kind != .unreliableDatagram {
            ready.pathMTU = options.pathMTU ?? min(remote.mtu, local.mtu)
            ready.addressVector = AddressVector(destinationGID: remote.gid, sourceGIDIndex: options.gidIndex,
                                                port: options.port, destinationLID: remote.lid,
                                                serviceLevel: options.serviceLevel, hopLimit: options.hopLimit,
                                                trafficClass: options.trafficClass)
            ready.destinationQueuePairNumber = remote.queuePairNumber
            ready.receivePSN = remote.packetSequenceNumber
        }
        if kind == .reliableConnected {
            ready.maxDestinationReadAtomic = options.maxReadAtomic
            ready.minRNRTimer = options.minRNRTimer
        }
        try modify(ready)
        var send = QueuePairAttributes(targetState: .readyToSend)
        send.sendPSN = local.packetSequenceNumber
        if kind == .reliableConnected {
            send.timeout = options.timeout
            send.retryCount = options.retryCount
            send.rnrRetry = options.rnrRetry
            send.maxReadAtomic = options.maxReadAtomic
        }
        try modify(send)
    }

    /// Posts every request of `chain` in one call. On failure the error names the first
    /// request that was not posted; those before it were.
    /// The corresponding C function is `ibv_post_send`.
    @inline(__always)
    public func post(_ chain: SendRequestChain) throws(RDMAError) {
        if isClosed { throw RDMAError.closed("ibv_post_send", "QueuePair") }
        guard chain.count > 0 else { return }
        try operations.post(chain)
    }

    /// Posts one request with one scatter-gather element, without a chain. Allocates nothing.
    /// The corresponding C function is `ibv_post_send`.
    @inline(__always)
    public func post(_ request: SendWorkRequest, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        if isClosed { throw RDMAError.closed("ibv_post_send", "QueuePair") }
        try request.validate(totalLength: UInt64(element.length), operationName: "ibv_post_send")
        try operations.post(request, scatterGather: element)
    }

    /// Posts receives. The corresponding C function is `ibv_post_recv`.
    @inline(__always)
    public func postReceive(_ chain: ReceiveRequestChain) throws(RDMAError) {
        if isClosed { throw RDMAError.closed("ibv_post_recv", "QueuePair") }
        try refuseWithSharedReceiveQueue()
        guard chain.count > 0 else { return }
        try operations.postReceive(chain)
    }

    /// Posts one receive into one buffer. Allocates nothing.
    /// The corresponding C function is `ibv_post_recv`.
    @inline(__always)
    public func postReceive(id: UInt64, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        if isClosed { throw RDMAError.closed("ibv_post_recv", "QueuePair") }
        try refuseWithSharedReceiveQueue()
        try operations.postReceive(id: id, scatterGather: element)
    }

    private func refuseWithSharedReceiveQueue() throws(RDMAError) {
        if sharedReceiveQueue != nil {
            throw RDMAError(operation: "ibv_post_recv", kind: .invalidArgument,
                            hint: "this QP takes its receives from a SharedReceiveQueue: post them there")
        }
    }

    /// Paces this RC queue pair with a DCQCN reaction point using `parameters` (nil: unpaced),
    /// whatever its device's `SoftDeviceConfiguration.congestion` says. Soft engine only: on
    /// hardware the NIC's firmware does this per port (mlx5 `cc_params`), so verbs refuses.
    ///
    /// ```swift
    /// import Congestion
    /// try queuePair.setSoftReactionPoint(.mlx5Like)
    /// // context.softCounters?.queuePairRates shows its rate
    /// ```
    public func setSoftReactionPoint(_ parameters: DCQCNParameters?) throws(RDMAError) {
        guard let soft = try operations("set reaction point") as? SoftBackendQueuePair else {
            throw RDMAError(operation: "QueuePair.setSoftReactionPoint", kind: .unsupported,
                            hint: "per-QP DCQCN is a soft-engine setting; a NIC's is its firmware's (mlx5 cc_params)")
        }
        do throws(SoftRoCEError) { try soft.device.setReactionPoint(soft.queuePair, parameters: parameters) } catch { throw RDMAError(soft: error) }
    }

    /// Destroys the QP. Idempotent; after a failure the QP stays open and `close()` may be
    /// retried. Outstanding requests are discarded without completions.
    /// The corresponding C function is `ibv_destroy_qp`.
    public func close() throws(RDMAError) {
        if isClosed { return }
        try operations.destroy()
        isClosed = true
    }

    deinit {
        LeakCheck.objectDeinitialized("QueuePair", isOpen: !isClosed, detail: "\(kind) 0x\(String(number, radix: 16))")
        try? close()
    }
}
