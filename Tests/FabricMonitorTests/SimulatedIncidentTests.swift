import Congestion
import FabricSim
import Foundation
import Testing
@testable import FabricMonitor

/// The simulator's fabrics, exported in the snapshot format and analysed by the monitor
/// exactly as recorded counters of a real fabric would be.
@Suite struct SimulatedIncidentTests {
    static func scenario(_ name: String) throws -> FabricScenario {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try ScenarioLoader.load(json: Data(contentsOf: root.appendingPathComponent("scenarios/\(name).json")))
    }

    /// Replays the exported snapshot through a Monitor; returns every report.
    static func monitor(_ result: SimulationResult, stride: Int, detection: MonitorTime) throws -> (reports: [MonitorReport], file: SnapshotFile) {
        let file = try SnapshotFile.decode(Data(result.monitorSnapshotJSON(stride: stride).utf8))
        var monitor = Monitor(sources: [SnapshotFileSource(file: file)], clock: SystemMonotonicClock(),
                              watchdog: PFCStormWatchdog(configuration: .init(detectionTime: detection, restorationTime: detection)),
                              topology: file.topology)
        var reports: [MonitorReport] = []
        repeat { reports.append(try monitor.poll()) } while monitor.hasMore
        return (reports, file)
    }

    @Test func pfcAloneDeadlocksTheThreeSwitchRingAndTheMonitorNamesTheCycle() throws {
        var ring = try Self.scenario("ring-3switches-cyclic")
        ring.dcqcnEnabled = false
        ring.duration = .microseconds(3000)
        var simulator = FabricSimulator(scenario: ring)
        let (reports, file) = try Self.monitor(simulator.run(), stride: 10, detection: MonitorTime(nanoseconds: 200_000))
        #expect(!CyclicDependencyCheck(topology: try #require(file.topology)).run().isFree)
        let first = try #require(reports.firstIndex { !$0.deadlocks.isEmpty }, "no deadlock detected")
        let deadlock = reports[first].deadlocks[0]
        #expect(Set(deadlock.buffers.map(\.node)) == ["S1", "S2", "S3"])
        #expect(Set(deadlock.buffers.map(\.upstream)) == ["S1", "S2", "S3"])
        // Once deadlocked, it stays: every later sample reports it.
        #expect(reports[first...].allSatisfy { $0.deadlocks.count == 1 })
        #expect(reports[first].snapshot.time < .milliseconds(3))
    }

    /// The seed paper's deadlock: ToRs flood lossless packets for dead servers whose MAC
    /// entries expired. The cycle locks for good at `onset` (every cycle transmitter paused
    /// from then to the end); the monitor, sampling every 100 µs, names the four-switch cycle
    /// in every report from one sample after it at the latest. Before the lock, the cycle is
    /// sometimes all paused for an instant and clears again (its buffers also hold packets
    /// for hosts, which drain); those samples are reported too.
    @Test func losslessFloodingDeadlocksTheFourSwitchCycleAndTheMonitorNamesIt() throws {
        let scenario = try Self.scenario("flooding-4switches-deadlock")
        var simulator = FabricSimulator(scenario: scenario)
        let result = simulator.run()
        let onset = try #require(result.pausedThroughEnd(["T1->Lb", "Lb->T0", "T0->La", "La->T1"]))
        let (reports, file) = try Self.monitor(result, stride: 10, detection: MonitorTime(nanoseconds: 200_000))
        let names = try #require(reports.firstIndex { $0.deadlocks.isEmpty == false }, "no deadlock detected")
        let fourSwitch: (MonitorReport) -> Bool = { report in
            report.deadlocks.contains { Set($0.buffers.map(\.node)) == ["T0", "T1", "La", "Lb"] && $0.buffers.count == 4 }
        }
        #expect(fourSwitch(reports[names]))
        let lastWithout = try #require(reports.lastIndex { !fourSwitch($0) })
        let held = reports[lastWithout + 1]
        #expect(held.snapshot.time <= MonitorTime(nanoseconds: onset.rawValue + 100_000))
        let deadlock = try #require(held.deadlocks.first { $0.buffers.count == 4 })
        // In wait-for order: T1's buffer from La waits on Lb's from T1, and so on around.
        let ring = deadlock.buffers.map { "\($0.node)<-\($0.upstream)" }
        let start = try #require(ring.firstIndex(of: "T1<-La"))
        #expect(Array(ring[start...] + ring[..<start]) == ["T1<-La", "Lb<-T1", "T0<-Lb", "La<-T0"])
        // The break point is a flooding turn: down from a leaf, up to the other one.
        #expect([["La", "T1", "Lb"], ["Lb", "T0", "La"]].contains([deadlock.breakPoint.fromNode, deadlock.breakPoint.node, deadlock.breakPoint.toNode]))

        // Statically: the routes with the flooding turns admit the cycle; up-down routes alone do not.
        let topology = try #require(file.topology)
        #expect(!CyclicDependencyCheck(topology: topology).run().isFree)
        var upDownOnly = topology
        upDownOnly.turns = []
        #expect(CyclicDependencyCheck(topology: upDownOnly).run().isFree)
    }

