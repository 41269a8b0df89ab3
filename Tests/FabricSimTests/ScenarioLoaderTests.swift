import FabricSim
import Foundation
import Testing

@Suite struct ScenarioFileTests {
    private func load(_ name: String) throws -> FabricScenario {
        try ScenarioLoader.load(json: Data(contentsOf: scenariosDirectory.appendingPathComponent(name)))
    }

    @Test func theShippedScenariosAreTheBuiltInOnes() throws {
        #expect(try load("incast-16to1.json") == .incast(senderCount: 16))
        #expect(try load("staggered-2flows.json") == .staggeredStart())
        #expect(try load("victim-flow.json") == .victimFlow())
    }

    @Test func explicitRoutesAreKept() throws {
        let ring = try load("ring-3switches-cyclic.json")
        let names = ring.flows.map { $0.route.map { ring.nodes[$0].name } }
        #expect(names[0] == ["H1", "S1", "S2", "S3", "H3"])
        #expect(names[2] == ["H3", "S3", "S1", "S2", "H2"])
    }
}

@Suite struct ScenarioErrorTests {
    /// A small valid file; each test breaks one thing.
    private let valid: [String: Any] = [
        "name": "t",
        "durationMicroseconds": 100,
        "dcqcn": ["preset": "mlx5Like"],
        "ecnMarking": ["preset": "ns3MixConfig"],
        "pfc": ["xoffBytes": 10_000, "xonBytes": 8_000],
        "switches": ["S1"],
        "hosts": ["A", "B"],
        "linkDefaults": ["rateGigabitsPerSecond": 10, "delayMicroseconds": 1],
        "links": [["between": ["A", "S1"]], ["between": ["B", "S1"]]],
        "flows": [["from": "A", "to": "B"]],
    ]

    private func error(_ change: (inout [String: Any]) -> Void) -> String? {
        var document = valid
        change(&document)
        let data = try! JSONSerialization.data(withJSONObject: document)
        do {
            _ = try ScenarioLoader.load(json: data)
            return nil
        } catch let error as ScenarioError {
            return error.description
        } catch {
            return "unexpected \(error)"
        }
    }

    @Test func theValidFileLoadsWithShortestPathRoutes() throws {
        let data = try JSONSerialization.data(withJSONObject: valid)
        let scenario = try ScenarioLoader.load(json: data)
        #expect(scenario.flows[0].name == "A->B")
        #expect(scenario.flows[0].route.map { scenario.nodes[$0].name } == ["A", "S1", "B"])
        #expect(scenario.links[0].rateBitsPerSecond == 10_000_000_000)
    }

    @Test func increaseStageRuleIsReadFromTheFile() throws {
        var document = valid
        document["dcqcn"] = ["preset": "mlx5Like", "rateIncreaseStages": "timerOnly"]
        let scenario = try ScenarioLoader.load(json: JSONSerialization.data(withJSONObject: document))
        #expect(scenario.dcqcn.rateIncreaseStages == .timerOnly)
        #expect(scenario.dcqcn.byteCounterBytes == 32_767)
        #expect(scenario.dcqcn.rateDecreasePeriod == nil)

        document["dcqcn"] = ["preset": "hpccMellanoxModel", "rateDecreasePeriodMicroseconds": 8]
        #expect(try ScenarioLoader.load(json: JSONSerialization.data(withJSONObject: document)).dcqcn.rateDecreasePeriod == .microseconds(8))
        document["dcqcn"] = ["preset": "hpccMellanoxModel", "rateDecreasePeriodMicroseconds": 0]
        #expect(try ScenarioLoader.load(json: JSONSerialization.data(withJSONObject: document)).dcqcn.rateDecreasePeriod == nil)
    }

