import CEthtool
#if canImport(Glibc)
import Glibc
#endif

/// Ethernet statistics of netdevs through the SIOCETHTOOL ioctl — what `ethtool -S` prints,
/// without the ethtool binary: ETHTOOL_GSSET_INFO for the count, ETHTOOL_GSTRINGS for the
/// names, ETHTOOL_GSTATS for the values.
///
/// Names are trimmed (one mlx5 kernel had a trailing space in a name). Drivers with PFC
/// export per-priority pause counters (`rx_prio3_pause`, `tx_prio3_pause_duration`, …;
/// see ``PauseCounterName``); veth exports its queue counters, loopback nothing
/// (EOPNOTSUPP, reported as such).
///
/// ```swift
/// let source = try EthtoolSource(interfaces: ["eth0"])
/// let eth0 = try source.read().ports[0]
/// print(eth0.counters["rx_prio3_pause"] ?? 0)
/// ```
public final class EthtoolSource: CounterSource {
    public let interfaces: [String]
    public let node: String
    private let socketDescriptor: Int32
    private var closed = false

    /// Opens the socket the ioctl goes through and checks that every interface answers.
    /// The corresponding C calls are `socket(AF_INET, SOCK_DGRAM)` and `ioctl(SIOCETHTOOL)`.
    public init(interfaces: [String], node: String = "") throws(MonitorError) {
        self.interfaces = interfaces
        self.node = node
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw MonitorError("socket(AF_INET, SOCK_DGRAM)", String(cString: strerror(errno))) }
        socketDescriptor = descriptor
        for interface in interfaces {
            do { _ = try statisticCount(interface) } catch { close(); throw error }
        }
    }

    deinit { close() }

    /// Idempotent.
    public func close() {
        if closed { return }
        closed = true
        _ = Glibc.close(socketDescriptor)
    }

    public var sourceDescription: String { "ethtool \(interfaces.joined(separator: ","))" }

    public func read() throws(MonitorError) -> CounterReading {
        guard !closed else { throw MonitorError(sourceDescription, "the source was closed") }
        var ports: [PortCounters] = []
        for interface in interfaces {
            ports.append(PortCounters(key: PortKey(node: node, device: interface), kind: .ethernet, counters: try statistics(interface)))
        }
        return CounterReading(ports: ports)
    }

    /// Names and values of one interface. Names are read on every poll because a driver may
    /// change its set (queues added); a duplicated name keeps its first value.
    func statistics(_ interface: String) throws(MonitorError) -> [String: UInt64] {
        let count = try statisticCount(interface)
        guard count > 0 else { return [:] }
        var nameBytes = [CChar](repeating: 0, count: Int(count) * Int(CETHTOOL_NAME_LENGTH))
        var values = [UInt64](repeating: 0, count: Int(count))
        var namesReturned: UInt32 = 0
        var valuesReturned: UInt32 = 0
        try Self.check("ETHTOOL_GSTRINGS", interface, cethtool_stat_names(socketDescriptor, interface, count, &nameBytes, &namesReturned))
        try Self.check("ETHTOOL_GSTATS", interface, cethtool_stat_values(socketDescriptor, interface, count, &values, &valuesReturned))
        var result: [String: UInt64] = [:]
        let length = Int(CETHTOOL_NAME_LENGTH)
        for index in 0..<Int(min(namesReturned, valuesReturned)) {
            let name = nameBytes[(index * length)..<((index + 1) * length)].withUnsafeBufferPointer { buffer in
                String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }.trimmingWhitespace()
            if !name.isEmpty, result[name] == nil { result[name] = values[index] }
        }
        return result
    }

    private func statisticCount(_ interface: String) throws(MonitorError) -> UInt32 {
        var count: UInt32 = 0
        try Self.check("ETHTOOL_GSSET_INFO", interface, cethtool_stat_count(socketDescriptor, interface, &count))
        // A driver claiming more than this is broken; refuse rather than allocate gigabytes.
        guard count <= 1 << 16 else { throw MonitorError("SIOCETHTOOL on \(interface)", "the driver reports \(count) statistics (limit 65536)") }
        return count
    }

    /// The one place the shim's "0 or -errno" convention becomes an error.
    private static func check(_ operation: String, _ interface: String, _ result: Int32) throws(MonitorError) {
        guard result < 0 else { return }
        let code = -result
        let hint: String
        switch code {
        case ENODEV: hint = "no such network interface (see `ip link`)"
        case EOPNOTSUPP: hint = "the driver exports no ethtool statistics"
        case EPERM, EACCES: hint = "permission denied"
        default: hint = String(cString: strerror(code))
        }
        throw MonitorError("SIOCETHTOOL \(operation) on \(interface)", hint)
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var view = Substring(self)
        while let first = view.first, first.isWhitespace { view.removeFirst() }
        while let last = view.last, last.isWhitespace { view.removeLast() }
        return String(view)
    }
}