    @Test func droppingLosslessPacketsInsteadOfFloodingRaisesNoDeadlock() throws {
        var scenario = try Self.scenario("flooding-4switches-deadlock")
        scenario.unknownUnicast.losslessAction = .drop
        var simulator = FabricSimulator(scenario: scenario)
        let (reports, file) = try Self.monitor(simulator.run(), stride: 10, detection: MonitorTime(nanoseconds: 200_000))
        #expect(reports.count == 50)
        #expect(reports.allSatisfy { $0.deadlocks.isEmpty })
        #expect(CyclicDependencyCheck(topology: try #require(file.topology)).run().isFree)
    }

    @Test func aHealthyIncastWithDCQCNRaisesNothing() throws {
        var incast = try Self.scenario("incast-16to1")
        incast.duration = .microseconds(3000)
        var simulator = FabricSimulator(scenario: incast)
        let (reports, _) = try Self.monitor(simulator.run(), stride: 10, detection: MonitorTime(nanoseconds: 200_000))
        #expect(reports.count > 10)
        #expect(reports.allSatisfy { $0.deadlocks.isEmpty && $0.stormEvents.isEmpty && $0.stormingQueues.isEmpty })
    }

    /// PFC alone (senders at line rate), so the ToR's buffers fill within the short run and
    /// the pauses visibly reach every sender; with DCQCN the senders are slow enough after the
    /// incast's first burst that 3 ms do not fill 500 KB per ingress port.
    @Test func aNICPauseStormIsDetectedOnTheNICAndTheSwitchQueueAndSpreadsUpstream() throws {
        var incast = try Self.scenario("incast-16to1")
        incast.duration = .microseconds(3000)
        incast.dcqcnEnabled = false
        var simulator = FabricSimulator(scenario: incast)
        #expect(simulator.injectPauseStorm(fromHost: try #require(incast.nodeIndex(named: "R")), at: .microseconds(500)))
        let (reports, _) = try Self.monitor(simulator.run(), stride: 10, detection: MonitorTime(nanoseconds: 500_000))
        let detected = reports.flatMap(\.stormEvents).filter { $0.kind == .stormDetected }
        let nic = try #require(detected.first { $0.queue.role == .nicTransmitter }, "the storming NIC was not named")
        #expect(nic.queue.port == PortKey(node: "R", device: "S1"))
        #expect(nic.time <= MonitorTime(nanoseconds: 1_100_000))       // within the 500 µs window (+ one 100 µs sample)
        let switchQueue = try #require(detected.first { $0.queue.role == .switchQueue })
        #expect(switchQueue.queue.port == PortKey(node: "S1", device: "R"))
        // The pauses spread upstream: the senders are held by S1 by the end.
        let last = try #require(reports.last)
        let pausedSenders = PauseFlag.flags(in: last).filter { $0.active && $0.direction == .receive && $0.port.node.hasPrefix("H") }
        #expect(pausedSenders.count == 16)
        #expect(reports.allSatisfy { $0.deadlocks.isEmpty })
    }

    @Test func theNICWatchdogEndsTheStormAndTheMonitorSeesItRestored() throws {
        var incast = try Self.scenario("incast-16to1")
        incast.duration = .microseconds(4000)
        var simulator = FabricSimulator(scenario: incast)
        simulator.injectPauseStorm(fromHost: try #require(incast.nodeIndex(named: "R")), at: .microseconds(500), nicWatchdog: .microseconds(1000))
        let (reports, _) = try Self.monitor(simulator.run(), stride: 10, detection: MonitorTime(nanoseconds: 500_000))
        let events = reports.flatMap(\.stormEvents).filter { $0.queue.port == PortKey(node: "R", device: "S1") }
        #expect(events.map(\.kind) == [.stormDetected, .stormRestored])
        #expect(try #require(reports.last).stormingQueues.isEmpty)
    }

    @Test func theExportKeepsEverySampleForAStrideBelowOneAndEveryNthOtherwise() throws {
        var simulator = FabricSimulator(scenario: .incast(senderCount: 2, duration: .microseconds(200)))
        let result = simulator.run()
        let samples = result.timeSeries.times.count
        #expect(try SnapshotFile.decode(Data(result.monitorSnapshotJSON(stride: 0).utf8)).samples.count == samples)
        #expect(try SnapshotFile.decode(Data(result.monitorSnapshotJSON(stride: 1).utf8)).samples.count == samples)
        #expect(try SnapshotFile.decode(Data(result.monitorSnapshotJSON(stride: 10).utf8)).samples.count == (samples + 9) / 10)
    }
}
