import Foundation

/// Switches, hosts, the links between their ports, and how packets are routed — what the
/// deadlock detector needs to know which buffers wait on which.
///
/// ## Format (a snapshot file's `topology`, or a file of its own with `--topology`)
/// ```json
/// { "switches": ["S1", "S2", "S3"], "hosts": ["H1"],
///   "links": [ { "between": ["S1", "S2"], "ports": ["Ethernet0", "Ethernet4"] },
///              { "between": ["H1", "S1"] } ],
///   "losslessPriorities": [3],
///   "routes": [ ["H1", "S1", "S2", "S3"] ],
///   "turns":  [ ["S3", "S1", "S2"] ],
///   "levels": { "S1": 0, "S2": 1 } }
/// ```
/// - `links`: full duplex; `ports` names each end's port (default: the peer's node name), the
///   names a snapshot's `device` uses for switch ports.
/// - routing, at least one of: `routes` (node paths; each consecutive U→X→Y with X and Y
///   switches makes X's ingress buffer from U wait on Y's ingress buffer from X), `turns`
///   (those dependencies given directly as [U, X, Y]: an explicit buffer dependency graph),
///   `levels` (up*/down* routing: every turn is allowed except down-then-up, with level 0
///   at the bottom, e.g. ToR 0, leaf 1, spine 2; every switch needs a level).
/// - `losslessPriorities`: the PFC priorities whose buffers can pause (default [3]).
/// Limits: 1,000,000 nodes, 4,000,000 links, 1,000,000 routes of at most 64 hops.
public struct FabricTopology: Sendable {
    public enum NodeKind: String, Sendable { case host, `switch` }

    public struct Node: Sendable, Equatable {
        public var name: String
        public var kind: NodeKind
        /// The up*/down* level, when routing is up*/down*.
        public var level: Int?
    }

    public struct Link: Sendable, Equatable {
        public var nodeA: Int
        public var nodeB: Int
        public var portA: String
        public var portB: String
    }

    public var nodes: [Node]
    public var links: [Link]
    public var losslessPriorities: [Int]
    /// Node paths.
    public var routes: [[Int]]
    /// Explicit dependencies [U, X, Y].
    public var turns: [[Int]]
    /// True when `levels` were given: turns are allowed unless they go down then up.
    public var upDownRouting: Bool

    let nodeIndexByName: [String: Int]

    public init(nodes: [Node], links: [Link], losslessPriorities: [Int] = [3], routes: [[Int]] = [], turns: [[Int]] = [], upDownRouting: Bool = false) {
        self.nodes = nodes
        self.links = links
        self.losslessPriorities = losslessPriorities
        self.routes = routes
        self.turns = turns
        self.upDownRouting = upDownRouting
        var index: [String: Int] = [:]
        for (position, node) in nodes.enumerated() where index[node.name] == nil { index[node.name] = position }
        nodeIndexByName = index
    }

    public func nodeIndex(named name: String) -> Int? { nodeIndexByName[name] }

