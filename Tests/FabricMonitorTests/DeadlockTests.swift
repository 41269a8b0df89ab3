import Foundation
import Testing
@testable import FabricMonitor

@Suite struct DeadlockTests {
    /// The seed paper's 4-switch case: two ToRs under two leaves, up*/down* routing, and
    /// lossless packets flooded down-then-up at both ToRs.
    static func seedPaperTopology(flooding: Bool) throws -> FabricTopology {
        let turns = flooding ? #", "turns": [["La", "T1", "Lb"], ["Lb", "T0", "La"]]"# : ""
        let text = """
        { "switches": ["T0", "T1", "La", "Lb"],
          "links": [ { "between": ["T0", "La"] }, { "between": ["T0", "Lb"] }, { "between": ["T1", "La"] }, { "between": ["T1", "Lb"] } ],
          "levels": { "T0": 0, "T1": 0, "La": 1, "Lb": 1 }\(turns) }
        """
        return try FabricTopology.decode(try JSONValue.parse(Data(text.utf8), document: "topology"), path: "", document: "topology")
    }

    @Test func ringRoutesAdmitACyclicBufferDependency() throws {
        let file = try SnapshotFile.decode(Data(Fixtures.ringSnapshot(paused: [false, false, false]).utf8))
        let report = CyclicDependencyCheck(topology: try #require(file.topology)).run()
        #expect(!report.isFree)
        #expect(report.componentSizes == [3])
        #expect(report.cycles.first?.map(\.description) == ["S2/S1←S1 prio 3", "S3/S2←S2 prio 3", "S1/S3←S3 prio 3"])
        #expect(report.buffers == 9)    // 6 ring directions + 3 from hosts
    }

    @Test func fatTreeWithUpDownRoutingIsFreeAndABounceIsNot() throws {
        let fatTree = FabricTopology.fatTree(k: 4)
        #expect(fatTree.nodes.count == 20 && fatTree.links.count == 32)
        #expect(CyclicDependencyCheck(topology: fatTree).run().isFree)
        #expect(CyclicDependencyCheck(topology: try Self.seedPaperTopology(flooding: false)).run().isFree)
        let flooded = CyclicDependencyCheck(topology: try Self.seedPaperTopology(flooding: true)).run()
        #expect(flooded.cycles.count == 1)
        #expect(flooded.cycles.first?.count == 4)
    }

    @Test func allPausedRingIsADeadlockReportedInOrderWithABreakPoint() throws {
        let file = try SnapshotFile.decode(Data(Fixtures.ringSnapshot(paused: [true, true, true]).utf8))
        let detector = DeadlockDetector(graph: BufferDependencyGraph(topology: try #require(file.topology)))
        let deadlocks = detector.detect(PausedBuffers(snapshot: file.samples[0], graph: detector.graph))
        #expect(deadlocks.count == 1)
        let deadlock = try #require(deadlocks.first)
        #expect(deadlock.priority == 3)
        #expect(deadlock.buffers.map(\.description) == ["S2/S1←S1 prio 3", "S3/S2←S2 prio 3", "S1/S3←S3 prio 3"])
        #expect(deadlock.breakPoint.node == "S2" && deadlock.breakPoint.fromNode == "S1" && deadlock.breakPoint.toNode == "S3")
        #expect(deadlock.breakPoint.reason.contains("fewest routes take (1)"))
    }

    @Test func aCycleWithOneBufferDrainingIsNoDeadlock() throws {
        for paused in [[true, true, false], [false, true, true], [true, false, true], [false, false, false]] {
            let file = try SnapshotFile.decode(Data(Fixtures.ringSnapshot(paused: paused).utf8))
            let detector = DeadlockDetector(graph: BufferDependencyGraph(topology: try #require(file.topology)))
            #expect(detector.detect(PausedBuffers(snapshot: file.samples[0], graph: detector.graph)).isEmpty)
        }
    }

    @Test func pauseStateFromTheUpstreamSideAndFromDurations() throws {
        let topology = try #require(try SnapshotFile.decode(Data(Fixtures.ringSnapshot(paused: [false, false, false]).utf8)).topology)
        let graph = BufferDependencyGraph(topology: topology)
        // S1's port facing S2 is being paused (rx): S2's buffer from S1 is full.
        let upstream = CounterSnapshot(time: .zero, ports: [port("S2", kind: .switch, node: "S1", [:], gauges: ["rx_prio3_paused": 1])])
        #expect(PausedBuffers(snapshot: upstream, graph: graph).byPriority[3] == [graph.link(arrivingAt: "S2", port: "S1")!])
        // S3's port facing S2 paused for 100 % of 100 ms by its duration counter; 50 % is not full.
        let before = CounterSnapshot(time: .zero, ports: [port("S2", kind: .switch, node: "S3", ["tx_prio3_pause_duration": 0]),
                                                          port("S3", kind: .switch, node: "S1", ["tx_prio3_pause_duration": 0])])
        let after = CounterSnapshot(time: .milliseconds(100), ports: [port("S2", kind: .switch, node: "S3", ["tx_prio3_pause_duration": 100_000]),
                                                                      port("S3", kind: .switch, node: "S1", ["tx_prio3_pause_duration": 50_000])])
        #expect(PausedBuffers(snapshot: after, previous: before, graph: graph).byPriority[3] == [graph.link(arrivingAt: "S3", port: "S2")!])
    }

    @Test func seedPaperDeadlockBreaksAtTheFloodedTurn() throws {
        let topology = try Self.seedPaperTopology(flooding: true)
        let graph = BufferDependencyGraph(topology: topology)
        let cycle = [("T1", "La"), ("Lb", "T1"), ("T0", "Lb"), ("La", "T0")].map { graph.link(arrivingAt: $0.0, port: $0.1)! }
        let deadlocks = DeadlockDetector(graph: graph).detect(PausedBuffers(byPriority: [3: Set(cycle)]))
        #expect(deadlocks.count == 1)
        let breakPoint = try #require(deadlocks.first?.breakPoint)
        #expect(breakPoint.reason.contains("down then up"))
        #expect(["T0", "T1"].contains(breakPoint.node))
    }

    @Test func fatTreeDeadlockAmongManyPausedBuffers() {
        var topology = FabricTopology.fatTree(k: 8)
        // A bounce at e0_0 (a0_0 → e0_0 → a0_1) and at e0_1 (a0_1 → e0_1 → a0_0): a 4-buffer CBD.
        let index = { (name: String) in topology.nodeIndex(named: name)! }
        topology.turns = [[index("a0_0"), index("e0_0"), index("a0_1")], [index("a0_1"), index("e0_1"), index("a0_0")]]
        let graph = BufferDependencyGraph(topology: topology)
        let cycle = [("a0_0", "e0_0"), ("e0_0", "a0_1"), ("a0_1", "e0_1"), ("e0_1", "a0_0")].map { graph.link(from: index($0.0), to: index($0.1))! }
        // Every other buffer of pod 1 paused too: congestion, not a cycle.
        var paused = Set(cycle)
        for link in 0..<graph.directedLinkCount where graph.isBuffer(link) && graph.topology.nodes[graph.destination(of: link)].name.contains("1_") {
            paused.insert(link)
        }
        let deadlocks = DeadlockDetector(graph: graph).detect(PausedBuffers(byPriority: [3: paused]))
        #expect(deadlocks.count == 1)
        #expect(Set(deadlocks[0].buffers.map(\.node)) == ["e0_0", "a0_1", "e0_1", "a0_0"])
    }

    @Test(arguments: [
        (#"{"switches": [], "levels": {}}"#, "topology switches: at least one switch is needed"),
        (#"{"switches": ["S1"], "links": [{"between": ["S1", "S9"]}], "levels": {"S1": 0}}"#, #"topology links[0].between[1]: unknown node "S9""#),
        (#"{"switches": ["S1", "S2"], "links": [{"between": ["S1", "S2"]}]}"#, "topology routes: give the routing"),
        (#"{"switches": ["S1", "S2", "S3"], "links": [{"between": ["S1", "S2"]}], "routes": [["S1", "S3"]]}"#, "topology routes[0][1]: no link between S1 and S3"),
        (#"{"switches": ["S1", "S2"], "links": [{"between": ["S1", "S2"]}], "levels": {"S1": 0}}"#, "topology levels: switch S2 has no level"),
        (#"{"switches": ["S1", "S1"], "levels": {"S1": 0}}"#, #"topology switches[1]: "S1" is named twice"#),
        (#"{"switches": ["S1", "S2"], "links": [{"between": ["S1", "S2"], "ports": ["p", "q"]}, {"between": ["S2", "S1"], "ports": ["q", "r"]}], "levels": {"S1": 0, "S2": 1}}"#,
         "topology links[1].ports: port S2/q is used by two links"),
        (#"{"switches": ["S1"], "levels": {"S1": 0}, "losslessPriorities": [9]}"#, "topology losslessPriorities[0]: 9 is outside 0…7"),
        (#"{"switches": ["S1"], "levels": {"S1": 0}, "extra": 1}"#, "topology extra: unknown field"),
    ])
    func malformedTopologiesAreRefusedNamingTheField(text: String, message: String) {
        do {
            _ = try FabricTopology.decode(try JSONValue.parse(Data(text.utf8), document: "topology"), path: "", document: "topology")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.hasPrefix(message), "\(error.description)")
        }
    }
}
