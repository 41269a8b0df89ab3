import CFuzzerDriver
import Congestion
import FabricSim
import Foundation

// libFuzzer entry point over fabric-sim's scenario loader: every input is a scenario file.
// A ScenarioError naming a field is the expected outcome for most inputs; a crash, a
// sanitizer report or a failed invariant below is a finding.

private let limits = ScenarioLimits.standard

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Data(bytes: data!, count: size)
    guard let scenario = try? ScenarioLoader.load(json: bytes) else { return 0 }
    // Loaded: the bounds that keep a run finite hold.
    precondition(scenario.nodes.count <= limits.maximumNodes && scenario.links.count <= limits.maximumLinks)
    precondition(scenario.flows.count <= limits.maximumFlows && !scenario.flows.isEmpty)
    precondition(scenario.duration.microseconds <= limits.maximumDurationMicroseconds && scenario.duration.rawValue > 0)
    precondition((try? limits.check(recordingOf: scenario)) != nil)
    for link in scenario.links {
        precondition(link.rateBitsPerSecond > 0 && link.propagationDelay.rawValue >= 0)
    }
    for flow in scenario.flows {
        precondition(Set(flow.route).count == flow.route.count, "a route loops")
        precondition(flow.route.count >= 2 && flow.start < scenario.duration)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOneInput($0, $1) })
