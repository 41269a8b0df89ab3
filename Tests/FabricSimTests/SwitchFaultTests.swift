import Congestion
import FabricSim
import Foundation
import Testing

/// The seed paper's flooding deadlock, its fix, and the switch PFC watchdog.
@Suite struct FloodingDeadlockTests {
    static let cycle = ["T1->Lb", "Lb->T0", "T0->La", "La->T1"]

    static func scenario(_ change: (inout FabricScenario) -> Void = { _ in }) throws -> FabricScenario {
        var scenario = try ScenarioLoader.load(json: Data(contentsOf: scenariosDirectory.appendingPathComponent("flooding-4switches-deadlock.json")))
        change(&scenario)
        return scenario
    }

    @Test func floodingLosslessPacketsDeadlocksTheFourSwitchCycle() throws {
        let (result, _) = simulate(try Self.scenario())
        let onset = try #require(result.pausedThroughEnd(Self.cycle), "the cycle's transmitters were not paused for good")
        #expect(onset < .milliseconds(2))
        // Every flow over a leaf stops for good once the packets already past the cycle have
        // drained (behind the local incast in T1->S6, up to ~200 µs); the local incasts go on.
        for name in ["S1->S3 (dead)", "S4->S2 (dead)", "S5->S6", "S6->S5"] {
            #expect(result.throughputSamples(of: name, from: onset + .microseconds(300)).allSatisfy { $0 == 0 }, "\(name) still moves")
        }
        #expect(result.flow(named: "S5->S6").completion == nil)
        #expect(result.throughputSamples(of: "S7->S5", from: onset).last! > 30e9)
        #expect(result.port(named: "T1->Lb").floodedCopiesSent > 0)
        #expect(result.port(named: "T0->La").floodedCopiesSent > 0)
    }

    @Test func droppingInsteadOfFloodingLetsTheSameScenarioFinish() throws {
        let (result, _) = simulate(try Self.scenario { $0.unknownUnicast.losslessAction = .drop })
        #expect(result.pausedThroughEnd(Self.cycle) == nil)
        #expect(result.flow(named: "S5->S6").completion != nil)
        #expect(result.flow(named: "S6->S5").completion != nil)
        #expect(result.ports.allSatisfy { $0.floodedCopiesSent == 0 })
        #expect(result.ports.first { $0.ingressName == "T1<-La" }!.unknownDestinationDrops > 0)
        #expect(result.ports.first { $0.ingressName == "T0<-Lb" }!.unknownDestinationDrops > 0)
    }

    @Test func withEveryMACEntryPresentNothingIsFloodedOrDropped() throws {
        let (result, _) = simulate(try Self.scenario { $0.unknownUnicast.missingMACEntries = [] })
        #expect(result.pausedThroughEnd(Self.cycle) == nil)
        #expect(result.flow(named: "S5->S6").completion != nil)
        #expect(result.ports.allSatisfy { $0.floodedCopiesSent == 0 && $0.unknownDestinationDrops == 0 })
    }

    @Test func theFloodingTurnsGoDownThenUpAtTheToRs() throws {
        let scenario = try Self.scenario()
        let names = scenario.floodingTurns().map { $0.map { scenario.nodes[$0].name } }
        #expect(names == [["La", "T1", "Lb"], ["Lb", "T0", "La"]])
        var dropping = scenario
        dropping.unknownUnicast.losslessAction = .drop
        #expect(dropping.floodingTurns().isEmpty)
    }

    @Test func theSwitchWatchdogBreaksTheDeadlockAndRestoresTheQueues() throws {
        let window = Nanoseconds.microseconds(200)
        let (result, _) = simulate(try Self.scenario { $0.pfcWatchdog = .init(detection: window, restoration: window) })
        #expect(result.pausedThroughEnd(Self.cycle) == nil)
        let acted = result.ports.filter { $0.watchdogDetections > 0 }
        #expect(!acted.isEmpty)
        #expect(acted.allSatisfy { Self.cycle.contains($0.name) })
        #expect(acted.allSatisfy { $0.watchdogRestorations > 0 && $0.watchdogDroppedPackets > 0 })
        // The flows over the leaves move again at the end (flooding still goes on, so the
        // cycle re-forms and is broken again: the watchdog treats the symptom, not the cause).
        #expect(result.throughputSamples(of: "S1->S3 (dead)", from: .milliseconds(4)).contains { $0 > 0 })
    }
}

@Suite struct SwitchWatchdogTests {
    static func stormedIncast(watchdog: FabricScenario.PFCWatchdog?, nicWatchdog: Nanoseconds? = nil) -> SimulationResult {
        var incast = FabricScenario.incast(senderCount: 16, duration: .microseconds(3000))
        incast.dcqcnEnabled = false
        incast.pfcWatchdog = watchdog
        var simulator = FabricSimulator(scenario: incast)
        simulator.injectPauseStorm(fromHost: incast.nodeIndex(named: "R")!, at: .microseconds(500), nicWatchdog: nicWatchdog)
        return simulator.run()
    }

    static func sendersPausedAtEnd(_ result: SimulationResult) -> Int {
        result.ports.indices.filter { result.ports[$0].name.hasPrefix("H") && result.timeSeries.paused[$0].last! }.count
    }

    @Test func withoutTheWatchdogTheNICStormSpreadsToEverySender() {
        let result = Self.stormedIncast(watchdog: nil)
        #expect(Self.sendersPausedAtEnd(result) == 16)
        #expect(result.ports.allSatisfy { $0.watchdogDetections == 0 })
    }