    @Test func errorsNameTheField() {
        #expect(error { $0["durationMicrosecond"] = 5 }?.hasPrefix("durationMicrosecond: unknown field") == true)
        #expect(error { $0["pfc"] = ["xoffBytes": 10_000, "xonBytes": 8_000, "xof": 1] }?.hasPrefix("pfc.xof: unknown field") == true)
        #expect(error { $0["durationMicroseconds"] = "long" } == "durationMicroseconds: expected a number")
        #expect(error { $0.removeValue(forKey: "flows") } == "flows: missing required field")
        #expect(error { $0["links"] = [["between": ["A", "S9"]]] } == "links[0].between[1]: unknown node \"S9\" (not in switches or hosts)")
        #expect(error { $0["links"] = [["between": ["A", "S1"]], ["between": ["S1", "A"]]] }
            == "links[1].between: S1 and A are already linked by links[0]")
        #expect(error { $0["flows"] = [["from": "A", "to": "B", "route": ["A", "B"]]] } == "flows[0].route[1]: no link between A and B")
        #expect(error { $0["flows"] = [["from": "A", "to": "S1"]] } == "flows[0].to: \"S1\" is a switch; flows run between hosts")
        #expect(error { $0["dcqcn"] = ["preset": "fast"] }?.hasPrefix("dcqcn.preset: unknown preset \"fast\"") == true)
        #expect(error { $0["dcqcn"] = ["preset": "mlx5Like", "alphaGain": 0] } == "dcqcn.alphaGain: must be in (0, 1]")
        #expect(error { $0["dcqcn"] = ["preset": "mlx5Like", "rateIncreaseStages": "bytesOnly"] }
            == "dcqcn.rateIncreaseStages: unknown rule \"bytesOnly\" (known: timerAndByteCounter, timerOnly)")
        #expect(error { $0["dcqcn"] = ["preset": "mlx5Like", "targetRateClamp": "never"] }?.hasPrefix("dcqcn.targetRateClamp: unknown rule \"never\"") == true)
        #expect(error { $0["dcqcn"] = ["preset": "mlx5Like", "rateIncreaseTimerMicroseconds": 0] }?.hasPrefix("dcqcn.rateIncreaseTimerMicroseconds: 0.0 µs: must be more than 0") == true)
        #expect(error { $0["pfc"] = ["xoffBytes": 10_000, "xonBytes": 20_000] } == "pfc.xonBytes: must be in 0…xoffBytes")
        #expect(error { $0["ecnMarking"] = ["kMinBytes": 10] } == "ecnMarking.kMaxBytes: missing (give it, or a preset)")
        #expect(error { $0["flows"] = [["from": "A", "to": "B", "startMicroseconds": 500]] }?.hasPrefix("flows[0].startMicroseconds:") == true)
        #expect(error { $0["hosts"] = ["A", "B", "A"] } == "hosts[2]: \"A\" is already named by hosts[0]")
    }

    /// Whatever a file says, loading refuses by field name instead of trapping (1e300 times
    /// and rates), growing without bound (20,000 hosts, 10^12 µs, a sample per nanosecond)
    /// or running a route that loops.
    @Test func absurdValuesAreRefusedByField() {
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("durationMicroseconds", { $0["durationMicroseconds"] = 1e300 }),
            ("durationMicroseconds", { $0["durationMicroseconds"] = 1e12 }),
            ("durationMicroseconds", { $0["durationMicroseconds"] = -1e300 }),
            ("links[0].delayMicroseconds", { $0["linkDefaults"] = ["rateGigabitsPerSecond": 10, "delayMicroseconds": 1e300] }),
            ("links[0].rateGigabitsPerSecond", { $0["linkDefaults"] = ["rateGigabitsPerSecond": 1e300, "delayMicroseconds": 1] }),
            ("links[0].rateGigabitsPerSecond", { $0["linkDefaults"] = ["rateGigabitsPerSecond": 1e-300, "delayMicroseconds": 1] }),
            ("flows[0].startMicroseconds", { $0["flows"] = [["from": "A", "to": "B", "startMicroseconds": 1e300]] }),
            ("flows[0].startMicroseconds", { $0["flows"] = [["from": "A", "to": "B", "startMicroseconds": -1e300]] }),
            ("flows[0].stopMicroseconds", { $0["flows"] = [["from": "A", "to": "B", "stopMicroseconds": 1e300]] }),
            ("flows[0].sizeBytes", { $0["flows"] = [["from": "A", "to": "B", "sizeBytes": 1 << 62]] }),
            ("dcqcn.alphaUpdatePeriodMicroseconds", { $0["dcqcn"] = ["preset": "mlx5Like", "alphaUpdatePeriodMicroseconds": 1e300] }),
            ("dcqcn.minimumCNPIntervalMicroseconds", { $0["dcqcn"] = ["preset": "mlx5Like", "minimumCNPIntervalMicroseconds": -1e300] }),
            ("dcqcn.additiveIncreaseMegabitsPerSecond", { $0["dcqcn"] = ["preset": "mlx5Like", "additiveIncreaseMegabitsPerSecond": 1e300] }),
            ("dcqcn.byteCounterBytes", { $0["dcqcn"] = ["preset": "mlx5Like", "byteCounterBytes": 1 << 62] }),
            ("dcqcn.rateDecreasePeriodMicroseconds", { $0["dcqcn"] = ["preset": "mlx5Like", "rateDecreasePeriodMicroseconds": -4] }),
            ("pfc.xoffBytes", { $0["pfc"] = ["xoffBytes": 1 << 62, "xonBytes": 0] }),
            ("ecnMarking.kMaxBytes", { $0["ecnMarking"] = ["kMinBytes": 0, "kMaxBytes": 1 << 62, "maximumMarkingProbability": 1] }),
            ("sampling.intervalMicroseconds", { $0["sampling"] = ["intervalMicroseconds": 1e300] }),
            ("sampling.intervalMicroseconds", {
                $0["durationMicroseconds"] = 1e7
                $0["sampling"] = ["intervalMicroseconds": 0.001, "fairnessWindowMicroseconds": 1]
            }),
            ("hosts", { $0["hosts"] = (0..<20_000).map { "H\($0)" } }),
            ("flows[0].route[2]", { $0["flows"] = [["from": "A", "to": "B", "route": ["A", "S1", "S1", "B"]]] }),
        ]
        for (field, change) in cases {
            let message = error(change)
            #expect(message?.hasPrefix("\(field):") == true, "\(field): \(message ?? "accepted")")
        }
    }

    @Test func theBoundsThemselvesLoad() throws {
        var document = valid
        document["durationMicroseconds"] = 1e7   // 10 s of simulated time, sampled every 10 µs
        let scenario = try ScenarioLoader.load(json: JSONSerialization.data(withJSONObject: document))
        #expect(scenario.duration.seconds == 10)
    }

    @Test func invalidJSONIsReportedAsSuch() {
        #expect(throws: ScenarioError.self) { try ScenarioLoader.load(json: Data("{ \"name\": ".utf8)) }
        #expect(throws: ScenarioError.self) { try ScenarioLoader.load(json: Data("[1, 2]".utf8)) }
    }
}
