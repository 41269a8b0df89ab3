import CIBVerbs
import SoftRoCE
import Synchronization

// The soft backend's half of the seam: translations between the verbs C structs the public
// API is built on (ibv_send_wr, ibv_recv_wr, ibv_wc, ibv_*_attr) and SoftRoCE's types.
// Nothing here allocates on the data path: requests are read in place, scatter-gather lists
// are copied into stack scratch, completions are written into the caller's buffer.

public typealias SoftDeviceConfiguration = SoftRoCE.SoftDeviceConfiguration
public typealias SoftFaultInjection = SoftRoCE.SoftFaultInjection
public typealias SoftCounters = SoftRoCE.SoftCounters

extension RDMAError {
    init(soft error: SoftRoCEError) {
        self.init(operation: error.operation, kind: .system(errno: error.errno), hint: error.message)
    }
}

/// Soft devices open in this process, so that `Device.all()` lists them next to verbs ones.
enum SoftDeviceRegistry {
    private struct Weak: @unchecked Sendable { weak var device: SoftDevice? }
    private static let devices = Mutex<[Weak]>([])

    static func add(_ device: SoftDevice) {
        devices.withLock { list in
            list.removeAll { $0.device == nil }
            list.append(Weak(device: device))
        }
    }

    static var all: [SoftDevice] {
        devices.withLock { list in list.compactMap(\.device).filter { !$0.isClosed } }
    }
}


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

    /// A SoftRoCE request from a filled `ibv_send_wr`; nil for an opcode the engine lacks.
    @inline(__always)
    static func request(_ wr: UnsafePointer<ibv_send_wr>) -> SoftSendRequest? {
        let raw = wr.pointee
        let opcode: SoftSendOpcode
        switch raw.opcode {
        case IBV_WR_SEND: opcode = .send
        case IBV_WR_SEND_WITH_IMM: opcode = .sendWithImmediate
        case IBV_WR_RDMA_WRITE: opcode = .write
        case IBV_WR_RDMA_WRITE_WITH_IMM: opcode = .writeWithImmediate
        case IBV_WR_RDMA_READ: opcode = .read
        case IBV_WR_ATOMIC_CMP_AND_SWP: opcode = .compareAndSwap
        case IBV_WR_ATOMIC_FETCH_AND_ADD: opcode = .fetchAndAdd
        default: return nil
        }
        let flags = raw.send_flags
        var request = SoftSendRequest(id: raw.wr_id, opcode: opcode,
                                      signaled: flags & IBV_SEND_SIGNALED.rawValue != 0,
                                      inline: flags & IBV_SEND_INLINE.rawValue != 0,
                                      solicited: flags & IBV_SEND_SOLICITED.rawValue != 0,
                                      immediate: UInt32(bigEndian: raw.imm_data))
        switch opcode {
        case .write, .writeWithImmediate, .read:
            request.remoteAddress = raw.wr.rdma.remote_addr
            request.remoteKey = raw.wr.rdma.rkey
        case .compareAndSwap, .fetchAndAdd:
            request.remoteAddress = raw.wr.atomic.remote_addr
            request.remoteKey = raw.wr.atomic.rkey
            request.compareAdd = raw.wr.atomic.compare_add
            request.swap = raw.wr.atomic.swap
        default:
            break
        }
        return request
    }

    /// Adds the UD destination: `wr.ud.ah` holds the AddressHandle itself (unretained; the
    /// chain or the caller's request keeps it alive) — see `AddressHandle.verbsHandleForPosting`.
    @inline(__always)
    static func addDatagram(_ wr: UnsafePointer<ibv_send_wr>, to request: inout SoftSendRequest) {
        guard let ah = wr.pointee.wr.ud.ah else { return }
        let handle = Unmanaged<AddressHandle>.fromOpaque(UnsafeRawPointer(ah)).takeUnretainedValue()
        request.destination = handle.softDestination
        request.remoteQueuePairNumber = wr.pointee.wr.ud.remote_qpn
        request.remoteQKey = wr.pointee.wr.ud.remote_qkey
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

/// Reading posted work requests (the C structs) into the soft engine.
enum SoftPost {
    @inline(__always)
    static func withElements<R>(_ list: UnsafeMutablePointer<ibv_sge>?, _ count: Int32,
                                _ body: (UnsafeBufferPointer<SoftScatterGather>) throws(SoftRoCEError) -> R) throws(SoftRoCEError) -> R {
        let n = Int(max(count, 0))
        return try withUnsafeTemporaryAllocation(of: SoftScatterGather.self, capacity: max(n, 1)) { scratch throws(SoftRoCEError) -> R in
            for index in 0..<n {
                let sge = list![index]
                scratch[index] = SoftScatterGather(address: sge.addr, length: sge.length, lkey: sge.lkey)
            }
            return try body(UnsafeBufferPointer(rebasing: scratch[0..<n]))
        }
    }

    static func receive(_ wr: UnsafeMutablePointer<ibv_recv_wr>,
                        _ post: (UInt64, UnsafeBufferPointer<SoftScatterGather>) throws(SoftRoCEError) -> Void) throws(RDMAError) {
        do throws(SoftRoCEError) {
            try withElements(wr.pointee.sg_list, wr.pointee.num_sge) { sges throws(SoftRoCEError) in try post(wr.pointee.wr_id, sges) }
        } catch { throw RDMAError(soft: error) }
    }

    /// Posts one send request; returns the errno on failure.
    @inline(__always)
    static func send(_ wr: UnsafeMutablePointer<ibv_send_wr>, _ queuePair: SoftQueuePair, _ device: SoftDevice) -> Int32 {
        guard var request = SoftTranslate.request(wr) else { return EINVAL }
        if queuePair.type == .unreliableDatagram { SoftTranslate.addDatagram(wr, to: &request) }
        do throws(SoftRoCEError) {
            try withElements(wr.pointee.sg_list, wr.pointee.num_sge) { sges throws(SoftRoCEError) in try device.postSend(queuePair, request, sges) }
            return 0
        } catch {
            return error.errno
        }
    }
}
