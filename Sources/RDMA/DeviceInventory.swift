/// A snapshot of every RDMA device, its ports and GID tables — what `ibv_devinfo -v` shows,
/// as a value that prints for people and encodes as JSON for machines.
///
/// ```swift
/// let inventory = DeviceInventory.current()
/// print(inventory)                      // a table per device
/// if inventory.devices.isEmpty { print(inventory.absenceExplanation ?? "") }
/// ```
public struct DeviceInventory: Sendable, Codable, CustomStringConvertible {
    public struct Port: Sendable, Codable {
        public var number: Int
        public var state: String
        public var activeMTU: Int?
        public var linkLayer: String
        public var speedGigabitsPerSecond: Double?
        public var gids: [GIDRow]
        /// The index to use as `-x` / `gidIndex` (the IPv4-mapped RoCEv2 entry), if any.
        public var preferredRoCEv2GIDIndex: Int?
    }

    public struct GIDRow: Sendable, Codable {
        public var index: Int
        public var gid: String
        public var type: String
    }

    public struct Entry: Sendable, Codable {
        public var name: String
        public var guid: String
        public var nodeType: String
        public var transport: String
        public var firmwareVersion: String?
        public var maxQueuePairs: Int?
        public var maxMemoryRegionSize: UInt64?
        public var ports: [Port]
        /// Set when the device is listed but could not be opened or queried.
        public var error: String?
    }

    public var devices: [Entry]
    /// Why there is no device, when there is none (or the listing failed).
    public var absenceExplanation: String?

    /// Lists and queries every device. Never throws: failures become `error` fields and
    /// `absenceExplanation`, because an inventory that cannot be taken is itself the answer.
    public static func current() -> DeviceInventory {
        let devices: [Device]
        do {
            devices = try Device.all()
        } catch {
            return DeviceInventory(devices: [], absenceExplanation: error.description)
        }
        if devices.isEmpty {
            return DeviceInventory(devices: [], absenceExplanation:
                "no RDMA device: the kernel supports RDMA but has no device — create one with tools/rxe-setup (`rdma link add rxe0 type rxe netdev <if>`)")
        }
        return DeviceInventory(devices: devices.map(entry(for:)), absenceExplanation: nil)
    }

    private static func entry(for device: Device) -> Entry {
        var entry = Entry(name: device.name, guid: device.guidText, nodeType: device.nodeType.description,
                          transport: device.transport.description, ports: [])
        do {
            let context = try Context(device: device)
            defer { try? context.close() }
            let attributes = try context.deviceAttributes()
            entry.firmwareVersion = attributes.firmwareVersion
            entry.maxQueuePairs = attributes.maxQueuePairs
            entry.maxMemoryRegionSize = attributes.maxMemoryRegionSize
            let table = try context.gidTable()
            for number in 1...max(attributes.physicalPortCount, 1) {
                let port = try context.portAttributes(port: UInt8(number))
                let gids = table.filter { Int($0.port) == number }
                entry.ports.append(Port(number: number, state: port.state.description, activeMTU: port.activeMTU?.bytes,
                                        linkLayer: port.linkLayer.description, speedGigabitsPerSecond: port.speedGigabitsPerSecond,
                                        gids: gids.map { GIDRow(index: $0.index, gid: $0.gid.description, type: $0.type.description) },
                                        preferredRoCEv2GIDIndex: GIDEntry.preferredRoCEv2(in: gids)?.index))
            }
        } catch {
            entry.error = error.description
        }
        return entry
    }

    public var description: String {
        if devices.isEmpty { return absenceExplanation ?? "no RDMA device" }
        var lines = [String]()
        for device in devices {
            lines.append("\(device.name)  GUID \(device.guid)  \(device.nodeType)  \(device.transport)"
                         + (device.firmwareVersion.map { "  fw \($0)" } ?? ""))
            if let error = device.error { lines.append("  error: \(error)") }
            for port in device.ports {
                let speed = port.speedGigabitsPerSecond.map { "  \($0) Gb/s" } ?? ""
                lines.append("  port \(port.number): \(port.state)  MTU \(port.activeMTU.map(String.init) ?? "?")  \(port.linkLayer)\(speed)")
                for gid in port.gids {
                    let mark = gid.index == port.preferredRoCEv2GIDIndex ? "  ← RoCEv2 IPv4 (use -x \(gid.index))" : ""
                    lines.append("    GID[\(gid.index)] \(gid.gid)  \(gid.type)\(mark)")
                }
            }
        }
        return lines.joined(separator: "\n")
    }
}
