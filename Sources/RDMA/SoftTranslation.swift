import CIBVerbs
import SoftRoCE

// The soft backend's translations between the public value types (and the verbs C
// structs the completions and attributes mirror) and SoftRoCE's, kept apart from the
// table in SoftBackend.swift. Nothing here allocates on the data path.

/// Translations between the public value types and SoftRoCE's.
enum SoftTranslate {
    @inline(__always)
    static func completion(_ soft: SoftCompletion, into wc: inout ibv_wc) {
        wc = ibv_wc()
        wc.wr_id = soft.id
        wc.status = ibv_wc_status(rawValue: soft.status.rawValue)
        wc.opcode = ibv_wc_opcode(rawValue: soft.opcode.rawValue)
        wc.byte_len = soft.byteLength
        wc.qp_num = soft.queuePairNumber
        wc.src_qp = soft.sourceQueuePairNumber
        var flags: UInt32 = 0
        if soft.hasImmediate {
            flags |= IBV_WC_WITH_IMM.rawValue
            wc.imm_data = soft.immediate.bigEndian
        }
        if soft.hasGlobalRouteHeader { flags |= IBV_WC_GRH.rawValue }
        wc.wc_flags = flags
    }

    /// The engine's request for `request`, without its UD destination. Immediate data
    /// stays in host order: the engine byte-swaps it onto the wire.
    @inline(__always)
    static func request(_ request: SendWorkRequest) -> SoftSendRequest {
        var soft = SoftSendRequest(id: request.id, signaled: request.flags.contains(.signaled),
                                   inline: request.flags.contains(.inline), solicited: request.flags.contains(.solicited))
        switch request.operation {
        case .send:
            soft.opcode = .send
        case .sendWithImmediate(let immediate):
            soft.opcode = .sendWithImmediate
            soft.immediate = immediate
        case .write(let remote):
            soft.opcode = .write
            (soft.remoteAddress, soft.remoteKey) = (remote.address, remote.rkey)
        case .writeWithImmediate(let remote, let immediate):
            soft.opcode = .writeWithImmediate
            (soft.remoteAddress, soft.remoteKey) = (remote.address, remote.rkey)
            soft.immediate = immediate
        case .read(let remote):
            soft.opcode = .read
            (soft.remoteAddress, soft.remoteKey) = (remote.address, remote.rkey)
        case .compareAndSwap(let remote, let compare, let swap):
            soft.opcode = .compareAndSwap
            (soft.remoteAddress, soft.remoteKey) = (remote.address, remote.rkey)
            (soft.compareAdd, soft.swap) = (compare, swap)
        case .fetchAndAdd(let remote, let add):
            soft.opcode = .fetchAndAdd
            (soft.remoteAddress, soft.remoteKey) = (remote.address, remote.rkey)
            soft.compareAdd = add
        }
        return soft
    }

    /// Hands each receive of `chain` to `post` (a QP's or an SRQ's engine call); a failure
    /// names the first receive not posted, as verbs' `bad_wr` does.
    @inline(__always)
    static func postReceives(_ chain: ReceiveRequestChain, _ operation: StaticString,
                             _ post: (UInt64, UnsafeBufferPointer<SoftScatterGather>) throws(SoftRoCEError) -> Void) throws(RDMAError) {
        for index in 0..<chain.count {
            let code = try chain.withRequest(at: index) { id, elements in receive(id, elements, post) }
            if code != 0 { throw RDMAError.postFailure(operation, code, index, of: chain.count) }
        }
    }

    /// Hands one receive into `element` to `post`.
    @inline(__always)
    static func postReceive(id: UInt64, _ element: ScatterGatherElement, _ operation: StaticString,
                            _ post: (UInt64, UnsafeBufferPointer<SoftScatterGather>) throws(SoftRoCEError) -> Void) throws(RDMAError) {
        let code = withUnsafePointer(to: element) { pointer in receive(id, UnsafeBufferPointer(start: pointer, count: 1), post) }
        if code != 0 { throw RDMAError.postFailure(operation, code, 0, of: 1) }
    }

    /// The engine's errno for one receive, 0 when posted.
    @inline(__always)
    private static func receive(_ id: UInt64, _ elements: UnsafeBufferPointer<ScatterGatherElement>,
                                _ post: (UInt64, UnsafeBufferPointer<SoftScatterGather>) throws(SoftRoCEError) -> Void) -> Int32 {
        do throws(SoftRoCEError) {
            try withElements(elements) { sges throws(SoftRoCEError) in try post(id, sges) }
            return 0
        } catch {
            return error.errno
        }
    }

