import Congestion

/// A discrete-event simulator of a lossless Ethernet fabric with DCQCN senders.
///
/// Hosts pace each flow at its DCQCN rate and answer CE marks with CNPs; switches forward by
/// each flow's route, mark ECN when a packet leaves an egress queue (RED on the queue left
/// behind it, as the first author's ns-3 code does), and send PFC PAUSE upstream when the
/// bytes buffered from one ingress port reach XOFF, RESUME when they fall to XON. A PAUSE
/// holds the upstream data transmitter until the RESUME arrives; the frame in flight
/// finishes. CNPs have strict priority and are never paused. Buffers are unbounded (the
/// class is lossless), and receivers consume at line rate, so hosts never send PAUSE.
/// Optionally (`FabricScenario.unknownUnicast`, `.pfcWatchdog`) switches flood or drop
/// lossless packets whose destination MAC they lack, and a PFC watchdog drops for queues
/// paused too long (`FabricSimulator+SwitchFaults.swift`).
///
/// ```swift
/// var simulator = FabricSimulator(scenario: .incast(senderCount: 8, linkRateBitsPerSecond: 40_000_000_000))
/// let result = simulator.run()
/// let summary = SimulationSummary(result)
/// print(summary.jainIndexAtEnd)
/// ```
public struct FabricSimulator {
    public let scenario: FabricScenario
    public private(set) var eventsProcessed = 0

    var now: Int64 = 0
    let end: Int64
    var events = EventQueue(capacity: 4096)
    var ports: [PortState] = []
    var flows: [FlowState] = []
    /// Every flow's egress ports, source to destination, back to back.
    var forwardPorts: [Int32] = []
    /// Every flow's egress ports for CNPs, destination to source, back to back.
    var reversePorts: [Int32] = []
    /// Host ports: the flows that leave through them.
    var hostPortFlows: [[Int32]] = []
    /// Each node's ports (transmitters), in link order: where a switch floods.
    var nodePorts: [[Int32]] = []
    let markingPoint: ECNMarkingPoint
    var random: SplitMix64
    var timeSeries: TimeSeries

    public init(scenario: FabricScenario) {
        self.scenario = scenario
        end = scenario.duration.rawValue
        markingPoint = ECNMarkingPoint(scenario.marking)
        random = SplitMix64(seed: scenario.seed)

        var portBetween: [Int: Int32] = [:]
        let nodeCount = scenario.nodes.count
        for link in scenario.links {
            for (from, to) in [(link.nodeA, link.nodeB), (link.nodeB, link.nodeA)] {
                let index = Int32(ports.count)
                portBetween[from * nodeCount + to] = index
                ports.append(PortState(
                    node: Int32(from),
                    peer: index ^ 1,
                    isSwitchPort: scenario.nodes[from].kind == .switch,
                    rateBitsPerSecond: link.rateBitsPerSecond,
                    propagationDelay: link.propagationDelay.rawValue
                ))
            }
        }
        hostPortFlows = Array(repeating: [], count: ports.count)
        nodePorts = Array(repeating: [], count: nodeCount)
        for (index, port) in ports.enumerated() { nodePorts[Int(port.node)].append(Int32(index)) }
        let unknownDestinationPositions = scenario.unknownDestinationPositions()
        for (index, flow) in scenario.flows.enumerated() {
            let route = flow.route
            let forwardOffset = forwardPorts.count
            for hop in 0..<(route.count - 1) { forwardPorts.append(portBetween[route[hop] * nodeCount + route[hop + 1]]!) }
            let reverseOffset = reversePorts.count
            for hop in stride(from: route.count - 1, to: 0, by: -1) { reversePorts.append(portBetween[route[hop] * nodeCount + route[hop - 1]]!) }
            let firstPort = forwardPorts[forwardOffset]
            hostPortFlows[Int(firstPort)].append(Int32(index))
            let lineRate = Double(ports[Int(firstPort)].rateBitsPerSecond)
            flows.append(FlowState(
                firstPort: firstPort,
                forwardOffset: forwardOffset,
                reverseOffset: reverseOffset,
                lineRateBitsPerSecond: lineRate,
                reactionPoint: ReactionPoint(parameters: scenario.dcqcn, lineRateBitsPerSecond: lineRate),
                notificationPoint: NotificationPoint(parameters: scenario.dcqcn),
                remainingBytes: flow.sizeBytes.map(Int64.init) ?? .max,
                unknownDestinationHop: unknownDestinationPositions[index] ?? -1
            ))
        }
        timeSeries = TimeSeries(flowCount: flows.count, portCount: ports.count)
    }

    /// Runs the scenario to its end and reports. A simulator runs once.
    public mutating func run() -> SimulationResult {
        precondition(eventsProcessed == 0 && now == 0, "a FabricSimulator runs once; make a new one")
        for (index, flow) in scenario.flows.enumerated() {
            events.schedule(.flowStart(flow: Int32(index)), at: flow.start.rawValue)
            if let stop = flow.stop { events.schedule(.flowStop(flow: Int32(index)), at: stop.rawValue) }
        }
        events.schedule(.sample, at: min(scenario.sampleInterval.rawValue, end))
        while let time = events.firstTime, time <= end {
            let scheduled = events.popFirst()!
            now = scheduled.time
            eventsProcessed += 1
            switch scheduled.event {
            case .transmitComplete(let port):
                ports[Int(port)].transmitting = false
                serviceTransmitter(Int(port))
            case .arrival(let port, let packet):
                receive(packet, at: Int(port))
            case .hostWakeup(let port):
                if ports[Int(port)].wakeupAt == now { ports[Int(port)].wakeupAt = .max }
                serviceTransmitter(Int(port))
            case .priorityFlowControl(let port, let pause):
                applyPriorityFlowControl(pause: pause, to: Int(port))
            case .watchdogCheck(let port):
                checkWatchdog(Int(port))
            case .watchdogRestore(let port):
                restoreWatchdog(Int(port))
            case .reactionPointTimer(let flow):
                fireReactionPointTimer(Int(flow))
            case .flowStart(let flow):
                startFlow(Int(flow))
            case .flowStop(let flow):
                flows[Int(flow)].sending = false
            case .sample:
                recordSample()
                if now < end { events.schedule(.sample, at: min(now + scenario.sampleInterval.rawValue, end)) }
            }
        }
        now = end
        return makeResult()
    }

    @inline(__always)
    mutating func schedule(_ event: SimulationEvent, after delay: Int64) {
        events.schedule(event, at: now + delay)
    }
}
