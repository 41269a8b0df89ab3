import ArgumentParser
import Congestion
import FabricSim
import Foundation

struct FabricSimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fabric-sim",
        abstract: "Simulate DCQCN and PFC on a lossless Ethernet fabric.",
        discussion: Run.examples,
        subcommands: [Run.self],
        defaultSubcommand: Run.self
    )
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a scenario file, print the summary, write CSV and SVG plots.",
        discussion: examples
    )

    static let examples = """
        Examples:
          fabric-sim run scenarios/incast-16to1.json --out out/incast
          fabric-sim run scenarios/victim-flow.json --no-dcqcn --out out/pfc
          fabric-sim run scenarios/staggered-2flows.json --stats
          fabric-sim run scenarios/flooding-4switches-deadlock.json --drop-unknown-lossless
          fabric-sim run scenarios/incast-16to1.json --no-dcqcn --pause-storm R:500 --switch-watchdog 200

        Prints the summary; --out writes summary.txt, timeseries.csv and the
        plots throughput.svg, rates.svg, queues.svg, fairness.svg.
        Scenario format: scenarios/README.md.
        """

    @Argument(help: "Scenario file (JSON).")
    var scenario: String

    @Option(help: "Directory for timeseries.csv, summary.txt and the SVG plots (created if missing).")
    var out: String?

    @Flag(help: "PFC only: senders stay at line rate and receivers send no CNPs.")
    var noDcqcn = false

    @Option(help: "Override the scenario's duration, in milliseconds.")
    var durationMilliseconds: Double?

    @Flag(help: "Print events processed, wall time and events per second.")
    var stats = false

    @Option(help: "Write the per-port pause state as an rdma-monitor snapshot file (every 10th sample).")
    var monitorSnapshot: String?

    @Option(help: ArgumentHelp("The seed paper's NIC pause storm: HOST pauses its switch for good from MICROSECONDS on.", valueName: "host:microseconds"))
    var pauseStorm: String?

    @Flag(help: "The seed paper's fix: switches drop lossless packets whose destination MAC they lack instead of flooding them.")
    var dropUnknownLossless = false

    @Option(help: ArgumentHelp("Switch PFC watchdog on every switch queue: detection and restoration window (drop action).", valueName: "microseconds"))
    var switchWatchdog: Double?

    func run() throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: scenario))
        } catch {
            throw Failure("cannot read scenario file \(scenario): \(error.localizedDescription)")
        }
        var loaded: FabricScenario
        do {
            loaded = try ScenarioLoader.load(json: data)
        } catch let error as ScenarioError {
            throw Failure("\(scenario): \(error)")
        }
        if noDcqcn { loaded.dcqcnEnabled = false }
        if dropUnknownLossless { loaded.unknownUnicast.losslessAction = .drop }
        if let switchWatchdog {
            let most = ScenarioLimits.standard.maximumTimeMicroseconds
            guard switchWatchdog > 0, switchWatchdog <= most else {
                throw ValidationError("--switch-watchdog \(switchWatchdog): give more than 0 and at most \(most) µs")
            }
            let window = Nanoseconds.roundedMicroseconds(switchWatchdog)
            loaded.pfcWatchdog = .init(detection: window, restoration: window)
        }
        if let durationMilliseconds {
            let most = ScenarioLimits.standard.maximumDurationMicroseconds / 1000
            guard durationMilliseconds > 0, durationMilliseconds <= most else {
                throw ValidationError("--duration-milliseconds \(durationMilliseconds): give more than 0 and at most \(most) ms")
            }
            loaded.duration = .roundedMicroseconds(durationMilliseconds * 1000)
            do { try ScenarioLimits.standard.check(recordingOf: loaded) } catch let error as ScenarioError {
                throw Failure("--duration-milliseconds \(durationMilliseconds): \(error)")
            }
        }
        var simulator = FabricSimulator(scenario: loaded)
        if let pauseStorm {
            let parts = pauseStorm.split(separator: ":")
            guard parts.count == 2, let host = loaded.nodeIndex(named: String(parts[0])), let start = Double(parts[1]), start >= 0,
                  simulator.injectPauseStorm(fromHost: host, at: .roundedMicroseconds(start)) else {
                throw ValidationError("--pause-storm expects HOST:MICROSECONDS with a host linked to a switch, got \(pauseStorm)")
            }
        }
        let started = ContinuousClock.now
        let result = simulator.run()
        let wall = ContinuousClock.now - started
        let report = SimulationReport(result)
        print(report.summaryText, terminator: "")
        if stats {
            let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
            print(String(format: "\nStats: %d events in %.3f s wall, %.2f M events/s", result.eventsProcessed, seconds, Double(result.eventsProcessed) / seconds / 1e6))
        }
        if let out {
            try write(report, to: out)
        }
        if let monitorSnapshot {
            do { try result.monitorSnapshotJSON(stride: 10).write(toFile: monitorSnapshot, atomically: true, encoding: .utf8) } catch {
                throw Failure("cannot write \(monitorSnapshot): \(error.localizedDescription)")
            }
        }
    }
}

extension Run {
    private func write(_ report: SimulationReport, to directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for file in report.files {
                try file.contents.write(toFile: (directory as NSString).appendingPathComponent(file.name), atomically: true, encoding: .utf8)
            }
        } catch {
            throw Failure("cannot write the results to \(directory): \(error.localizedDescription)")
        }
        print("\nWrote \(report.files.map(\.name).joined(separator: ", ")) to \(directory)/")
    }
}

/// A failure that is not a usage mistake: printed as is, without the usage text.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

FabricSimCommand.main()
