/// The buffer wait-for graph of a fabric, one vertex per directed link that ends at a switch:
/// the ingress buffer of that switch's port, fed by the link's upstream node. An edge from
/// buffer (U→X) to buffer (X→Y) means packets held in X's buffer from U wait for room in Y's
/// buffer from X — a turn U→X→Y that routing allows. Priorities share the graph (a packet
/// keeps its priority), so one graph serves every lossless priority.
///
/// Successors are computed on demand from the routing (explicit turns, and up*/down* levels),
/// so a 10,000-switch fat-tree needs no edge list in memory.
public struct BufferDependencyGraph: Sendable {
    public let topology: FabricTopology
    /// Directed links leaving each node (CSR: `outgoing[outgoingStart[n]..<outgoingStart[n+1]]`).
    private let outgoingStart: [Int32]
    private let outgoing: [Int32]
    /// Explicit turns (from routes and `turns`), CSR by incoming directed link, with how many
    /// routes use each (0 for a turn given only in `turns`).
    private let explicitStart: [Int32]
    private let explicitTarget: [Int32]
    let explicitRouteCount: [Int32]
    /// Each directed link's ends, flat: the topology's Link structs carry port names and are
    /// too wide to walk 40 million times in the static check.
    private let sources: [Int32]
    private let destinations: [Int32]
    private let levels: [Int32]
    private let isSwitch: [Bool]
    /// (node << 32 | peer) → the first directed link from node to peer.
    private let linkBetween: [Int64: Int32]
    /// "node\0port" → the directed link arriving at node through that port.
    private let linkArrivingAt: [String: Int32]

    public init(topology: FabricTopology) {
        self.topology = topology
        let nodeCount = topology.nodes.count
        let directedCount = topology.links.count * 2
        var degree = [Int32](repeating: 0, count: nodeCount + 1)
        for link in topology.links {
            degree[link.nodeA + 1] += 1
            degree[link.nodeB + 1] += 1
        }
        for node in 0..<nodeCount { degree[node + 1] += degree[node] }
        var fill = degree
        var outgoing = [Int32](repeating: 0, count: directedCount)
        var linkBetween: [Int64: Int32] = [:]
        var linkArrivingAt: [String: Int32] = [:]
        linkBetween.reserveCapacity(directedCount)
        linkArrivingAt.reserveCapacity(directedCount)
        for (index, link) in topology.links.enumerated() {
            let forward = Int32(index * 2), backward = Int32(index * 2 + 1)
            outgoing[Int(fill[link.nodeA])] = forward; fill[link.nodeA] += 1
            outgoing[Int(fill[link.nodeB])] = backward; fill[link.nodeB] += 1
            let keyForward = Int64(link.nodeA) << 32 | Int64(link.nodeB)
            let keyBackward = Int64(link.nodeB) << 32 | Int64(link.nodeA)
            if linkBetween[keyForward] == nil { linkBetween[keyForward] = forward }
            if linkBetween[keyBackward] == nil { linkBetween[keyBackward] = backward }
            linkArrivingAt["\(topology.nodes[link.nodeB].name)\u{0}\(link.portB)"] = forward
            linkArrivingAt["\(topology.nodes[link.nodeA].name)\u{0}\(link.portA)"] = backward
        }
        outgoingStart = degree
        self.outgoing = outgoing
        var sources = [Int32](repeating: 0, count: directedCount)
        var destinations = [Int32](repeating: 0, count: directedCount)
        for (index, link) in topology.links.enumerated() {
            sources[index * 2] = Int32(link.nodeA); destinations[index * 2] = Int32(link.nodeB)
            sources[index * 2 + 1] = Int32(link.nodeB); destinations[index * 2 + 1] = Int32(link.nodeA)
        }
        self.sources = sources
        self.destinations = destinations
        self.linkBetween = linkBetween
        self.linkArrivingAt = linkArrivingAt
        levels = topology.nodes.map { node in Int32(node.level ?? (node.kind == .host ? -1 : 0)) }
        isSwitch = topology.nodes.map { $0.kind == .switch }

        // Explicit turns: every U→X→Y of every route (X, Y switches) and every given turn.
        var counts: [Int64: Int32] = [:]
        func add(_ u: Int, _ x: Int, _ y: Int, routes: Int32) {
            guard let first = linkBetween[Int64(u) << 32 | Int64(x)], let second = linkBetween[Int64(x) << 32 | Int64(y)],
                  topology.nodes[x].kind == .switch, topology.nodes[y].kind == .switch else { return }
            counts[Int64(first) << 32 | Int64(second), default: 0] += routes
        }
        for route in topology.routes where route.count >= 3 {
            for hop in 0..<(route.count - 2) { add(route[hop], route[hop + 1], route[hop + 2], routes: 1) }
        }
        for turn in topology.turns { add(turn[0], turn[1], turn[2], routes: 0) }
        let sorted = counts.sorted { $0.key < $1.key }
        var start = [Int32](repeating: 0, count: directedCount + 1)
        for (key, _) in sorted { start[Int(key >> 32) + 1] += 1 }
        for link in 0..<directedCount { start[link + 1] += start[link] }
        explicitStart = start
        explicitTarget = sorted.map { Int32(truncatingIfNeeded: $0.key & 0xFFFF_FFFF) }
        explicitRouteCount = sorted.map(\.value)
    }

