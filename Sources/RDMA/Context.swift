import CIBVerbs

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
        case closed
    }

    private var handle: Handle
    /// The device this context was opened on.
    public let device: Device
    let children = ChildRegistry()

    /// Opens `device`. The corresponding C function is `ibv_open_device`.
    public init(device: Device) throws(RDMAError) {
        self.device = device
        handle = .verbs(try CReturn.nonNull("ibv_open_device") { ibv_open_device(device.pointer) }.get())
    }

    /// Opens the device called `name` (e.g. `rxe0`), with an error naming the devices
    /// present when there is none of that name.
    public convenience init(deviceNamed name: String) throws(RDMAError) {
        try self.init(device: try Device.named(name))
    }

    /// Which implementation this context runs on.
    public var backend: BackendKind { .verbs }

    /// True after `close()`.
    public var isClosed: Bool {
        if case .closed = handle { return true }
        return false
    }

    func verbsContext(_ operation: StaticString) throws(RDMAError) -> UnsafeMutablePointer<ibv_context> {
        switch handle {
        case .verbs(let pointer): return pointer
        case .closed: throw RDMAError(operation: "\(operation)", kind: .closed, hint: "the Context was closed")
        }
    }

    /// The device's limits. The corresponding C function is `ibv_query_device`.
    public func deviceAttributes() throws(RDMAError) -> DeviceAttributes {
        let context = try verbsContext("ibv_query_device")
        var raw = ibv_device_attr()
        try CReturn.returnedErrno("ibv_query_device") { ibv_query_device(context, &raw) }.get()
        return DeviceAttributes(raw)
    }

    /// The state of `port` (numbered from 1). The corresponding C function is `ibv_query_port`.
    public func portAttributes(port: UInt8 = 1) throws(RDMAError) -> PortAttributes {
        let context = try verbsContext("ibv_query_port")
        var raw = ibv_port_attr()
        try CReturn.returnedErrno("ibv_query_port") { cibv_query_port(context, port, &raw) }.get()
        return PortAttributes(raw)
    }

    /// Every valid GID of every port, with its type, in index order.
    /// The corresponding C function is `ibv_query_gid_table`.
    public func gidTable() throws(RDMAError) -> [GIDEntry] {
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
        guard case .verbs(let pointer) = handle else { return }
        try children.closeAll()
        handle = .closed
        _ = try CReturn.minusOneErrno("ibv_close_device") { ibv_close_device(pointer) }.get()
    }

    deinit {
        try? close()
    }
}