    public static func load(path: String) throws(MonitorError) -> FabricTopology {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MonitorError("topology \(path)", "cannot read the file (missing or not readable)")
        }
        let document = "topology \(path)"
        return try decode(try JSONValue.parse(data, document: document), path: "", document: document)
    }

    static func decode(_ value: JSONValue, path: String, document: String) throws(MonitorError) -> FabricTopology {
        let reader = try JSONObjectReader(value, path: path, document: document,
                                          allowedKeys: ["switches", "hosts", "links", "losslessPriorities", "routes", "turns", "levels"])
        var nodes: [Node] = []
        var indexByName: [String: Int] = [:]
        for (key, kind) in [("switches", NodeKind.switch), ("hosts", .host)] {
            for (position, name) in try reader.stringList(key, maximumCount: 1_000_000).enumerated() {
                guard indexByName[name] == nil else { throw reader.error("\(key)[\(position)]", "\"\(name)\" is named twice") }
                indexByName[name] = nodes.count
                nodes.append(Node(name: name, kind: kind))
            }
        }
        guard nodes.contains(where: { $0.kind == .switch }) else { throw reader.error("switches", "at least one switch is needed") }
        func node(_ name: String, _ field: String) throws(MonitorError) -> Int {
            guard let index = indexByName[name] else { throw reader.error(field, "unknown node \"\(name)\" (not in switches or hosts)") }
            return index
        }

        var links: [Link] = []
        var portsInUse = Set<String>()
        for (position, item) in try reader.optionalArray("links", maximumCount: 4_000_000).enumerated() {
            let link = try JSONObjectReader(item, path: reader.fieldPath("links[\(position)]"), document: document, allowedKeys: ["between", "ports"])
            let ends = try link.stringList("between", maximumCount: 2)
            guard ends.count == 2 else { throw link.error("between", "expected two node names") }
            let a = try node(ends[0], "links[\(position)].between[0]")
            let b = try node(ends[1], "links[\(position)].between[1]")
            guard a != b else { throw link.error("between", "a link joins two different nodes") }
            var ports = [ends[1], ends[0]]
            if link.has("ports") {
                ports = try link.stringList("ports", maximumCount: 2)
                guard ports.count == 2 else { throw link.error("ports", "expected two port names, one per end") }
            }
            for (end, port) in zip([a, b], ports) where !portsInUse.insert("\(end)\u{0}\(port)").inserted {
                throw link.error("ports", "port \(nodes[end].name)/\(port) is used by two links")
            }
            links.append(Link(nodeA: a, nodeB: b, portA: ports[0], portB: ports[1]))
        }

        var priorities = [3]
        if reader.has("losslessPriorities") {
            priorities = []
            for (position, item) in try reader.array("losslessPriorities", maximumCount: 8).enumerated() {
                let priority = try JSONObjectReader.integer(item, in: 0...7) { problem in reader.error("losslessPriorities[\(position)]", problem) }
                if !priorities.contains(Int(priority)) { priorities.append(Int(priority)) }
            }
            guard !priorities.isEmpty else { throw reader.error("losslessPriorities", "name at least one priority 0…7") }
        }

        var linked = Set<Int64>()
        for link in links {
            linked.insert(Int64(link.nodeA) << 32 | Int64(link.nodeB))
            linked.insert(Int64(link.nodeB) << 32 | Int64(link.nodeA))
        }
        func paths(_ key: String, exactLength: Int?) throws(MonitorError) -> [[Int]] {
            var result: [[Int]] = []
            for (position, item) in try reader.optionalArray(key, maximumCount: 1_000_000).enumerated() {
                guard case .array(let hops) = item, hops.count >= 2, hops.count <= 64 else {
                    throw reader.error("\(key)[\(position)]", exactLength.map { "expected a list of \($0) node names" } ?? "expected a list of 2 to 64 node names")
                }
                if let exactLength, hops.count != exactLength { throw reader.error("\(key)[\(position)]", "expected a list of \(exactLength) node names") }
                var path: [Int] = []
                for (hopIndex, hop) in hops.enumerated() {
                    guard case .string(let name) = hop else { throw reader.error("\(key)[\(position)][\(hopIndex)]", "expected a node name") }
                    let index = try node(name, "\(key)[\(position)][\(hopIndex)]")
                    if let last = path.last, !linked.contains(Int64(last) << 32 | Int64(index)) {
                        throw reader.error("\(key)[\(position)][\(hopIndex)]", "no link between \(nodes[last].name) and \(name)")
                    }
                    path.append(index)
                }
                result.append(path)
            }
            return result
        }
        let routes = try paths("routes", exactLength: nil)
        let turns = try paths("turns", exactLength: 3)
        for (position, turn) in turns.enumerated() where nodes[turn[1]].kind != .switch || nodes[turn[2]].kind != .switch {
            throw reader.error("turns[\(position)]", "the last two nodes of a turn must be switches (only switch buffers pause)")
        }

        let levels = try reader.map("levels", maximumCount: 1_000_000) { (value, error) throws(MonitorError) -> Int64 in
            try JSONObjectReader.integer(value, in: 0...1000, error: error)
        }
        for (name, level) in levels {
            nodes[try node(name, "levels.\(name)")].level = Int(level)
        }
        if !levels.isEmpty, let missing = nodes.first(where: { $0.kind == .switch && $0.level == nil }) {
            throw reader.error("levels", "switch \(missing.name) has no level (up*/down* routing needs every switch's)")
        }
        guard !routes.isEmpty || !turns.isEmpty || !levels.isEmpty else {
            throw reader.error("routes", "give the routing: routes, turns (buffer dependencies) or levels (up*/down*)")
        }
        return FabricTopology(nodes: nodes, links: links, losslessPriorities: priorities, routes: routes, turns: turns, upDownRouting: !levels.isEmpty)
    }

    /// The topology as the JSON `decode` reads.
    public func encoded() -> String {
        func names(_ indices: [Int]) -> String { "[" + indices.map { jsonString(nodes[$0].name) }.joined(separator: ", ") + "]" }
        var parts: [String] = []
        parts.append("\"switches\": [" + nodes.filter { $0.kind == .switch }.map { jsonString($0.name) }.joined(separator: ", ") + "]")
        parts.append("\"hosts\": [" + nodes.filter { $0.kind == .host }.map { jsonString($0.name) }.joined(separator: ", ") + "]")
        parts.append("\"links\": [" + links.map {
            "{\"between\": \(names([$0.nodeA, $0.nodeB])), \"ports\": [\(jsonString($0.portA)), \(jsonString($0.portB))]}"
        }.joined(separator: ", ") + "]")
        parts.append("\"losslessPriorities\": [" + losslessPriorities.map(String.init).joined(separator: ", ") + "]")
        if !routes.isEmpty { parts.append("\"routes\": [" + routes.map(names).joined(separator: ", ") + "]") }
        if !turns.isEmpty { parts.append("\"turns\": [" + turns.map(names).joined(separator: ", ") + "]") }
        if upDownRouting {
            parts.append("\"levels\": {" + nodes.compactMap { node in node.level.map { "\(jsonString(node.name)): \($0)" } }.joined(separator: ", ") + "}")
        }
        return "{ " + parts.joined(separator: ",\n    ") + " }"
    }
}

