/// Finds PFC deadlocks in progress: cycles of the buffer wait-for graph whose buffers are all
/// paused (full, sending XOFF upstream). A cycle with one buffer still draining is only a
/// CBD that may yet clear; all of them paused, nothing in the loop can move again by itself.
///
/// ```swift
/// let detector = DeadlockDetector(graph: BufferDependencyGraph(topology: topology))
/// let paused = PausedBuffers(snapshot: latest, previous: earlier, graph: detector.graph)
/// for deadlock in detector.detect(paused) { print(deadlock) }
/// ```
public struct DeadlockDetector: Sendable {
    public let graph: BufferDependencyGraph
    /// At most this many cycles per component are listed (a dense component has exponentially many).
    public var cycleLimitPerComponent = 64

    public init(graph: BufferDependencyGraph) { self.graph = graph }

    public func detect(_ paused: PausedBuffers) -> [Deadlock] {
        var deadlocks: [Deadlock] = []
        for priority in paused.byPriority.keys.sorted() {
            guard let members = paused.byPriority[priority], !members.isEmpty else { continue }
            let subgraph = PausedSubgraph(graph: graph, members: members)
            let components = StronglyConnectedComponents.cyclic(subgraph, vertexCount: subgraph.buffers.count, vertices: subgraph.buffers.indices)
            for component in components {
                let found = StronglyConnectedComponents.elementaryCycles(subgraph, of: component, limit: cycleLimitPerComponent, stepBudget: 1_000_000)
                for localCycle in found.cycles {
                    let cycle = localCycle.map { subgraph.buffers[$0] }
                    deadlocks.append(Deadlock(priority: priority, buffers: cycle.map { graph.buffer($0, priority: priority) },
                                              breakPoint: breakPoint(cycle, priority: priority),
                                              componentSize: component.count, listComplete: found.complete))
                }
            }
        }
        return deadlocks
    }

    /// Where to break a cycle: a down-then-up turn if the routing is up*/down* (the turn that
    /// should not exist: flooded or bounced lossless packets); otherwise the turn the fewest
    /// routes take (rerouting or dropping there disturbs the fewest flows).
    func breakPoint(_ cycle: [Int], priority: Int) -> Deadlock.BreakPoint {
        var best: (position: Int, routes: Int, reason: String)?
        for position in cycle.indices {
            let first = cycle[position], second = cycle[(position + 1) % cycle.count]
            let u = graph.source(of: first), x = graph.destination(of: first), y = graph.destination(of: second)
            if graph.topology.upDownRouting, !graph.upDownAllows(u, x, y) {
                best = (position, -1, "the turn goes down then up, which up*/down* routing forbids: lossless packets were flooded or bounced here")
                break
            }
            let routes = graph.routeCount(from: first, to: second) ?? Int.max
            if best == nil || routes < best!.routes {
                best = (position, routes, routes == Int.max ? "the first buffer of the cycle"
                        : "the turn fewest routes take (\(routes)): rerouting or dropping there disturbs the fewest flows")
            }
        }
        let chosen = best!
        let first = cycle[chosen.position], second = cycle[(chosen.position + 1) % cycle.count]
        let nodes = graph.topology.nodes
        return Deadlock.BreakPoint(node: nodes[graph.destination(of: first)].name,
                                   fromNode: nodes[graph.source(of: first)].name, ingressPort: graph.arrivalPort(of: first),
                                   toNode: nodes[graph.destination(of: second)].name, egressPort: graph.departurePort(of: second),
                                   priority: priority, reason: chosen.reason)
    }
}

/// The subgraph of full buffers, renumbered 0..<n so the search costs what is paused, not
/// what the fabric has.
struct PausedSubgraph: SuccessorGraph {
    let graph: BufferDependencyGraph
    let buffers: [Int]
    private let local: [Int: Int]

    init(graph: BufferDependencyGraph, members: Set<Int>) {
        self.graph = graph
        buffers = members.filter { graph.isBuffer($0) }.sorted()
        var local: [Int: Int] = [:]
        local.reserveCapacity(buffers.count)
        for (index, buffer) in buffers.enumerated() { local[buffer] = index }
        self.local = local
    }

    func successor(of vertex: Int, cursor: inout Int) -> Int? {
        while let next = graph.successor(of: buffers[vertex], cursor: &cursor) {
            if let index = local[next] { return index }
        }
        return nil
    }
}

