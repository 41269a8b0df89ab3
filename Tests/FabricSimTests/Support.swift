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
}

extension SimulationSummary {
    func flow(named name: String) -> Flow { flows.first { $0.name == name }! }
}
