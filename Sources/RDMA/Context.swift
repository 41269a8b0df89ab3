import CIBVerbs
import SoftRoCE

/// An open RDMA device: the root of every other object.
///
/// Children (protection domains, completion queues and channels) keep their context alive;
/// `close()` closes them first, then the device. Closing twice is harmless.
///
/// ```swift
/// let context = try Context(deviceNamed: "rxe0")
/// let port = try context.portAttributes(port: 1)
/// let gid = try context.preferredRoCEv2GID(port: 1)   // the ::ffff:a.b.c.d entry
/// ```
public final class Context: @unchecked Sendable {
    private enum Handle {
        case verbs(UnsafeMutablePointer<ibv_context>)
        /// `owned`: this context opened the device and closes it.
        case soft(SoftDevice, owned: Bool)
        case closed
    }

    private var handle: Handle
    /// The device this context was opened on.
    public let device: Device
    let children = ChildRegistry()

    /// Opens `device`. The corresponding C function is `ibv_open_device`.
    public init(device: Device) throws(RDMAError) {
        self.device = device
        if let soft = device.soft {
            guard !soft.isClosed else {
                throw RDMAError(operation: "open soft device \(soft.name)", kind: .closed, hint: "the soft device was closed")
            }
            handle = .soft(soft, owned: false)
            return
        }
        handle = .verbs(try CReturn.nonNull("ibv_open_device") { ibv_open_device(device.pointer) }.get())
    }

    /// Opens the device called `name` (e.g. `rxe0`), with an error naming the devices
    /// present when there is none of that name.
    public convenience init(deviceNamed name: String) throws(RDMAError) {
        try self.init(device: try Device.named(name))
    }

    /// Opens a soft (SoftRoCE) device: the userspace RoCEv2 engine bound to
    /// `configuration.address` (IPv4 or IPv6) and UDP `configuration.port` (4791 by default).
    /// Its one port has GID index 0: the IPv4-mapped address (or the IPv6 address).
    ///
    /// ```swift
    /// let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.2", port: 4791))
    /// ```
    /// Polling a completion queue drives the engine in the caller's thread; for
    /// event-driven use call `startBackgroundProgress()`.
    public init(soft configuration: SoftDeviceConfiguration) throws(RDMAError) {
        let soft: SoftDevice
        do throws(SoftRoCEError) { soft = try SoftDevice(configuration: configuration) } catch { throw RDMAError(soft: error) }
        SoftDeviceRegistry.add(soft)
        device = Device(soft: soft)
        handle = .soft(soft, owned: true)
    }

    /// Which implementation this context runs on.
    public var backend: BackendKind {
        if case .soft = handle { return .soft }
        return device.soft != nil ? .soft : .verbs
    }

    /// The SoftRoCE engine of a soft context (nil for verbs): counters, fault injection,
    /// background progress.
    package var softDevice: SoftDevice? {
        if case .soft(let device, _) = handle { return device }
        return nil
    }

    /// Runs the soft engine's progress on a background thread, so that completion channels
    /// are signalled without anyone polling. No-op on verbs (the kernel/NIC progresses).
    public func startBackgroundProgress() { softDevice?.startBackgroundProgress() }

    /// The soft engine, or a `.closed`/`.unsupported` error naming the operation.
    func softEngine(_ operation: StaticString) throws(RDMAError) -> SoftDevice? {
        switch handle {
        case .soft(let device, _): return device
        case .verbs: return nil
        case .closed: throw RDMAError(operation: "\(operation)", kind: .closed, hint: "the Context was closed")
        }
    }

    /// True after `close()`.
    public var isClosed: Bool {
        if case .closed = handle { return true }
        return false
    }

    func verbsContext(_ operation: StaticString) throws(RDMAError) -> UnsafeMutablePointer<ibv_context> {
        switch handle {
        case .verbs(let pointer): return pointer
        case .soft: throw RDMAError(operation: "\(operation)", kind: .unsupported, hint: "a soft context has no verbs handle")
        case .closed: throw RDMAError(operation: "\(operation)", kind: .closed, hint: "the Context was closed")
        }
    }

    /// The device's limits. The corresponding C function is `ibv_query_device`.
    public func deviceAttributes() throws(RDMAError) -> DeviceAttributes {
        if let soft = try softEngine("ibv_query_device") { return SoftTranslate.deviceAttributes(soft) }
        let context = try verbsContext("ibv_query_device")
        var raw = ibv_device_attr()
        try CReturn.returnedErrno("ibv_query_device") { ibv_query_device(context, &raw) }.get()
        return DeviceAttributes(raw)
    }

    /// The state of `port` (numbered from 1). The corresponding C function is `ibv_query_port`.
    public func portAttributes(port: UInt8 = 1) throws(RDMAError) -> PortAttributes {
        if let soft = try softEngine("ibv_query_port") {
            guard port == 1 else { throw RDMAError(operation: "ibv_query_port", kind: .invalidArgument, hint: "a soft device has one port, 1; got \(port)") }
            return SoftTranslate.portAttributes(soft)
        }
        let context = try verbsContext("ibv_query_port")
        var raw = ibv_port_attr()
        try CReturn.returnedErrno("ibv_query_port") { cibv_query_port(context, port, &raw) }.get()
        return PortAttributes(raw)
    }

    /// Every valid GID of every port, with its type, in index order.
    /// The corresponding C function is `ibv_query_gid_table`.
    public func gidTable() throws(RDMAError) -> [GIDEntry] {
        if let soft = try softEngine("ibv_query_gid_table") { return SoftTranslate.gidTable(soft) }
        let context = try verbsContext("ibv_query_gid_table")
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

    /// The GID table of one port.
    public func gidTable(port: UInt8) throws(RDMAError) -> [GIDEntry] {
        try gidTable().filter { $0.port == port }
    }

    /// The RoCEv2 entry with an IPv4-mapped address on `port` — the one perftest users
    /// pass as `-x` by hand (index 1 on a fresh rxe; index 0 is the IPv6 link-local one).
    /// Throws with a hint when the port has none (no IPv4 address on its netdev).
    public func preferredRoCEv2GID(port: UInt8 = 1) throws(RDMAError) -> GIDEntry {
        let table = try gidTable(port: port)
        if let entry = GIDEntry.preferredRoCEv2(in: table) { return entry }
        throw RDMAError(operation: "select RoCEv2 GID on \(device.name) port \(port)", kind: .noDevice,
                        hint: "no RoCEv2 GID with an IPv4 address: give the netdev under \(device.name) an IPv4 address (`ip addr add … dev …`) or pass the GID index explicitly")
    }

    /// Closes the children, then the device. Idempotent.
    /// The corresponding C function is `ibv_close_device`.
    public func close() throws(RDMAError) {
        if case .soft(let soft, let owned) = handle {
            try children.closeAll()
            handle = .closed
            if owned { soft.close() }
            return
        }
        guard case .verbs(let pointer) = handle else { return }
        try children.closeAll()
        handle = .closed
        _ = try CReturn.minusOneErrno("ibv_close_device") { ibv_close_device(pointer) }.get()
    }

    deinit {
        try? close()
    }
}