    /// How many vertex slots there are (directed links); not all are buffers.
    public var directedLinkCount: Int { topology.links.count * 2 }

    @inline(__always) public func source(of link: Int) -> Int { Int(sources[link]) }

    @inline(__always) public func destination(of link: Int) -> Int { Int(destinations[link]) }

    /// The port of `destination(of:)` the link arrives at: the buffer's port.
    public func arrivalPort(of link: Int) -> String {
        let undirected = topology.links[link >> 1]
        return link & 1 == 0 ? undirected.portB : undirected.portA
    }

    /// The port of `source(of:)` the link leaves from.
    public func departurePort(of link: Int) -> String {
        let undirected = topology.links[link >> 1]
        return link & 1 == 0 ? undirected.portA : undirected.portB
    }

    /// A buffer is a switch's ingress buffer; links into hosts carry none that can pause.
    @inline(__always) public func isBuffer(_ link: Int) -> Bool { isSwitch[destination(of: link)] }

    /// The directed link arriving at `node` through `port`, if the topology has it.
    public func link(arrivingAt node: String, port: String) -> Int? {
        linkArrivingAt["\(node)\u{0}\(port)"].map(Int.init)
    }

    public func link(from source: Int, to destination: Int) -> Int? {
        linkBetween[Int64(source) << 32 | Int64(destination)].map(Int.init)
    }

    /// Whether up*/down* routing allows U→X→Y (down then up is the forbidden turn).
    @inline(__always) func upDownAllows(_ u: Int, _ x: Int, _ y: Int) -> Bool {
        u != y && isSwitch[y] && !(levels[u] > levels[x] && levels[y] > levels[x])
    }

    /// The next successor of `link` from `cursor` (start at 0), or nil when there are no more.
    /// Explicit turns come first, then (with up*/down* routing) every allowed turn.
    @inline(__always)
    public func successor(of link: Int, cursor: inout Int) -> Int? {
        let explicitBegin = Int(explicitStart[link]), explicitCount = Int(explicitStart[link + 1]) - explicitBegin
        if cursor < explicitCount {
            defer { cursor += 1 }
            return Int(explicitTarget[explicitBegin + cursor])
        }
        guard topology.upDownRouting else { return nil }
        let x = destination(of: link), u = source(of: link)
        let begin = Int(outgoingStart[x]), end = Int(outgoingStart[x + 1])
        while begin + cursor - explicitCount < end {
            let candidate = Int(outgoing[begin + cursor - explicitCount])
            cursor += 1
            if upDownAllows(u, x, destination(of: candidate)) { return candidate }
        }
        return nil
    }

    /// How many routes take the turn first→second (0: not an explicit turn, or given in `turns`).
    func routeCount(from first: Int, to second: Int) -> Int? {
        let begin = Int(explicitStart[first]), end = Int(explicitStart[first + 1])
        for position in begin..<end where Int(explicitTarget[position]) == second { return Int(explicitRouteCount[position]) }
        return nil
    }

    /// The buffer as people name it.
    public func buffer(_ link: Int, priority: Int) -> BufferReference {
        BufferReference(node: topology.nodes[destination(of: link)].name, port: arrivalPort(of: link),
                        upstream: topology.nodes[source(of: link)].name, priority: priority)
    }
}

/// One switch ingress buffer: `node`'s `port`, fed by `upstream`, for one priority.
public struct BufferReference: Hashable, Sendable, CustomStringConvertible {
    public var node: String
    public var port: String
    public var upstream: String
    public var priority: Int

    public init(node: String, port: String, upstream: String, priority: Int) {
        self.node = node
        self.port = port
        self.upstream = upstream
        self.priority = priority
    }

    public var description: String { "\(node)/\(port)←\(upstream) prio \(priority)" }
}
