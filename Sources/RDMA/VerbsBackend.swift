#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CIBVerbs
import CEpoll
import Synchronization

// The verbs backend's table (see Backend.swift): a pass-through to libibverbs. Each class
// owns one C object; every C return goes through CReturnConventions.swift.

final class VerbsDevice: DeviceOperations, @unchecked Sendable {
    let context: UnsafeMutablePointer<ibv_context>

    /// `ibv_open_device`
    init(opening device: UnsafeMutablePointer<ibv_device>) throws(RDMAError) {
        context = try CReturn.nonNull("ibv_open_device") { ibv_open_device(device) }.get()
    }

    var kind: BackendKind { .verbs }

    func deviceAttributes() throws(RDMAError) -> DeviceAttributes {
        var raw = ibv_device_attr()
        try CReturn.returnedErrno("ibv_query_device") { ibv_query_device(context, &raw) }.get()
        return DeviceAttributes(raw)
    }

    func portAttributes(port: UInt8) throws(RDMAError) -> PortAttributes {
        var raw = ibv_port_attr()
        try CReturn.returnedErrno("ibv_query_port") { cibv_query_port(context, port, &raw) }.get()
        return PortAttributes(raw)
    }

    func gidTable() throws(RDMAError) -> [GIDEntry] {
        var capacity = 0
        let ports = try deviceAttributes().physicalPortCount
        for port in 1...max(ports, 1) {
            capacity += try portAttributes(port: UInt8(port)).gidTableLength
        }
        var raw = [ibv_gid_entry](repeating: ibv_gid_entry(), count: max(capacity, 1))
        let count = try CReturn.count("ibv_query_gid_table") {
            raw.withUnsafeMutableBufferPointer { buffer in
                ibv_query_gid_table(context, buffer.baseAddress, buffer.count, 0)
            }
        }.get()
        return raw.prefix(count).map { entry in
            GIDEntry(gid: withUnsafeBytes(of: entry.gid.raw) { GID(byteArray: $0)! },
                     index: Int(entry.gid_index), port: UInt8(truncatingIfNeeded: entry.port_num),
                     type: GIDType(verbs: entry.gid_type), networkInterfaceIndex: entry.ndev_ifindex)
        }
    }

    func allocateProtectionDomain() throws(RDMAError) -> any ProtectionDomainOperations {
        VerbsProtectionDomain(pointer: try CReturn.nonNull("ibv_alloc_pd") { ibv_alloc_pd(context) }.get())
    }

    func createCompletionChannel() throws(RDMAError) -> any CompletionChannelOperations {
        VerbsCompletionChannel(pointer: try CReturn.nonNull("ibv_create_comp_channel") { ibv_create_comp_channel(context) }.get())
    }

    func createCompletionQueue(minimumEntries: Int, channel: CompletionChannel?,
                               completionVector: Int32) throws(RDMAError) -> any CompletionQueueOperations {
        var verbsChannel: UnsafeMutablePointer<ibv_comp_channel>?
        if let channel {
            guard let verbs = try channel.operations("ibv_create_cq") as? VerbsCompletionChannel else {
                throw RDMAError(operation: "ibv_create_cq", kind: .invalidArgument, hint: "the CompletionChannel belongs to another backend")
            }
            verbsChannel = verbs.pointer
        }
        // The owner is not fully initialised yet: cq_context is set by setOwner right after.
        let queue = try CReturn.nonNull("ibv_create_cq") {
            ibv_create_cq(context, Int32(minimumEntries), nil, verbsChannel, completionVector)
        }.get()
        return VerbsCompletionQueue(pointer: queue)
    }

    func close() throws(RDMAError) {
        _ = try CReturn.minusOneErrno("ibv_close_device") { ibv_close_device(context) }.get()
    }
}

final class VerbsProtectionDomain: ProtectionDomainOperations, @unchecked Sendable {
    let pointer: UnsafeMutablePointer<ibv_pd>
    init(pointer: UnsafeMutablePointer<ibv_pd>) { self.pointer = pointer }

    func registerMemory(_ bytes: UnsafeMutableRawBufferPointer, access: AccessFlags) throws(RDMAError) -> any MemoryRegionOperations {
        VerbsMemoryRegion(pointer: try CReturn.nonNull("ibv_reg_mr") {
            cibv_reg_mr(pointer, bytes.baseAddress, bytes.count, access.rawValue)
        }.get())
    }

