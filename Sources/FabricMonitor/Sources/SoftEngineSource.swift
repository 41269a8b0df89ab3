import RDMA

/// The userspace engine's counters, under rxe's names where the meaning matches
/// (`sent_pkts`, `rcvd_seq_err`, `completer_retry_err`, …) and `soft_*` for its own.
///
/// ```swift
/// let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.2", port: 4791))
/// let source = SoftEngineSource(contexts: [context])
/// ```
public struct SoftEngineSource: CounterSource {
    public let contexts: [Context]
    public let node: String

    public init(contexts: [Context], node: String = "") {
        self.contexts = contexts
        self.node = node
    }

    public var sourceDescription: String { "soft engine" }

    public func read() throws(MonitorError) -> CounterReading {
        var ports: [PortCounters] = []
        for context in contexts {
            guard let named = SoftCounterAdapter.namedCounters(of: context) else { continue }
            var counters: [String: UInt64] = [:]
            for (name, value) in named { counters[name] = value }
            ports.append(PortCounters(key: PortKey(node: node, device: context.device.name, port: 1), kind: .soft, counters: counters))
        }
        return CounterReading(ports: ports)
    }
}

/// The one place that knows how a `Context` hands out the soft engine's counters.
enum SoftCounterAdapter {
    /// (name, value) pairs, or nil for a context that is not soft or is closed.
    static func namedCounters(of context: Context) -> [(name: String, value: UInt64)]? {
        context.softCounters?.named
    }
}
