import Congestion
import FabricSim
import Foundation

/// Runs a scenario and summarises it.
func simulate(_ scenario: FabricScenario) -> (result: SimulationResult, summary: SimulationSummary) {
    var simulator = FabricSimulator(scenario: scenario)
    let result = simulator.run()
    return (result, SimulationSummary(result))
}

func withoutDCQCN(_ scenario: FabricScenario) -> FabricScenario {
    var copy = scenario
    copy.dcqcnEnabled = false
    return copy
}

/// The package's `scenarios/` folder.
let scenariosDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("scenarios")

extension SimulationResult {
    func flow(named name: String) -> FlowReport { flows.first { $0.name == name }! }
    func port(named name: String) -> PortReport { ports.first { $0.name == name }! }

    /// The sampled egress queue of a port from `start` on.
    func queueSamples(of port: String, from start: Nanoseconds) -> [Int] {
        let index = ports.firstIndex { $0.name == port }!
        return timeSeries.times.indices.filter { timeSeries.times[$0] >= start }.map { timeSeries.egressQueueBytes[index][$0] }
    }

    /// True when some transmitter was paused in a sample after `time`.
    func anyTransmitterPaused(after time: Nanoseconds) -> Bool {
        timeSeries.times.indices.contains { sample in
            timeSeries.times[sample] > time && timeSeries.paused.contains { $0[sample] }
        }
    }
}

extension SimulationSummary {
    func flow(named name: String) -> Flow { flows.first { $0.name == name }! }
}
