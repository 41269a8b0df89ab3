/// The summary's lines about unknown-unicast flooding and the switch PFC watchdog; empty
/// when the scenario uses neither.
///
/// ```swift
/// print(SwitchFaultsText(result).text, terminator: "")
/// ```
public struct SwitchFaultsText: Sendable {
    public let text: String

    public init(_ result: SimulationResult) {
        let scenario = result.scenario
        var lines: [String] = []
        if !scenario.unknownUnicast.missingMACEntries.isEmpty {
            let names = scenario.nodes.map(\.name)
            let missing = scenario.unknownUnicast.missingMACEntries.map { "\(names[$0.switchNode]) lacks \(names[$0.host])" }
            lines.append("Unknown unicast (\(missing.joined(separator: ", "))): lossless packets \(scenario.unknownUnicast.losslessAction == .flood ? "flooded" : "dropped")")
            let flooded = result.ports.filter { $0.floodedCopiesSent > 0 }.map { "\($0.name) \($0.floodedCopiesSent)" }
            if !flooded.isEmpty { lines.append("  flooded copies queued: " + flooded.joined(separator: ", ")) }
            let dropped = result.ports.filter { $0.unknownDestinationDrops > 0 }.map { "\($0.ingressName) \($0.unknownDestinationDrops)" }
            if !dropped.isEmpty { lines.append("  dropped on arrival: " + dropped.joined(separator: ", ")) }
        }
        if let watchdog = scenario.pfcWatchdog {
            lines.append("Switch PFC watchdog (detection \(watchdog.detection), restoration \(watchdog.restoration), action drop)")
            let acted = result.ports.filter { $0.watchdogDetections > 0 }
            if acted.isEmpty { lines.append("  no storm detected") }
            for port in acted {
                let first = port.watchdogFirstDetection.map { " (first at \($0))" } ?? ""
                lines.append("  \(port.name): \(port.watchdogDetections) detected\(first), \(port.watchdogRestorations) restored, "
                             + "\(port.watchdogDroppedPackets) packets dropped\(port.watchdogDroppingAtEnd ? ", still dropping at the end" : "")")
            }
        }
        text = lines.isEmpty ? "" : "\n" + lines.joined(separator: "\n") + "\n"
    }
}