/// A PFC deadlock in progress: a cycle of paused buffers, in wait-for order (each buffer
/// waits for room in the next; the last waits on the first).
public struct Deadlock: Sendable, Equatable, CustomStringConvertible {
    public var priority: Int
    public var buffers: [BufferReference]
    public var breakPoint: BreakPoint
    /// Paused buffers that wait on each other, this cycle among them.
    public var componentSize: Int
    /// False when the component had more cycles than were listed.
    public var listComplete: Bool

    public init(priority: Int, buffers: [BufferReference], breakPoint: BreakPoint, componentSize: Int, listComplete: Bool) {
        self.priority = priority
        self.buffers = buffers
        self.breakPoint = breakPoint
        self.componentSize = componentSize
        self.listComplete = listComplete
    }

    /// Stop forwarding `priority` at `node` from `fromNode` (arriving on `ingressPort`) to
    /// `toNode` (leaving on `egressPort`), or let a PFC watchdog drop that queue: the cycle
    /// then loses a link and drains.
    public struct BreakPoint: Sendable, Equatable, CustomStringConvertible {
        public var node: String
        public var fromNode: String
        public var ingressPort: String
        public var toNode: String
        public var egressPort: String
        public var priority: Int
        public var reason: String

        public init(node: String, fromNode: String, ingressPort: String, toNode: String, egressPort: String, priority: Int, reason: String) {
            self.node = node
            self.fromNode = fromNode
            self.ingressPort = ingressPort
            self.toNode = toNode
            self.egressPort = egressPort
            self.priority = priority
            self.reason = reason
        }

        public var description: String {
            "at \(node): stop priority \(priority) from \(fromNode) (port \(ingressPort)) to \(toNode) (port \(egressPort)) — \(reason)"
        }
    }

    public var description: String {
        "PFC deadlock, priority \(priority): " + buffers.map(\.description).joined(separator: " → ") + " → (back to the first); break it " + breakPoint.description
    }
}

/// Which buffers are paused (full: their switch sends XOFF upstream), per priority, as
/// directed links of a ``BufferDependencyGraph``.
public struct PausedBuffers: Sendable, Equatable {
    public var byPriority: [Int: Set<Int>]

    public init(byPriority: [Int: Set<Int>] = [:]) { self.byPriority = byPriority }

    /// A port's buffer counts as paused when its snapshot says so — the gauge
    /// `tx_prioN_paused` ≥ 1 on the switch port (it sends XOFF), or `rx_prioN_paused` ≥ 1 on the
    /// upstream port facing it (it is being paused) — or, given an earlier snapshot, when
    /// the pause durations (`tx_prioN_pause_duration` on the port, `rx_prioN_pause_duration`
    /// on its peer, in µs) grew by at least `fullyPausedShare` of the interval.
    public init(snapshot: CounterSnapshot, previous: CounterSnapshot? = nil, graph: BufferDependencyGraph, fullyPausedShare: Double = 0.99) {
        var byPriority: [Int: Set<Int>] = [:]
        let priorities = graph.topology.losslessPriorities
        let earlier = previous.map { Dictionary($0.ports.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first }) } ?? [:]
        let intervalMicroseconds = previous.map { Double((snapshot.time - $0.time).nanoseconds) / 1000 } ?? 0
        for port in snapshot.ports {
            // This port's own ingress buffer, and the one of its peer that this port feeds.
            guard let arriving = graph.link(arrivingAt: port.key.node, port: port.key.device) else { continue }
            let leaving = arriving ^ 1
            for priority in priorities {
                func fullyPaused(_ direction: String) -> Bool {
                    if (port.gauges["\(direction)_prio\(priority)_paused"] ?? 0) >= 1 { return true }
                    guard intervalMicroseconds > 0, let before = earlier[port.key],
                          let now = port.counters["\(direction)_prio\(priority)_pause_duration"],
                          let then = before.counters["\(direction)_prio\(priority)_pause_duration"], now >= then else { return false }
                    return Double(now - then) >= fullyPausedShare * intervalMicroseconds
                }
                if fullyPaused("tx") { byPriority[priority, default: []].insert(arriving) }
                if fullyPaused("rx"), graph.isBuffer(leaving) { byPriority[priority, default: []].insert(leaving) }
            }
        }
        self.byPriority = byPriority
    }
}