    func createQueuePair(kind: QueuePairKind, sendCompletionQueue: CompletionQueue, receiveCompletionQueue: CompletionQueue,
                         capabilities: QueuePairCapabilities, sharedReceiveQueue: SharedReceiveQueue?,
                         signalAllSends: Bool) throws(RDMAError) -> (operations: any QueuePairOperations, number: UInt32, granted: QueuePairCapabilities) {
        var attributes = ibv_qp_init_attr()
        attributes.send_cq = try Self.queue(sendCompletionQueue)
        attributes.recv_cq = try Self.queue(receiveCompletionQueue)
        if let sharedReceiveQueue {
            guard let srq = try sharedReceiveQueue.operations("ibv_create_qp") as? VerbsSharedReceiveQueue else {
                throw RDMAError(operation: "ibv_create_qp", kind: .invalidArgument, hint: "the SharedReceiveQueue belongs to another backend")
            }
            attributes.srq = srq.pointer
        }
        attributes.cap = capabilities.verbs
        attributes.qp_type = kind.verbs
        attributes.sq_sig_all = signalAllSends ? 1 : 0
        let queuePair = try CReturn.nonNull("ibv_create_qp") { ibv_create_qp(pointer, &attributes) }.get()
        return (VerbsQueuePair(pointer: queuePair), queuePair.pointee.qp_num, QueuePairCapabilities(attributes.cap))
    }

    private static func queue(_ queue: CompletionQueue) throws(RDMAError) -> UnsafeMutablePointer<ibv_cq> {
        guard let verbs = try queue.operations("ibv_create_qp") as? VerbsCompletionQueue else {
            throw RDMAError(operation: "ibv_create_qp", kind: .invalidArgument, hint: "a CompletionQueue belongs to another backend")
        }
        return verbs.pointer
    }

    func createAddressHandle(_ addressVector: AddressVector) throws(RDMAError) -> any AddressHandleOperations {
        var attributes = addressVector.verbs
        return VerbsAddressHandle(pointer: try CReturn.nonNull("ibv_create_ah") { ibv_create_ah(pointer, &attributes) }.get())
    }

    func createSharedReceiveQueue(maxWorkRequests: UInt32, maxScatterGather: UInt32) throws(RDMAError)
        -> (operations: any SharedReceiveQueueOperations, maxWorkRequests: UInt32, maxScatterGather: UInt32) {
        var attributes = ibv_srq_init_attr()
        attributes.attr.max_wr = maxWorkRequests
        attributes.attr.max_sge = maxScatterGather
        let queue = try CReturn.nonNull("ibv_create_srq") { ibv_create_srq(pointer, &attributes) }.get()
        return (VerbsSharedReceiveQueue(pointer: queue), attributes.attr.max_wr, attributes.attr.max_sge)
    }

    func deallocate() throws(RDMAError) {
        try CReturn.returnedErrno("ibv_dealloc_pd") { ibv_dealloc_pd(pointer) }.get()
    }
}

final class VerbsMemoryRegion: MemoryRegionOperations, @unchecked Sendable {
    let pointer: UnsafeMutablePointer<ibv_mr>
    init(pointer: UnsafeMutablePointer<ibv_mr>) { self.pointer = pointer }
    var lkey: UInt32 { pointer.pointee.lkey }
    var rkey: UInt32 { pointer.pointee.rkey }

    func deregister() throws(RDMAError) {
        try CReturn.returnedErrno("ibv_dereg_mr") { ibv_dereg_mr(pointer) }.get()
    }
}

final class VerbsCompletionChannel: CompletionChannelOperations, @unchecked Sendable {
    let pointer: UnsafeMutablePointer<ibv_comp_channel>
    /// `eventfd(2)` polled beside the channel's descriptor: `wake()` writes it (-1 when the
    /// kernel refused one: a wait then ends only by event or timeout).
    private let wakeDescriptor: Int32
    /// Orders `wake()`'s write against `destroy()`'s close of `wakeDescriptor`: a wake from
    /// another thread must never write into a descriptor number freed for reuse.
    private let wakeLock = Mutex<Bool>(false)   // true once closed

    init(pointer: UnsafeMutablePointer<ibv_comp_channel>) {
        self.pointer = pointer
        wakeDescriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
    }

    var fileDescriptor: Int32 { pointer.pointee.fd }

