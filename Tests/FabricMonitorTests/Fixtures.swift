@testable import FabricMonitor

func port(_ device: String, kind: PortKind = .rdma, node: String = "h", _ counters: [String: UInt64], gauges: [String: Double] = [:]) -> PortCounters {
    PortCounters(key: PortKey(node: node, device: device), kind: kind, counters: counters, gauges: gauges)
}

func snapshot(_ milliseconds: Int64, _ ports: [PortCounters]) -> CounterSnapshot {
    CounterSnapshot(time: .milliseconds(milliseconds), ports: ports)
}

enum Fixtures {
    static let ringTopology = """
    { "switches": ["S1", "S2", "S3"], "hosts": ["H1", "H2", "H3"],
      "links": [ { "between": ["S1", "S2"] }, { "between": ["S2", "S3"] }, { "between": ["S3", "S1"] },
                 { "between": ["H1", "S1"] }, { "between": ["H2", "S2"] }, { "between": ["H3", "S3"] } ],
      "routes": [ ["H1", "S1", "S2", "S3", "H3"], ["H2", "S2", "S3", "S1", "H1"], ["H3", "S3", "S1", "S2", "H2"] ] }
    """

    /// One sample of the three-switch ring: each ring ingress buffer paused or not
    /// (S2's port facing S1, S3's facing S2, S1's facing S3), through the `tx_prio3_paused` gauge.
    static func ringSnapshot(paused: [Bool]) -> String {
        let ports = [("S2", "S1"), ("S3", "S2"), ("S1", "S3")].enumerated().map { index, pair in
            #"{ "node": "\#(pair.0)", "device": "\#(pair.1)", "kind": "switch", "counters": {}, "gauges": { "tx_prio3_paused": \#(paused[index] ? 1 : 0) } }"#
        }
        return #"{ "format": "rdma-monitor-snapshot/1", "samples": [ { "timeNanoseconds": 0, "ports": [ \#(ports.joined(separator: ", ")) ] } ], "topology": \#(ringTopology) }"#
    }

}