    /// The engine's scatter-gather list for `elements`, in stack scratch.
    @inline(__always)
    static func withElements<R>(_ elements: UnsafeBufferPointer<ScatterGatherElement>,
                                _ body: (UnsafeBufferPointer<SoftScatterGather>) throws(SoftRoCEError) -> R) throws(SoftRoCEError) -> R {
        try withUnsafeTemporaryAllocation(of: SoftScatterGather.self, capacity: max(elements.count, 1)) { scratch throws(SoftRoCEError) -> R in
            for index in 0..<elements.count {
                let element = elements[index]
                scratch[index] = SoftScatterGather(address: element.address, length: element.length, lkey: element.lkey)
            }
            return try body(UnsafeBufferPointer(rebasing: scratch[0..<elements.count]))
        }
    }

    static func address(of gid: GID) -> SoftAddress { SoftAddress(gid: gid.byteArray) }

    static func deviceAttributes(_ device: SoftDevice) -> DeviceAttributes {
        var raw = ibv_device_attr()
        withUnsafeMutableBytes(of: &raw.fw_ver) { bytes in
            for (index, byte) in "soft-roce 1".utf8.enumerated() where index < bytes.count - 1 { bytes[index] = byte }
        }
        raw.node_guid = guid(device).bigEndian
        raw.max_mr_size = UInt64(Int.max)
        raw.max_qp = 0xFF_FFEE
        raw.max_qp_wr = 16384
        raw.max_sge = 32
        raw.max_cq = 1 << 20
        raw.max_cqe = 1 << 20
        raw.max_mr = 1 << 20
        raw.max_pd = 1 << 20
        raw.max_qp_rd_atom = 64
        raw.max_qp_init_rd_atom = 64
        raw.max_srq = 1 << 20
        raw.max_srq_wr = 16384
        raw.max_ah = 1 << 20
        raw.atomic_cap = IBV_ATOMIC_HCA
        raw.phys_port_cnt = 1
        return DeviceAttributes(raw)
    }

    static func guid(_ device: SoftDevice) -> UInt64 {
        let gid = device.gid
        var value: UInt64 = 0x02_5E_00_00_0000_0000   // locally administered, "soft"
        for byte in gid.suffix(4) { value = value << 8 | UInt64(byte) }
        return value ^ UInt64(device.port) << 32
    }

    static func portAttributes(_ device: SoftDevice) -> PortAttributes {
        var raw = ibv_port_attr()
        raw.state = IBV_PORT_ACTIVE
        raw.max_mtu = IBV_MTU_4096
        raw.active_mtu = IBV_MTU_4096
        raw.gid_tbl_len = 1
        raw.max_msg_sz = 1 << 31
        raw.lid = 0
        raw.link_layer = UInt8(IBV_LINK_LAYER_ETHERNET)
        return PortAttributes(raw)
    }

    static func gidTable(_ device: SoftDevice) -> [GIDEntry] {
        [GIDEntry(gid: GID(byteArray: device.gid)!, index: 0, port: 1, type: .roceV2, networkInterfaceIndex: 0)]
    }

    static func attributes(_ attributes: QueuePairAttributes) -> SoftQueuePairAttributes {
        let state: SoftQueuePairState
        switch attributes.targetState {
        case .reset: state = .reset
        case .initialized: state = .initialized
        case .readyToReceive: state = .readyToReceive
        case .readyToSend: state = .readyToSend
        case .sendQueueDrained: state = .sendQueueDrained
        case .sendQueueError: state = .sendQueueError
        default: state = .error
        }
        var soft = SoftQueuePairAttributes(state: state)
        soft.access = attributes.access.map { SoftAccess(rawValue: $0.rawValue & 0xF) }
        soft.qkey = attributes.qkey
        soft.pathMTU = attributes.pathMTU?.bytes
        soft.destination = attributes.addressVector.map { address(of: $0.destinationGID) }
        soft.destinationQueuePairNumber = attributes.destinationQueuePairNumber
        soft.receivePSN = attributes.receivePSN
        soft.minRNRTimer = attributes.minRNRTimer
        soft.sendPSN = attributes.sendPSN
        soft.timeout = attributes.timeout
        soft.retryCount = attributes.retryCount
        soft.rnrRetry = attributes.rnrRetry
        soft.pkeyIndex = attributes.pkeyIndex
        return soft
    }

    static func state(_ state: SoftQueuePairState) -> QueuePairState {
        switch state {
        case .reset: .reset
        case .initialized: .initialized
        case .readyToReceive: .readyToReceive
        case .readyToSend: .readyToSend
        case .sendQueueDrained: .sendQueueDrained
        case .sendQueueError: .sendQueueError
        case .error: .error
        }
    }
}