    @Test func detectionAfterTheWindowThenDroppingKeepsTheStormFromSpreading() {
        let window = Nanoseconds.microseconds(200)
        let result = Self.stormedIncast(watchdog: .init(detection: window, restoration: window))
        let port = result.port(named: "S1->R")
        #expect(port.watchdogDetections == 1)
        // Detection: paused without a break for the whole window, not earlier.
        #expect(port.watchdogFirstDetection == .microseconds(500) + window)
        #expect(port.watchdogRestorations == 0)
        #expect(port.watchdogDroppingAtEnd)
        #expect(port.watchdogDroppedPackets > 0)
        #expect(Self.sendersPausedAtEnd(result) == 0)
        #expect(result.ports.filter { $0.watchdogDetections > 0 }.map(\.name) == ["S1->R"])
    }

    @Test func restorationComesOneWindowAfterThePausesStop() {
        let window = Nanoseconds.microseconds(200)
        let result = Self.stormedIncast(watchdog: .init(detection: window, restoration: window), nicWatchdog: .microseconds(1000))
        let port = result.port(named: "S1->R")
        #expect(port.watchdogDetections == 1)
        #expect(port.watchdogRestorations == 1)
        // The NIC stops pausing at 1500 µs.
        #expect(port.watchdogLastRestoration == .microseconds(1500) + window)
        #expect(!port.watchdogDroppingAtEnd)
    }

    @Test func aPausedButEmptyQueueIsNotAStorm() {
        // Every sender stops before the storm: the paused queue holds nothing to drop.
        var incast = FabricScenario.incast(senderCount: 2, duration: .microseconds(2000))
        incast.flows = incast.flows.map { var flow = $0; flow.stop = .microseconds(100); return flow }
        incast.pfcWatchdog = .init(detection: .microseconds(200), restoration: .microseconds(200))
        var simulator = FabricSimulator(scenario: incast)
        simulator.injectPauseStorm(fromHost: incast.nodeIndex(named: "R")!, at: .microseconds(500))
        let result = simulator.run()
        #expect(result.ports.allSatisfy { $0.watchdogDetections == 0 && $0.watchdogDroppedPackets == 0 })
    }
}

@Suite struct SwitchBehaviourFileTests {
    private func error(_ change: (inout [String: Any]) -> Void) -> String? {
        var document: [String: Any] = [
            "name": "t", "durationMicroseconds": 100,
            "dcqcn": ["preset": "mlx5Like"], "ecnMarking": ["preset": "ns3MixConfig"],
            "pfc": ["xoffBytes": 10_000, "xonBytes": 8_000],
            "switches": ["S1"], "hosts": ["A", "B"],
            "linkDefaults": ["rateGigabitsPerSecond": 10, "delayMicroseconds": 1],
            "links": [["between": ["A", "S1"]], ["between": ["B", "S1"]]],
            "flows": [["from": "A", "to": "B"]],
        ]
        change(&document)
        do {
            _ = try ScenarioLoader.load(json: JSONSerialization.data(withJSONObject: document))
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func theShippedDeadlockScenarioSaysWhatIsMissingAndFloods() throws {
        let scenario = try FloodingDeadlockTests.scenario()
        let missing = scenario.unknownUnicast.missingMACEntries.map { [scenario.nodes[$0.switchNode].name, scenario.nodes[$0.host].name] }
        #expect(missing == [["T1", "S3"], ["T0", "S2"]])
        #expect(scenario.unknownUnicast.losslessAction == .flood)
        #expect(scenario.pfcWatchdog == nil)
    }

    @Test func badSwitchBehaviourIsRefusedByField() {
        #expect(error { $0["unknownUnicast"] = ["missingMACEntries": [["switch": "A", "host": "B"]]] }
            == "unknownUnicast.missingMACEntries[0].switch: \"A\" is not a switch of the scenario")
        #expect(error { $0["unknownUnicast"] = ["missingMACEntries": [["switch": "S1", "host": "S1"]]] }
            == "unknownUnicast.missingMACEntries[0].host: \"S1\" is not a host of the scenario")
        #expect(error { $0["unknownUnicast"] = ["missingMACEntries": [["switch": "S1", "host": "B"], ["switch": "S1", "host": "B"]]] }
            == "unknownUnicast.missingMACEntries[1]: S1/B is listed twice")
        #expect(error { $0["unknownUnicast"] = ["missingMACEntries": [], "losslessAction": "forward"] }
            == "unknownUnicast.losslessAction: unknown action \"forward\" (known: flood, drop)")
        #expect(error { $0["unknownUnicast"] = ["missingMACEntries": [["switch": "S1", "hst": "B"]]] }?
            .hasPrefix("unknownUnicast.missingMACEntries[0].hst: unknown field") == true)
        #expect(error { $0["pfc"] = ["xoffBytes": 10_000, "xonBytes": 8_000, "watchdog": ["detectionMicroseconds": 0, "restorationMicroseconds": 1]] }?
            .hasPrefix("pfc.watchdog.detectionMicroseconds:") == true)
        #expect(error { $0["pfc"] = ["xoffBytes": 10_000, "xonBytes": 8_000, "watchdog": ["detectionMicroseconds": 1, "restorationMicroseconds": 1e300]] }?
            .hasPrefix("pfc.watchdog.restorationMicroseconds:") == true)
        #expect(error { $0["pfc"] = ["xoffBytes": 10_000, "xonBytes": 8_000, "watchdog": ["detectionMicroseconds": 100, "restorationMicroseconds": 100]] } == nil)
    }
}

extension SimulationResult {
    func throughputSamples(of flow: String, from start: Nanoseconds) -> [Double] {
        let index = flows.firstIndex { $0.name == flow }!
        return timeSeries.times.indices.filter { timeSeries.times[$0] >= start }.map { timeSeries.flowThroughputBitsPerSecond[index][$0] }
    }
}
