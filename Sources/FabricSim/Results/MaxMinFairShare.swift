/// The max-min fair rate of each flow over the links it crosses, by progressive filling:
/// raise all unfrozen flows together until some link is full, freeze the flows crossing it,
/// repeat. This is the "fair share" a victim flow's throughput is compared with.
///
/// ```swift
/// // Two flows share link 0 (10 Gb/s); the second also crosses link 1 (2 Gb/s).
/// maxMinFairShares(routes: [[0], [0, 1]], capacities: [10e9, 2e9])   // [8e9, 2e9]
/// ```
///
/// - Parameters:
///   - routes: for each flow, the indices of the links (transmitters) it crosses.
///   - capacities: bits per second of each link.
public func maxMinFairShares(routes: [[Int]], capacities: [Double]) -> [Double] {
    var shares = Array(repeating: 0.0, count: routes.count)
    var frozen = Array(repeating: false, count: routes.count)
    var remaining = capacities
    while frozen.contains(false) {
        var users = Array(repeating: 0, count: capacities.count)
        for (flow, route) in routes.enumerated() where !frozen[flow] {
            for link in Set(route) { users[link] += 1 }
        }
        var increment = Double.infinity
        for link in capacities.indices where users[link] > 0 {
            increment = min(increment, remaining[link] / Double(users[link]))
        }
        guard increment.isFinite else { break }  // flows that cross no link
        for (flow, route) in routes.enumerated() where !frozen[flow] {
            shares[flow] += increment
            for link in Set(route) { remaining[link] -= increment }
        }
        for (flow, route) in routes.enumerated() where !frozen[flow] {
            if route.contains(where: { remaining[$0] <= capacities[$0] * 1e-12 }) { frozen[flow] = true }
        }
    }
    return shares
}