    func waitForEvent(timeoutMilliseconds: Int32) throws(RDMAError) -> CompletionQueue? {
        var descriptors = (pollfd(fd: pointer.pointee.fd, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: wakeDescriptor, events: Int16(POLLIN), revents: 0))
        while true {
            let ready = try CReturn.minusOneErrno("poll(completion channel)") {
                withUnsafeMutableBytes(of: &descriptors) {
                    poll($0.baseAddress!.assumingMemoryBound(to: pollfd.self), wakeDescriptor >= 0 ? 2 : 1, timeoutMilliseconds)
                }
            }.flatMapError { error in error.errno == EINTR ? .success(-1) : .failure(error) }.get()
            if ready == 0 { return nil }
            if descriptors.1.revents != 0 {
                var count: UInt64 = 0
                _ = read(wakeDescriptor, &count, 8)
                return nil
            }
            if ready > 0 { break }
        }
        var queue: UnsafeMutablePointer<ibv_cq>?
        var queueContext: UnsafeMutableRawPointer?
        _ = try CReturn.minusOneErrno("ibv_get_cq_event") { ibv_get_cq_event(pointer, &queue, &queueContext) }.get()
        guard let queueContext else { return nil }
        // cq_context holds an unretained reference set at creation; the queue is alive
        // because it is registered with (and closed before) this channel.
        return Unmanaged<CompletionQueue>.fromOpaque(queueContext).takeUnretainedValue()
    }

    func wake() {
        guard wakeDescriptor >= 0 else { return }
        wakeLock.withLock { closed in
            guard !closed else { return }
            var one: UInt64 = 1
            _ = write(wakeDescriptor, &one, 8)
        }
    }

    func destroy() throws(RDMAError) {
        try CReturn.returnedErrno("ibv_destroy_comp_channel") { ibv_destroy_comp_channel(pointer) }.get()
        wakeLock.withLock { closed in
            guard !closed, wakeDescriptor >= 0 else { return }
            closed = true
            _ = Glibc.close(wakeDescriptor)
        }
    }
}

final class VerbsCompletionQueue: CompletionQueueOperations, @unchecked Sendable {
    let pointer: UnsafeMutablePointer<ibv_cq>
    init(pointer: UnsafeMutablePointer<ibv_cq>) { self.pointer = pointer }
    var capacity: Int { Int(pointer.pointee.cqe) }
    func setOwner(_ owner: Unmanaged<CompletionQueue>) { pointer.pointee.cq_context = owner.toOpaque() }

    @inline(__always)
    func poll(into buffer: UnsafeMutableBufferPointer<WorkCompletion>) throws(RDMAError) -> Int {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return 0 }
        let limit = Int32(clamping: buffer.count)
        return try CReturn.count("ibv_poll_cq") {
            // WorkCompletion is a frozen single-field wrapper of ibv_wc: same size, stride
            // and alignment, so the buffer is reinterpreted rather than copied.
            UnsafeMutableRawPointer(base).withMemoryRebound(to: ibv_wc.self, capacity: buffer.count) { raw in
                Int(ibv_poll_cq(pointer, limit, raw))
            }
        }.get()
    }

    func requestNotification(solicitedOnly: Bool) throws(RDMAError) {
        try CReturn.returnedErrno("ibv_req_notify_cq") { ibv_req_notify_cq(pointer, solicitedOnly ? 1 : 0) }.get()
    }

    func acknowledgeEvents(_ count: UInt32) {
        if count > 0 { ibv_ack_cq_events(pointer, count) }
    }

    func destroy() throws(RDMAError) {
        try CReturn.returnedErrno("ibv_destroy_cq") { ibv_destroy_cq(pointer) }.get()
    }
}

final class VerbsQueuePair: QueuePairOperations, @unchecked Sendable {
    let pointer: UnsafeMutablePointer<ibv_qp>
    init(pointer: UnsafeMutablePointer<ibv_qp>) { self.pointer = pointer }

    func state() throws(RDMAError) -> QueuePairState {
        var attributes = ibv_qp_attr()
        var initAttributes = ibv_qp_init_attr()
        try CReturn.returnedErrno("ibv_query_qp") {
            ibv_query_qp(pointer, &attributes, Int32(IBV_QP_STATE.rawValue), &initAttributes)
        }.get()
        return QueuePairState(verbs: attributes.qp_state) ?? .error
    }

