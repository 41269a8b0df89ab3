import Congestion

// What switches do beyond forwarding by route: the seed paper's deadlock trigger (lossless
// packets flooded because a MAC table entry is missing) and the two switch-side mitigations
// (drop those packets instead; a PFC watchdog on each egress queue).
extension FabricScenario {
    /// A switch that has `host`'s ARP entry but not its MAC table entry (the MAC entry ages
    /// out after minutes, the ARP entry after hours, so a dead server leaves exactly this).
    /// The switch then cannot tell which port leads to `host`.
    public struct MissingMACEntry: Hashable, Sendable {
        public var switchNode: Int
        public var host: Int
        public init(switchNode: Int, host: Int) {
            self.switchNode = switchNode
            self.host = host
        }
    }

    /// What a switch does with a lossless packet whose destination MAC it does not know.
    public enum UnknownDestinationAction: String, Hashable, Sendable, CaseIterable {
        /// Ethernet's rule: send a copy out of every port but the one it came in by. Copies
        /// that go up to another switch take a down-then-up turn that up*/down* routing never
        /// makes, and so can close a cyclic buffer dependency.
        case flood
        /// The seed paper's fix: lossless packets are never flooded; they are dropped.
        case drop
    }

    /// Unknown-unicast handling of the lossless class.
    public struct UnknownUnicast: Hashable, Sendable {
        public var missingMACEntries: [MissingMACEntry]
        public var losslessAction: UnknownDestinationAction
        public init(missingMACEntries: [MissingMACEntry] = [], losslessAction: UnknownDestinationAction = .flood) {
            self.missingMACEntries = missingMACEntries
            self.losslessAction = losslessAction
        }
    }

    /// A switch-side PFC watchdog on every switch egress queue, in SONiC's stages with its
    /// `drop` action: a queue that holds packets and has been paused without a break for
    /// `detection` is in a storm — its packets are dropped and so is whatever arrives for it,
    /// so the buffers upstream drain and stop pausing their own neighbours; once no PAUSE has
    /// held it for `restoration`, the queue is lossless again.
    public struct PFCWatchdog: Hashable, Sendable {
        public var detection: Nanoseconds
        public var restoration: Nanoseconds
        public init(detection: Nanoseconds, restoration: Nanoseconds) {
            self.detection = detection
            self.restoration = restoration
        }
    }
}

extension FabricScenario {
    /// Per flow, where it meets the first switch on its route that lacks its destination's
    /// MAC entry: the position in `route`, or nil when every switch on it knows it.
    public func unknownDestinationPositions() -> [Int?] {
        let missing = Set(unknownUnicast.missingMACEntries.map { Int64($0.switchNode) << 32 | Int64($0.host) })
        return flows.map { flow in
            flow.route.indices.dropFirst().dropLast().first { missing.contains(Int64(flow.route[$0]) << 32 | Int64(flow.destination)) }
        }
    }

    /// The turns [upstream, switch, next switch] that flooded lossless packets take and that
    /// no route does: every other switch linked to a flooding switch, from each node a flow
    /// for the unknown destination arrives from. Empty when lossless packets are dropped.
    public func floodingTurns() -> [[Int]] {
        guard unknownUnicast.losslessAction == .flood else { return [] }
        var turns: [[Int]] = []
        var seen = Set<[Int]>()
        for (flow, position) in unknownDestinationPositions().enumerated() {
            guard let position else { continue }
            let upstream = flows[flow].route[position - 1], flooding = flows[flow].route[position]
            for link in links where link.nodeA == flooding || link.nodeB == flooding {
                let next = link.nodeA == flooding ? link.nodeB : link.nodeA
                guard next != upstream, nodes[next].kind == .switch, seen.insert([upstream, flooding, next]).inserted else { continue }
                turns.append([upstream, flooding, next])
            }
        }
        return turns
    }
}
