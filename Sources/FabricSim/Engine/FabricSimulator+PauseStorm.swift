import Congestion

// The seed paper's NIC pause-frame storm (Guo et al., SIGCOMM 2016): a NIC whose receive
// pipeline is stuck keeps pausing its ToR, the ToR's buffers fill, and the pauses spread
// upstream through the fabric. Their cure was a watchdog on the NIC (stop pausing after the
// pipeline has been stalled for a while) and one on the switch.
extension FabricSimulator {
    /// From `start` on, `host`'s NIC pauses the switch port facing it and never resumes — or,
    /// with `nicWatchdog`, resumes after that long, as the NIC-side watchdog does. Call before
    /// `run()`. Returns false when `host` is not a host with a link to a switch.
    ///
    /// ```swift
    /// var simulator = FabricSimulator(scenario: incast)
    /// simulator.injectPauseStorm(fromHost: incast.nodeIndex(named: "R")!, at: .microseconds(500))
    /// let result = simulator.run()
    /// ```
    @discardableResult
    public mutating func injectPauseStorm(fromHost host: Int, at start: Nanoseconds, nicWatchdog: Nanoseconds? = nil) -> Bool {
        guard scenario.nodes.indices.contains(host), scenario.nodes[host].kind == .host,
              let hostPort = ports.firstIndex(where: { Int($0.node) == host }) else { return false }
        // The PFC event names the transmitter it stops: the switch's port towards the host.
        let switchPort = ports[hostPort].peer
        guard ports[Int(switchPort)].isSwitchPort else { return false }
        events.schedule(.priorityFlowControl(port: switchPort, pause: true), at: start.rawValue)
        if let nicWatchdog {
            events.schedule(.priorityFlowControl(port: switchPort, pause: false), at: start.rawValue + nicWatchdog.rawValue)
        }
        return true
    }
}
