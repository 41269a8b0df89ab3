/// A directed graph walked by cursor: `successor(of:cursor:)` returns the next successor
/// from `cursor` (start at 0) and advances it, nil when there are no more. Generic rather
/// than a closure so the 40-million-edge static check is specialised and inlined.
protocol SuccessorGraph {
    func successor(of vertex: Int, cursor: inout Int) -> Int?
}

extension BufferDependencyGraph: SuccessorGraph {}

/// Tarjan's algorithm, iterative (a recursive one overflows the stack on a 700,000-vertex
/// fabric), over a graph given by a successor cursor. Returns only the components that can
/// hold a cycle: more than one vertex, or one vertex with an edge to itself.
enum StronglyConnectedComponents {
    static func cyclic<Graph: SuccessorGraph>(_ graph: Graph, vertexCount: Int, vertices: some Sequence<Int>) -> [[Int]] {
        let unvisited: Int32 = -1
        var index = [Int32](repeating: unvisited, count: vertexCount)
        var lowLink = [Int32](repeating: 0, count: vertexCount)
        var onStack = [Bool](repeating: false, count: vertexCount)
        var stack: [Int32] = []
        var frames: [(vertex: Int, cursor: Int)] = []
        var nextIndex: Int32 = 0
        var components: [[Int]] = []

        for root in vertices where index[root] == unvisited {
            frames.append((root, 0))
            index[root] = nextIndex; lowLink[root] = nextIndex; nextIndex += 1
            stack.append(Int32(root)); onStack[root] = true
            while !frames.isEmpty {
                let top = frames.count - 1
                let vertex = frames[top].vertex
                var cursor = frames[top].cursor
                let next = graph.successor(of: vertex, cursor: &cursor)
                frames[top].cursor = cursor
                if let next {
                    if index[next] == unvisited {
                        index[next] = nextIndex; lowLink[next] = nextIndex; nextIndex += 1
                        stack.append(Int32(next)); onStack[next] = true
                        frames.append((next, 0))
                    } else if onStack[next] {
                        lowLink[vertex] = min(lowLink[vertex], index[next])
                    }
                    continue
                }
                frames.removeLast()
                if let parent = frames.last?.vertex { lowLink[parent] = min(lowLink[parent], lowLink[vertex]) }
                guard lowLink[vertex] == index[vertex] else { continue }
                var component: [Int] = []
                while true {
                    let member = Int(stack.removeLast())
                    onStack[member] = false
                    component.append(member)
                    if member == vertex { break }
                }
                if component.count > 1 || hasSelfLoop(vertex, graph) { components.append(component.sorted()) }
            }
        }
        return components
    }

    private static func hasSelfLoop<Graph: SuccessorGraph>(_ vertex: Int, _ graph: Graph) -> Bool {
        var cursor = 0
        while let next = graph.successor(of: vertex, cursor: &cursor) { if next == vertex { return true } }
        return false
    }

    /// A shortest cycle through `start` inside `members` (breadth-first), in edge order.
    static func shortestCycle<Graph: SuccessorGraph>(_ graph: Graph, through start: Int, members: Set<Int>) -> [Int] {
        var previous: [Int: Int] = [:]
        var frontier = [start]
        while !frontier.isEmpty {
            var nextFrontier: [Int] = []
            for vertex in frontier {
                var cursor = 0
                while let next = graph.successor(of: vertex, cursor: &cursor) {
                    guard members.contains(next) else { continue }
                    if next == start {
                        var cycle = [vertex]
                        while cycle[cycle.count - 1] != start { cycle.append(previous[cycle[cycle.count - 1]]!) }
                        return cycle.reversed()
                    }
                    if previous[next] == nil, next != start {
                        previous[next] = vertex
                        nextFrontier.append(next)
                    }
                }
            }
            frontier = nextFrontier
        }
        return []
    }

    /// Elementary cycles of one component (each once, starting at its smallest vertex), by
    /// depth-first search from each vertex through larger ones only; stops at `limit` cycles
    /// or `stepBudget` edges looked at, so a dense component cannot run away.
    static func elementaryCycles<Graph: SuccessorGraph>(_ graph: Graph, of members: [Int], limit: Int, stepBudget: Int) -> (cycles: [[Int]], complete: Bool) {
        let memberSet = Set(members)
        var cycles: [[Int]] = []
        var steps = 0
        for start in members.sorted() {
            var path = [start]
            var onPath: Set<Int> = [start]
            var cursors = [0]
            while !path.isEmpty {
                let vertex = path[path.count - 1]
                var cursor = cursors[cursors.count - 1]
                let next = graph.successor(of: vertex, cursor: &cursor)
                cursors[cursors.count - 1] = cursor
                steps += 1
                if steps > stepBudget || cycles.count >= limit { return (cycles, false) }
                guard let next else {
                    onPath.remove(vertex)
                    path.removeLast()
                    cursors.removeLast()
                    continue
                }
                if next == start {
                    cycles.append(path)
                } else if next > start, memberSet.contains(next), !onPath.contains(next) {
                    path.append(next)
                    onPath.insert(next)
                    cursors.append(0)
                }
            }
        }
        return (cycles, true)
    }
}
