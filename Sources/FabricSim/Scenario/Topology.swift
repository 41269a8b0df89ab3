/// Adjacency of a scenario's nodes, for checking routes and finding shortest ones.
struct Topology {
    /// Neighbours of each node in link order, so that ties between equal paths break the
    /// same way on every run.
    private(set) var neighbours: [[Int]]

    init(nodeCount: Int, links: [FabricScenario.Link]) {
        neighbours = Array(repeating: [], count: nodeCount)
        for link in links {
            neighbours[link.nodeA].append(link.nodeB)
            neighbours[link.nodeB].append(link.nodeA)
        }
    }

    func areLinked(_ a: Int, _ b: Int) -> Bool { neighbours[a].contains(b) }

    /// Fewest hops from `source` to `destination` whose intermediate nodes all satisfy
    /// `through`; nil when there is none.
    func shortestPath(from source: Int, to destination: Int, through: (Int) -> Bool) -> [Int]? {
        var previous = Array(repeating: -1, count: neighbours.count)
        var frontier = [source]
        previous[source] = source
        while !frontier.isEmpty {
            var next: [Int] = []
            for node in frontier {
                for neighbour in neighbours[node] where previous[neighbour] < 0 {
                    previous[neighbour] = node
                    if neighbour == destination {
                        var path = [destination]
                        while path[path.count - 1] != source { path.append(previous[path[path.count - 1]]) }
                        return path.reversed()
                    }
                    if through(neighbour) { next.append(neighbour) }
                }
            }
            frontier = next
        }
        return nil
    }
}
