import CIBVerbs
import SoftRoCE

/// An RDMA device known to libibverbs: a hardware RNIC, or a kernel Soft-RoCE (rxe) link.
///
/// ```swift
/// for device in try Device.all() {
///     print(device.name, device.guid, device.transport)
/// }
/// let context = try Context(device: try Device.named("rxe0"))
/// ```
public struct Device: @unchecked Sendable, CustomStringConvertible {
    // The list owns the ibv_device structs; every Device keeps it alive.
    let list: DeviceList?
    let pointer: UnsafeMutablePointer<ibv_device>!
    /// Set for a soft (SoftRoCE) device; `list` and `pointer` are nil then.
    let soft: SoftDevice?

    init(list: DeviceList, pointer: UnsafeMutablePointer<ibv_device>) {
        self.list = list
        self.pointer = pointer
        soft = nil
    }

    init(soft: SoftDevice) {
        list = nil
        pointer = nil
        self.soft = soft
    }

    /// The kernel device name, e.g. `mlx5_0` or `rxe0`.
    /// The corresponding C function is `ibv_get_device_name`.
    public var name: String {
        if let soft { return soft.name }
        return String(cString: ibv_get_device_name(pointer))
    }

    /// The node GUID in host order (printed as four groups of hex digits like ibv_devices).
    /// The corresponding C function is `ibv_get_device_guid`.
    public var guid: UInt64 {
        if let soft { return SoftTranslate.guid(soft) }
        return UInt64(bigEndian: ibv_get_device_guid(pointer))
    }

    /// The GUID as `ibv_devices` prints it: `0002:c903:0001:2345`.
    public var guidText: String {
        let hex = String(guid, radix: 16)
        let padded = String(repeating: "0", count: 16 - hex.count) + hex
        var groups = [Substring]()
        var index = padded.startIndex
        while index < padded.endIndex {
            let next = padded.index(index, offsetBy: 4)
            groups.append(padded[index..<next])
            index = next
        }
        return groups.joined(separator: ":")
    }

    /// The node type (RoCE devices and rxe are channel adapters).
    public var nodeType: NodeType { soft != nil ? .channelAdapter : NodeType(verbs: pointer.pointee.node_type) }

    /// The transport family (RoCE devices and rxe report InfiniBand).
    public var transport: TransportType { soft != nil ? .infiniBand : TransportType(verbs: pointer.pointee.transport_type) }

    public var description: String { "\(name) (GUID \(guidText), \(nodeType), \(transport))" }

    /// Every RDMA device present, in the order libibverbs lists them. An empty array
    /// means the kernel has RDMA support but no device.
    ///
    /// Throws `.noDevice` with a hint when the kernel has no RDMA support at all.
    /// The corresponding C function is `ibv_get_device_list`.
    public static func all() throws(RDMAError) -> [Device] {
        var count: Int32 = 0
        let pointer: UnsafeMutablePointer<UnsafeMutablePointer<ibv_device>?>
        // Soft devices open in this process are listed too (after the verbs ones).
        let softDevices = SoftDeviceRegistry.all.map(Device.init(soft:))
        switch CReturn.nonNull("ibv_get_device_list", { cibv_get_device_list(&count) }) {
        case .success(let list): pointer = list
        case .failure(let error):
            if !softDevices.isEmpty { return softDevices }
            if error.errno == ENOSYS {
                throw RDMAError(operation: "ibv_get_device_list", kind: .noDevice,
                                hint: "the kernel has no RDMA support (ENOSYS): on a kernel with rdma_rxe run tools/rxe-setup; elsewhere use the kernel-rxe lab (tools/rxe-lab) or the userspace engine")
            }
            throw error
        }
        let list = DeviceList(pointer: pointer)
        return (0..<Int(count)).compactMap { index in
            pointer[index].map { Device(list: list, pointer: $0) }
        } + softDevices
    }

    /// The device called `name`; throws `.noDevice` naming the devices that do exist.
    public static func named(_ name: String) throws(RDMAError) -> Device {
        let devices = try all()
        if let device = devices.first(where: { $0.name == name }) { return device }
        let present = devices.isEmpty ? "none" : devices.map(\.name).joined(separator: ", ")
        throw RDMAError(operation: "open device \(name)", kind: .noDevice,
                        hint: "devices present: \(present); create one with `rdma link add rxe0 type rxe netdev eth0` (tools/rxe-setup)")
    }
}

/// Owns the array returned by `ibv_get_device_list` and frees it when the last `Device`
/// (or `Context` opened from one) goes away.
final class DeviceList: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UnsafeMutablePointer<ibv_device>?>

    init(pointer: UnsafeMutablePointer<UnsafeMutablePointer<ibv_device>?>) {
        self.pointer = pointer
    }

    deinit {
        ibv_free_device_list(pointer)
    }
}
