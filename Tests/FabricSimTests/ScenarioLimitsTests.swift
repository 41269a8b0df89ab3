import FabricSim
import Foundation
import Testing

/// Whatever a scenario file says, loading it refuses by field name instead of trapping
/// (1e300 times and rates), growing without bound (20,000 hosts, 10^12 µs, a sample per
/// nanosecond) or running a route that loops.
@Suite struct ScenarioLimitsTests {
    private let valid: [String: Any] = [
        "name": "t",
        "durationMicroseconds": 100,
        "dcqcn": ["preset": "mlx5Like"],
        "ecnMarking": ["preset": "ns3MixConfig"],
        "pfc": ["xoffBytes": 10_000, "xonBytes": 8_000],
        "switches": ["S1", "S2"],
        "hosts": ["A", "B"],
        "linkDefaults": ["rateGigabitsPerSecond": 10, "delayMicroseconds": 1],
        "links": [["between": ["A", "S1"]], ["between": ["S1", "S2"]], ["between": ["S2", "B"]]],
        "flows": [["from": "A", "to": "B"]],
    ]

    private func refusal(_ change: (inout [String: Any]) -> Void) -> String? {
        var document = valid
        change(&document)
        guard let data = try? JSONSerialization.data(withJSONObject: document) else { return "unencodable" }
        do {
            _ = try ScenarioLoader.load(json: data)
            return nil
        } catch let error as ScenarioError {
            return error.description
        } catch {
            return "unexpected \(error)"
        }
    }

    @Test("each absurd value is refused naming its field")
    func refused() {
        let cases: [(String, (inout [String: Any]) -> Void)] = [
        ("durationMicroseconds", { d in d["durationMicroseconds"] = 1e300 }),
        ("durationMicroseconds", { d in d["durationMicroseconds"] = 1e12 }),
        ("durationMicroseconds", { d in d["durationMicroseconds"] = -1e300 }),
        ("links[0].delayMicroseconds", { d in d["linkDefaults"] = ["rateGigabitsPerSecond": 10, "delayMicroseconds": 1e300] }),
        ("links[0].rateGigabitsPerSecond", { d in d["linkDefaults"] = ["rateGigabitsPerSecond": 1e300, "delayMicroseconds": 1] }),
        ("links[0].rateGigabitsPerSecond", { d in d["linkDefaults"] = ["rateGigabitsPerSecond": 1e-300, "delayMicroseconds": 1] }),
        ("flows[0].startMicroseconds", { d in d["flows"] = [["from": "A", "to": "B", "startMicroseconds": 1e300]] }),
        ("flows[0].startMicroseconds", { d in d["flows"] = [["from": "A", "to": "B", "startMicroseconds": -1e300]] }),
        ("flows[0].stopMicroseconds", { d in d["flows"] = [["from": "A", "to": "B", "stopMicroseconds": 1e300]] }),
        ("flows[0].sizeBytes", { d in d["flows"] = [["from": "A", "to": "B", "sizeBytes": 1 << 62]] }),
        ("dcqcn.alphaUpdatePeriodMicroseconds", { d in d["dcqcn"] = ["preset": "mlx5Like", "alphaUpdatePeriodMicroseconds": 1e300] }),
        ("dcqcn.minimumCNPIntervalMicroseconds", { d in d["dcqcn"] = ["preset": "mlx5Like", "minimumCNPIntervalMicroseconds": -1e300] }),
        ("dcqcn.additiveIncreaseMegabitsPerSecond", { d in d["dcqcn"] = ["preset": "mlx5Like", "additiveIncreaseMegabitsPerSecond": 1e300] }),
        ("dcqcn.byteCounterBytes", { d in d["dcqcn"] = ["preset": "mlx5Like", "byteCounterBytes": 1 << 62] }),
        ("pfc.xoffBytes", { d in d["pfc"] = ["xoffBytes": 1 << 62, "xonBytes": 0] }),
        ("ecnMarking.kMaxBytes", { d in d["ecnMarking"] = ["kMinBytes": 0, "kMaxBytes": 1 << 62, "maximumMarkingProbability": 1] }),
        ("sampling.intervalMicroseconds", { d in d["sampling"] = ["intervalMicroseconds": 1e300] }),
        ("sampling.intervalMicroseconds", { d in d["durationMicroseconds"] = 1e7; d["sampling"] = ["intervalMicroseconds": 0.001, "fairnessWindowMicroseconds": 1] }),
        ("hosts", { d in d["hosts"] = (0..<20_000).map { "H\($0)" } }),
        ("flows[0].route[3]", { d in d["flows"] = [["from": "A", "to": "B", "route": ["A", "S1", "S2", "S1", "S2", "B"]]] }),
        ]
        for (field, change) in cases {
            let message = refusal(change)
            #expect(message?.hasPrefix("\(field):") == true, "\(field): \(message ?? "accepted")")
        }
    }

    @Test("the bounds themselves load: 10 s of simulated time, a 1 µs sample interval")
    func bounds() throws {
        var document = valid
        document["durationMicroseconds"] = 1e7
        document["sampling"] = ["intervalMicroseconds": 10]
        let scenario = try ScenarioLoader.load(json: JSONSerialization.data(withJSONObject: document))
        #expect(scenario.duration.seconds == 10)
    }
}
