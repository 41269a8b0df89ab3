import Foundation

/// RDMA port counters from sysfs: `<root>/<device>/ports/<n>/counters/*` (the IB port
/// counters, e.g. `port_rcv_data` in 4-byte words) and `hw_counters/*` (rxe's `sent_pkts`,
/// `rcvd_seq_err` …; mlx5's `np_cnp_sent`, `rp_cnp_handled`, `out_of_sequence` …).
///
/// The root is injectable so tests run over a fake tree; `hw_counters/lifespan` is a setting
/// (the refresh period), not a counter, and is skipped. A file that does not read as a
/// decimal number (some counters are write-only or return EINVAL on some firmware) is left
/// out rather than failing the whole read.
///
/// ```swift
/// let source = try SysfsRDMASource(devices: ["rxe0"])
/// for port in try source.read().ports { print(port.key, port.counters["sent_pkts"] ?? 0) }
/// ```
public struct SysfsRDMASource: CounterSource {
    public static let defaultRoot = "/sys/class/infiniband"
    /// Files in a counter folder that are not counters.
    static let notCounters: Set<String> = ["lifespan"]

    public let root: String
    public let node: String
    /// nil: every device present.
    public let devices: [String]?

    /// Refuses a device that is not there, naming the ones that are.
    public init(root: String = SysfsRDMASource.defaultRoot, node: String = "", devices: [String]? = nil) throws(MonitorError) {
        self.root = root
        self.node = node
        self.devices = devices
        if let devices {
            let present = Self.listDirectory(root)
            for device in devices where !present.contains(device) {
                throw MonitorError("device \(device)", "no such RDMA device under \(root) (present: \(present.isEmpty ? "none" : present.joined(separator: ", "))); create one with `rdma link add rxe0 type rxe netdev eth0`, or read a snapshot file")
            }
        }
    }

    public var sourceDescription: String { "sysfs \(root)" }

    public func read() throws(MonitorError) -> CounterReading {
        var ports: [PortCounters] = []
        for device in devices ?? Self.listDirectory(root) {
            let portsFolder = "\(root)/\(device)/ports"
            for portName in Self.listDirectory(portsFolder) {
                guard let portNumber = Int(portName), portNumber >= 0, portNumber <= 255 else { continue }
                var counters: [String: UInt64] = [:]
                for folder in ["counters", "hw_counters"] {
                    let path = "\(portsFolder)/\(portName)/\(folder)"
                    for name in Self.listDirectory(path) where !Self.notCounters.contains(name) && counters[name] == nil {
                        if let value = Self.readNumber("\(path)/\(name)") { counters[name] = value }
                    }
                }
                ports.append(PortCounters(key: PortKey(node: node, device: device, port: portNumber), kind: .rdma, counters: counters))
            }
        }
        return CounterReading(ports: ports)
    }

    static func listDirectory(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    /// A sysfs counter file: one decimal number and a newline; anything else is nil.
    static func readNumber(_ path: String) -> UInt64? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: 64), let text = String(data: data, encoding: .utf8) else { return nil }
        return UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
