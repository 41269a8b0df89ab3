import Foundation

// The simulated fabric's per-port pause state in rdma-monitor's snapshot format
// (`rdma-monitor-snapshot/1`, documented in Sources/FabricMonitor/Sources/SnapshotFile.swift),
// so the monitor analyses a simulated fabric exactly as a real one. Written here, without
// depending on FabricMonitor: FabricSim stays below the monitor.
extension SimulationResult {
    /// One sample every `stride` recorded samples. Per port (the transmitter at `node`
    /// towards `peer`, named by the peer like the topology's default port names): the gauges
    /// `rx_prio3_paused` (held by PAUSE), `tx_prio3_paused` (this end sends XOFF: the peer's
    /// transmitter is held), `tx_prio3_queue_bytes`, and the counters
    /// `rx_prio3_pause_duration` / `tx_prio3_pause_duration` (µs, summed over samples).
    /// The topology carries the scenario's switches, hosts, links and flow routes, and as
    /// `turns` the down-then-up turns that flooded lossless packets take.
    ///
    /// ```swift
    /// let json = FabricSimulator(scenario: ring).run().monitorSnapshotJSON(stride: 10)
    /// ```
    public func monitorSnapshotJSON(stride: Int = 1, priority: Int = 3) -> String {
        let names = scenario.nodes.map(\.name)
        var peerPort: [Int] = Array(repeating: -1, count: ports.count)
        var portByEnds: [Int64: Int] = [:]
        for (index, port) in ports.enumerated() { portByEnds[Int64(port.node) << 32 | Int64(port.peer)] = index }
        for (index, port) in ports.enumerated() { peerPort[index] = portByEnds[Int64(port.peer) << 32 | Int64(port.node)] ?? -1 }

        var pausedMicroseconds = Array(repeating: 0.0, count: ports.count)
        var samples: [String] = []
        var previousTime = 0.0
        let step = max(stride, 1)
        for sample in timeSeries.times.indices {
            let time = Double(timeSeries.times[sample].rawValue)
            for port in ports.indices where timeSeries.paused[port][sample] { pausedMicroseconds[port] += (time - previousTime) / 1000 }
            previousTime = time
            guard sample % step == step - 1 || sample == timeSeries.times.count - 1 else { continue }
            let entries = ports.indices.map { index -> String in
                let port = ports[index], peer = peerPort[index]
                let rxPaused = timeSeries.paused[index][sample]
                let txPaused = peer >= 0 && timeSeries.paused[peer][sample]
                let txDuration = peer >= 0 ? pausedMicroseconds[peer] : 0
                return "{\"node\": \(Self.quoted(names[port.node])), \"device\": \(Self.quoted(names[port.peer])), \"kind\": \"\(port.isSwitchPort ? "switch" : "ethernet")\", "
                    + "\"counters\": {\"rx_prio\(priority)_pause_duration\": \(UInt64(pausedMicroseconds[index])), \"tx_prio\(priority)_pause_duration\": \(UInt64(txDuration))}, "
                    + "\"gauges\": {\"rx_prio\(priority)_paused\": \(rxPaused ? 1 : 0), \"tx_prio\(priority)_paused\": \(txPaused ? 1 : 0), "
                    + "\"tx_prio\(priority)_queue_bytes\": \(timeSeries.egressQueueBytes[index][sample])}}"
            }
            samples.append("{\"timeNanoseconds\": \(timeSeries.times[sample].rawValue), \"ports\": [\n  " + entries.joined(separator: ",\n  ") + "]}")
        }
        let switches = scenario.nodes.filter { $0.kind == .switch }.map { Self.quoted($0.name) }
        let hosts = scenario.nodes.filter { $0.kind == .host }.map { Self.quoted($0.name) }
        let links = scenario.links.map { "{\"between\": [\(Self.quoted(names[$0.nodeA])), \(Self.quoted(names[$0.nodeB]))]}" }
        let routes = scenario.flows.map { "[" + $0.route.map { Self.quoted(names[$0]) }.joined(separator: ", ") + "]" }
        let turns = scenario.floodingTurns().map { "[" + $0.map { Self.quoted(names[$0]) }.joined(separator: ", ") + "]" }
        let topology = "{\"switches\": [\(switches.joined(separator: ", "))], \"hosts\": [\(hosts.joined(separator: ", "))], "
            + "\"links\": [\(links.joined(separator: ", "))], \"losslessPriorities\": [\(priority)], \"routes\": [\(routes.joined(separator: ", "))]"
            + (turns.isEmpty ? "" : ", \"turns\": [\(turns.joined(separator: ", "))]") + "}"
        return "{\"format\": \"rdma-monitor-snapshot/1\",\n\"samples\": [\n" + samples.joined(separator: ",\n") + "\n],\n\"topology\": \(topology)}\n"
    }

    private static func quoted(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text])) ?? Data("[\"\"]".utf8)
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }
}
