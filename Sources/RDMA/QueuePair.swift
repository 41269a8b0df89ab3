import CIBVerbs
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
    private enum Handle {
        case verbs(UnsafeMutablePointer<ibv_qp>)
        case soft(SoftQueuePair, SoftDevice)
        case closed
    }

    private var handle: Handle
    public let protectionDomain: ProtectionDomain
    public let sendCompletionQueue: CompletionQueue
    public let receiveCompletionQueue: CompletionQueue
    public let sharedReceiveQueue: SharedReceiveQueue?
    public let kind: QueuePairKind
    /// What the device granted (may exceed what was asked for).
    public let capabilities: QueuePairCapabilities
    /// The 24-bit QP number peers address.
    public let number: UInt32

    /// Creates a queue pair in the RESET state. With `sharedReceiveQueue`, receives come
    /// from the SRQ and `postReceive` on the QP is refused.
    /// The corresponding C function is `ibv_create_qp`.
    public init(protectionDomain: ProtectionDomain, kind: QueuePairKind,
                sendCompletionQueue: CompletionQueue, receiveCompletionQueue: CompletionQueue,
                capabilities: QueuePairCapabilities = QueuePairCapabilities(),
                sharedReceiveQueue: SharedReceiveQueue? = nil, signalAllSends: Bool = false) throws(RDMAError) {
        if let (domain, soft) = try protectionDomain.softDomain("ibv_create_qp") {
            guard let sendQueue = sendCompletionQueue.softHandle?.queue, let receiveQueue = receiveCompletionQueue.softHandle?.queue else {
                throw RDMAError(operation: "ibv_create_qp", kind: .closed, hint: "a completion queue was closed or is not on the soft device")
            }
            let type: SoftQueuePairType
            switch kind {
            case .reliableConnected: type = .reliableConnected
            case .unreliableDatagram: type = .unreliableDatagram
            default: throw RDMAError(operation: "ibv_create_qp", kind: .unsupported, hint: "the soft engine implements RC and UD queue pairs, not \(kind)")
            }
            if sharedReceiveQueue != nil && sharedReceiveQueue?.softQueue == nil {
                throw RDMAError(operation: "ibv_create_qp", kind: .closed, hint: "the SharedReceiveQueue was closed")
            }
            var granted = capabilities
            granted.maxInlineData = max(capabilities.maxInlineData, 256)
            let queuePair: SoftQueuePair
            do throws(SoftRoCEError) {
                queuePair = try soft.createQueuePair(domain: domain, type: type, sendQueue: sendQueue, receiveQueue: receiveQueue,
                                                     sharedReceiveQueue: sharedReceiveQueue?.softQueue, signalAll: signalAllSends,
                                                     sendCapacity: Int(capabilities.maxSendWorkRequests),
                                                     receiveCapacity: Int(capabilities.maxReceiveWorkRequests),
                                                     maxScatterGather: Int(max(capabilities.maxSendScatterGather, capabilities.maxReceiveScatterGather)),
                                                     maxInline: Int(granted.maxInlineData))
            } catch { throw RDMAError(soft: error) }
            self.protectionDomain = protectionDomain
            self.sendCompletionQueue = sendCompletionQueue
            self.receiveCompletionQueue = receiveCompletionQueue
            self.sharedReceiveQueue = sharedReceiveQueue
            self.kind = kind
            self.capabilities = granted
            number = queuePair.number
            handle = .soft(queuePair, soft)
            protectionDomain.children.add(self)
            sendCompletionQueue.children.add(self)
            if receiveCompletionQueue !== sendCompletionQueue { receiveCompletionQueue.children.add(self) }
            sharedReceiveQueue?.children.add(self)
            return
        }
        let domain = try protectionDomain.verbsDomain("ibv_create_qp")
        guard let sendQueue = sendCompletionQueue.verbsHandle, let receiveQueue = receiveCompletionQueue.verbsHandle else {
            throw RDMAError(operation: "ibv_create_qp", kind: .closed, hint: "a completion queue was closed")
        }
        var attributes = ibv_qp_init_attr()
        attributes.send_cq = sendQueue
        attributes.recv_cq = receiveQueue
        attributes.srq = try sharedReceiveQueue?.verbsQueue("ibv_create_qp")
        attributes.cap = capabilities.verbs
        attributes.qp_type = kind.verbs
        attributes.sq_sig_all = signalAllSends ? 1 : 0
        let queuePair = try CReturn.nonNull("ibv_create_qp") { ibv_create_qp(domain, &attributes) }.get()
        self.protectionDomain = protectionDomain
        self.sendCompletionQueue = sendCompletionQueue
        self.receiveCompletionQueue = receiveCompletionQueue
        self.sharedReceiveQueue = sharedReceiveQueue
        self.kind = kind
        self.capabilities = QueuePairCapabilities(attributes.cap)
        number = queuePair.pointee.qp_num
        handle = .verbs(queuePair)
        protectionDomain.children.add(self)
        sendCompletionQueue.children.add(self)
        if receiveCompletionQueue !== sendCompletionQueue { receiveCompletionQueue.children.add(self) }
        sharedReceiveQueue?.children.add(self)
    }

    @inline(__always)
    private func verbsQueuePair(_ operation: StaticString) throws(RDMAError) -> UnsafeMutablePointer<ibv_qp> {
        switch handle {
        case .verbs(let pointer): return pointer
        case .soft: throw RDMAError(operation: "\(operation)", kind: .unsupported, hint: "a soft queue pair has no verbs handle")
        case .closed: throw RDMAError(operation: "\(operation)", kind: .closed, hint: "the QueuePair was closed")
        }
    }

    /// The state the device reports now (it moves to ERROR by itself after a failed
    /// request). The corresponding C function is `ibv_query_qp`.
    public func state() throws(RDMAError) -> QueuePairState {
        if case .soft(let queuePair, let soft) = handle { return SoftTranslate.state(soft.state(of: queuePair)) }
        let queuePair = try verbsQueuePair("ibv_query_qp")
        var attributes = ibv_qp_attr()
        var initAttributes = ibv_qp_init_attr()
        try CReturn.returnedErrno("ibv_query_qp") {
            ibv_query_qp(queuePair, &attributes, Int32(IBV_QP_STATE.rawValue), &initAttributes)
        }.get()
        return QueuePairState(verbs: attributes.qp_state) ?? .error
    }

    /// Moves the QP to `attributes.targetState`, after checking that the transition
    /// exists and that exactly the attributes it needs and allows are set.
    /// The corresponding C function is `ibv_modify_qp`.
    public func modify(_ attributes: QueuePairAttributes) throws(RDMAError) {
        if case .closed = handle { _ = try verbsQueuePair("ibv_modify_qp") }
        try QueuePairTransition.validate(kind: kind, from: try state(), attributes: attributes)
        if case .soft(let queuePair, let soft) = handle {
            do throws(SoftRoCEError) { try soft.modify(queuePair, SoftTranslate.attributes(attributes)) } catch { throw RDMAError(soft: error) }
            return
        }
        let queuePair = try verbsQueuePair("ibv_modify_qp")
        var (raw, mask) = attributes.verbs
        try CReturn.returnedErrno("ibv_modify_qp") { ibv_modify_qp(queuePair, &raw, mask) }.get()
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
        guard chain.count > 0 else { return }
        if case .soft(let queuePair, let soft) = handle {
            var index = 0
            var request: UnsafeMutablePointer<ibv_send_wr>? = chain.requests
            while let current = request {
                let code = SoftPost.send(current, queuePair, soft)
                if code != 0 { throw postFailure("ibv_post_send", code, index, of: chain.count) }
                index += 1
                request = current.pointee.next
            }
            return
        }
        let queuePair = try verbsQueuePair("ibv_post_send")
        var bad: UnsafeMutablePointer<ibv_send_wr>?
        let code = ibv_post_send(queuePair, chain.requests, &bad)
        if code != 0 { throw postFailure("ibv_post_send", code, chain.index(of: bad), of: chain.count) }
    }

    /// Posts one request with one scatter-gather element, without a chain. Allocates nothing.
    /// The corresponding C function is `ibv_post_send`.
    @inline(__always)
    public func post(_ request: SendWorkRequest, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        if case .soft(let queuePair, let soft) = handle {
            var sge = element.verbs
            try withUnsafeMutablePointer(to: &sge) { sgePointer throws(RDMAError) in
                var wr = ibv_send_wr()
                wr.sg_list = sgePointer
                wr.num_sge = 1
                try request.fill(&wr, totalLength: UInt64(element.length), operationName: "ibv_post_send")
                let code = withExtendedLifetime(request) { SoftPost.send(&wr, queuePair, soft) }
                if code != 0 { throw postFailure("ibv_post_send", code, 0, of: 1) }
            }
            return
        }
        let queuePair = try verbsQueuePair("ibv_post_send")
        var sge = element.verbs
        try withUnsafeMutablePointer(to: &sge) { sgePointer throws(RDMAError) in
            var wr = ibv_send_wr()
            wr.sg_list = sgePointer
            wr.num_sge = 1
            try request.fill(&wr, totalLength: UInt64(element.length), operationName: "ibv_post_send")
            var bad: UnsafeMutablePointer<ibv_send_wr>?
            let code = ibv_post_send(queuePair, &wr, &bad)
            if code != 0 { throw postFailure("ibv_post_send", code, 0, of: 1) }
        }
    }

    /// Posts receives. The corresponding C function is `ibv_post_recv`.
    @inline(__always)
    public func postReceive(_ chain: ReceiveRequestChain) throws(RDMAError) {
        guard chain.count > 0 else { return }
        if case .soft(let queuePair, let soft) = handle {
            try refuseWithSharedReceiveQueue()
            var request: UnsafeMutablePointer<ibv_recv_wr>? = chain.requests
            while let current = request {
                try SoftPost.receive(current) { id, sges throws(SoftRoCEError) in try soft.postReceive(queuePair, id: id, sges) }
                request = current.pointee.next
            }
            return
        }
        let queuePair = try verbsQueuePair("ibv_post_recv")
        try refuseWithSharedReceiveQueue()
        var bad: UnsafeMutablePointer<ibv_recv_wr>?
        let code = ibv_post_recv(queuePair, chain.requests, &bad)
        if code != 0 { throw postFailure("ibv_post_recv", code, chain.index(of: bad), of: chain.count) }
    }

    /// Posts one receive into one buffer. Allocates nothing.
    /// The corresponding C function is `ibv_post_recv`.
    @inline(__always)
    public func postReceive(id: UInt64, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        if case .soft(let queuePair, let soft) = handle {
            try refuseWithSharedReceiveQueue()
            var sge = SoftScatterGather(address: element.address, length: element.length, lkey: element.lkey)
            do throws(SoftRoCEError) {
                try withUnsafePointer(to: &sge) { pointer throws(SoftRoCEError) in try soft.postReceive(queuePair, id: id, UnsafeBufferPointer(start: pointer, count: 1)) }
            } catch { throw RDMAError(soft: error) }
            return
        }
        let queuePair = try verbsQueuePair("ibv_post_recv")
        try refuseWithSharedReceiveQueue()
        var sge = element.verbs
        let code = withUnsafeMutablePointer(to: &sge) { sgePointer in
            var wr = ibv_recv_wr(wr_id: id, next: nil, sg_list: sgePointer, num_sge: 1)
            var bad: UnsafeMutablePointer<ibv_recv_wr>?
            return ibv_post_recv(queuePair, &wr, &bad)
        }
        if code != 0 { throw postFailure("ibv_post_recv", code, 0, of: 1) }
    }

    private func refuseWithSharedReceiveQueue() throws(RDMAError) {
        if sharedReceiveQueue != nil {
            throw RDMAError(operation: "ibv_post_recv", kind: .invalidArgument,
                            hint: "this QP takes its receives from a SharedReceiveQueue: post them there")
        }
    }

    private func postFailure(_ operation: StaticString, _ code: Int32, _ index: Int?, of count: Int) -> RDMAError {
        var error = CReturn.failure(operation, code)
        let which = index.map { "request \($0) of \(count) (and those after it) was not posted" } ?? "no request was posted"
        let cause: String
        switch code {
        case ENOMEM: cause = "the queue is full: poll completions before posting more, or create the QP with deeper queues"
        case EINVAL: cause = "a request is invalid for this QP: its state (must be RTS to send, INIT or later to receive), too many scatter-gather elements, inline data too long, or an opcode the QP type does not allow"
        default: cause = error.hint ?? "see the errno"
        }
        error.hint = "\(which): \(cause)"
        return error
    }

    /// True after `close()`.
    public var isClosed: Bool {
        if case .closed = handle { return true }
        return false
    }

    /// Destroys the QP. Idempotent. Outstanding requests are discarded without completions.
    /// The corresponding C function is `ibv_destroy_qp`.
    public func close() throws(RDMAError) {
        if case .soft(let queuePair, let soft) = handle {
            handle = .closed
            soft.destroyQueuePair(queuePair)
            return
        }
        guard case .verbs(let pointer) = handle else { return }
        handle = .closed
        try CReturn.returnedErrno("ibv_destroy_qp") { ibv_destroy_qp(pointer) }.get()
    }

    deinit {
        try? close()
    }
}