extension FabricTopology {
    /// A k-ary fat-tree (Al-Fares et al.): k pods of k/2 edge and k/2 aggregation switches,
    /// (k/2)² core switches, up*/down* routing; no hosts (host buffers cannot be in a cycle).
    /// k = 90 gives 10,125 switches and 364,500 links. `bounces` adds down-then-up turns
    /// (what flooded lossless packets do) as explicit turns.
    ///
    /// ```swift
    /// let fabric = FabricTopology.fatTree(k: 4)
    /// print(CyclicDependencyCheck(topology: fabric).run().isFree)   // true
    /// ```
    public static func fatTree(k: Int) -> FabricTopology {
        precondition(k >= 2 && k % 2 == 0, "a fat-tree needs an even k ≥ 2")
        let half = k / 2
        var nodes: [Node] = []
        func edge(_ pod: Int, _ i: Int) -> Int { pod * k + i }
        func aggregation(_ pod: Int, _ i: Int) -> Int { pod * k + half + i }
        for pod in 0..<k {
            for i in 0..<half { nodes.append(Node(name: "e\(pod)_\(i)", kind: .switch, level: 0)) }
            for i in 0..<half { nodes.append(Node(name: "a\(pod)_\(i)", kind: .switch, level: 1)) }
        }
        let coreBase = nodes.count
        for i in 0..<(half * half) { nodes.append(Node(name: "c\(i)", kind: .switch, level: 2)) }
        var links: [Link] = []
        links.reserveCapacity(k * k * k / 2)
        for pod in 0..<k {
            for e in 0..<half {
                for a in 0..<half {
                    links.append(Link(nodeA: edge(pod, e), nodeB: aggregation(pod, a), portA: "p\(half + a)", portB: "p\(e)"))
                }
            }
            for a in 0..<half {
                for c in 0..<half {
                    let core = coreBase + a * half + c
                    links.append(Link(nodeA: aggregation(pod, a), nodeB: core, portA: "p\(half + c)", portB: "p\(pod)"))
                }
            }
        }
        return FabricTopology(nodes: nodes, links: links, upDownRouting: true)
    }
}