    func modify(_ attributes: QueuePairAttributes) throws(RDMAError) {
        var (raw, mask) = attributes.verbs
        try CReturn.returnedErrno("ibv_modify_qp") { ibv_modify_qp(pointer, &raw, mask) }.get()
    }

    @inline(__always)
    func post(_ chain: SendRequestChain) throws(RDMAError) {
        var bad: UnsafeMutablePointer<ibv_send_wr>?
        let code = ibv_post_send(pointer, chain.requests, &bad)
        if code != 0 { throw RDMAError.postFailure("ibv_post_send", code, chain.index(of: bad), of: chain.count) }
    }

    @inline(__always)
    func post(_ request: SendWorkRequest, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        var sge = element.verbs
        let code = withUnsafeMutablePointer(to: &sge) { sgePointer in
            var wr = ibv_send_wr()
            wr.sg_list = sgePointer
            wr.num_sge = 1
            request.fill(&wr)
            var bad: UnsafeMutablePointer<ibv_send_wr>?
            return withExtendedLifetime(request) { ibv_post_send(pointer, &wr, &bad) }
        }
        if code != 0 { throw RDMAError.postFailure("ibv_post_send", code, 0, of: 1) }
    }

    @inline(__always)
    func postReceive(_ chain: ReceiveRequestChain) throws(RDMAError) {
        var bad: UnsafeMutablePointer<ibv_recv_wr>?
        let code = ibv_post_recv(pointer, chain.requests, &bad)
        if code != 0 { throw RDMAError.postFailure("ibv_post_recv", code, chain.index(of: bad), of: chain.count) }
    }

    @inline(__always)
    func postReceive(id: UInt64, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        let code = withOneReceive(id: id, element) { wr, bad in ibv_post_recv(pointer, wr, bad) }
        if code != 0 { throw RDMAError.postFailure("ibv_post_recv", code, 0, of: 1) }
    }

    func destroy() throws(RDMAError) {
        try CReturn.returnedErrno("ibv_destroy_qp") { ibv_destroy_qp(pointer) }.get()
    }
}

final class VerbsAddressHandle: AddressHandleOperations, @unchecked Sendable {
    let pointer: UnsafeMutablePointer<ibv_ah>
    init(pointer: UnsafeMutablePointer<ibv_ah>) { self.pointer = pointer }

    func destroy() throws(RDMAError) {
        try CReturn.returnedErrno("ibv_destroy_ah") { ibv_destroy_ah(pointer) }.get()
    }
}

final class VerbsSharedReceiveQueue: SharedReceiveQueueOperations, @unchecked Sendable {
    let pointer: UnsafeMutablePointer<ibv_srq>
    init(pointer: UnsafeMutablePointer<ibv_srq>) { self.pointer = pointer }

    func postReceive(_ chain: ReceiveRequestChain) throws(RDMAError) {
        var bad: UnsafeMutablePointer<ibv_recv_wr>?
        let code = ibv_post_srq_recv(pointer, chain.requests, &bad)
        if code != 0 { throw RDMAError.postFailure("ibv_post_srq_recv", code, chain.index(of: bad), of: chain.count) }
    }

    func postReceive(id: UInt64, scatterGather element: ScatterGatherElement) throws(RDMAError) {
        let code = withOneReceive(id: id, element) { wr, bad in ibv_post_srq_recv(pointer, wr, bad) }
        if code != 0 { throw RDMAError.postFailure("ibv_post_srq_recv", code, 0, of: 1) }
    }

    func destroy() throws(RDMAError) {
        try CReturn.returnedErrno("ibv_destroy_srq") { ibv_destroy_srq(pointer) }.get()
    }
}

/// One receive as an `ibv_recv_wr` on the stack, handed to `post` (`ibv_post_recv` or
/// `ibv_post_srq_recv`) with its `bad_wr` slot; returns what `post` returned.
@inline(__always)
private func withOneReceive(id: UInt64, _ element: ScatterGatherElement,
                            _ post: (UnsafeMutablePointer<ibv_recv_wr>, UnsafeMutablePointer<UnsafeMutablePointer<ibv_recv_wr>?>) -> Int32) -> Int32 {
    var sge = element.verbs
    return withUnsafeMutablePointer(to: &sge) { sgePointer in
        var wr = ibv_recv_wr(wr_id: id, next: nil, sg_list: sgePointer, num_sge: 1)
        var bad: UnsafeMutablePointer<ibv_recv_wr>?
        return post(&wr, &bad)
    }
}
