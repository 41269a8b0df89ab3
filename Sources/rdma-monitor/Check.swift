import ArgumentParser
import FabricMonitor
import Foundation

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Static check: does the routing admit a cyclic buffer dependency?",
        discussion: "Exit status: 0 free, 3 a cyclic buffer dependency exists, 1 error.\nExample: rdma-monitor check scenarios-topology.json"
    )

    @Argument(help: ArgumentHelp("A topology file, or a snapshot file carrying one.", valueName: "file"))
    var file: String

    func run() throws {
        let topology = try failing { () throws(MonitorError) -> FabricTopology in
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            guard text.contains(SnapshotFile.formatName) else { return try FabricTopology.load(path: file) }
            guard let topology = try SnapshotFile.load(path: file).topology else {
                throw MonitorError("snapshot \(file)", "carries no topology; give a topology file")
            }
            return topology
        }
        let report = CyclicDependencyCheck(topology: topology).run()
        print("\(report.buffers) buffers per lossless priority (\(topology.losslessPriorities.map(String.init).joined(separator: ","))): " +
              (report.isFree ? "no cyclic buffer dependency" : "\(report.cycles.count) cyclic buffer dependenc\(report.cycles.count == 1 ? "y" : "ies")"))
        for (cycle, size) in zip(report.cycles, report.componentSizes) {
            print("  \(size) buffers wait on each other, e.g. " + cycle.map(\.description).joined(separator: " → "))
        }
        if !report.isFree { throw ExitCode(3) }
    }
}
