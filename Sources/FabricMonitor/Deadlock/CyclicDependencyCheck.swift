/// The static check: does the routing admit any cyclic buffer dependency (CBD), before
/// anything deadlocks? A CBD is a cycle in the buffer wait-for graph; up*/down* routing on a
/// Clos/fat-tree has none, a ring with shortest-path routes has one, and so does a Clos
/// where lossless packets may take a down-then-up turn (flooding, a bounce).
///
/// ```swift
/// let report = CyclicDependencyCheck(graph: BufferDependencyGraph(topology: fabric)).run()
/// if !report.isFree { print(report.cycles[0]) }
/// ```
public struct CyclicDependencyCheck: Sendable {
    public let graph: BufferDependencyGraph

    public init(graph: BufferDependencyGraph) { self.graph = graph }
    public init(topology: FabricTopology) { graph = BufferDependencyGraph(topology: topology) }

    public struct Report: Sendable {
        /// Buffers (switch ingress ports) the check looked at, per priority.
        public var buffers: Int
        /// Groups of buffers that wait on each other (strongly connected components).
        public var componentSizes: [Int]
        /// One shortest cycle per component, as buffers in wait-for order (priority: the
        /// first lossless one; every lossless priority has the same cycles).
        public var cycles: [[BufferReference]]
        public var isFree: Bool { cycles.isEmpty }
    }

    public func run() -> Report {
        let count = graph.directedLinkCount
        let components = StronglyConnectedComponents.cyclic(graph, vertexCount: count, vertices: (0..<count).lazy.filter { graph.isBuffer($0) })
        let priority = graph.topology.losslessPriorities.first ?? 3
        let cycles = components.map { component in
            StronglyConnectedComponents.shortestCycle(graph, through: component[0], members: Set(component))
                .map { graph.buffer($0, priority: priority) }
        }
        return Report(buffers: (0..<count).reduce(0) { $0 + (graph.isBuffer($1) ? 1 : 0) },
                      componentSizes: components.map(\.count), cycles: cycles)
    }
}
