import ArgumentParser
import FabricMonitor
import Foundation

struct Benchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the deadlock detector, the static check and one poll (tools/bench-monitor runs it in release).",
        discussion: "Example: rdma-monitor benchmark --fat-tree-k 90 --devices 100"
    )

    @Option(help: "Fat-tree arity k (k=90: 10,125 switches, 364,500 links).")
    var fatTreeK = 90

    @Option(help: "Share of the fat-tree's buffers paused (besides the injected deadlock).")
    var pausedShare = 0.01

    @Option(help: "RDMA devices in the fake sysfs tree for the poll benchmark.")
    var devices = 100

    @Option(help: "Repetitions (the best is reported).")
    var repetitions = 5

    @Option(help: ArgumentHelp("Also write the fat-tree and its paused buffers as a snapshot file (for `rdma-monitor fabric --snapshot`).", valueName: "file"))
    var writeSnapshot: String?

    func validate() throws {
        guard fatTreeK >= 4, fatTreeK % 2 == 0, fatTreeK <= 128 else { throw ValidationError("--fat-tree-k must be even, 4…128") }
        guard (0...1).contains(pausedShare) else { throw ValidationError("--paused-share must be 0…1") }
        guard (1...10_000).contains(devices), (1...100).contains(repetitions) else { throw ValidationError("--devices 1…10000, --repetitions 1…100") }
    }

    func run() throws {
        let clock = SystemMonotonicClock()
        func best(_ body: () throws -> Void) rethrows -> Double {
            var fastest = Double.infinity
            for _ in 0..<repetitions {
                let start = clock.now()
                try body()
                fastest = min(fastest, (clock.now() - start).seconds)
            }
            return fastest
        }
        func ms(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }

        var topology = FabricTopology.fatTree(k: fatTreeK)
        let index = { (name: String) in topology.nodeIndex(named: name)! }
        // The seed paper's incident inside the fat-tree: flooded packets bounce down-then-up at two ToRs.
        topology.turns = [[index("a0_0"), index("e0_0"), index("a0_1")], [index("a0_1"), index("e0_1"), index("a0_0")]]
        let switches = topology.nodes.count
        var graph: BufferDependencyGraph!
        let build = best { graph = BufferDependencyGraph(topology: topology) }
        let cycle = [("a0_0", "e0_0"), ("e0_0", "a0_1"), ("a0_1", "e0_1"), ("e0_1", "a0_0")].map { graph.link(from: index($0.0), to: index($0.1))! }
        var generator = SystemRandomNumberGenerator()
        var paused = Set(cycle)
        for link in 0..<graph.directedLinkCount where Double.random(in: 0..<1, using: &generator) < pausedShare { paused.insert(link) }
        let detector = DeadlockDetector(graph: graph)
        var deadlocks: [Deadlock] = []
        let detect = best { deadlocks = detector.detect(PausedBuffers(byPriority: [3: paused])) }
        var report: CyclicDependencyCheck.Report!
        let check = best { report = CyclicDependencyCheck(graph: graph).run() }

        print("fat-tree k=\(fatTreeK): \(switches) switches, \(topology.links.count) links, \(graph.directedLinkCount) buffers per priority")
        print("  build wait-for graph:   \(ms(build))")
        print("  deadlock detection:     \(ms(detect))  (\(paused.count) paused buffers, \(deadlocks.count) deadlock found: \(deadlocks.first.map { $0.buffers.map(\.node).joined(separator: "→") } ?? "none"))")
        print("  static CBD check:       \(ms(check))  (\(report.cycles.count) cyclic dependenc\(report.cycles.count == 1 ? "y" : "ies"))")

        if let writeSnapshot {
            // Each paused buffer as its switch port's tx_prio3_paused gauge.
            let ports = paused.sorted().map { link in
                PortCounters(key: PortKey(node: topology.nodes[graph.destination(of: link)].name, device: graph.arrivalPort(of: link)),
                             kind: .switch, counters: [:], gauges: ["tx_prio3_paused": 1])
            }
            let text = SnapshotFile(samples: [CounterSnapshot(time: .zero, ports: ports)], topology: topology).encoded()
            try text.write(toFile: writeSnapshot, atomically: true, encoding: .utf8)
            print("  wrote \(writeSnapshot) (\(text.utf8.count / 1_000_000) MB)")
        }

        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rdma-monitor-bench-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let names = ["sent_pkts", "rcvd_pkts", "duplicate_request", "out_of_seq_request", "rcvd_rnr_err", "send_rnr_err", "rcvd_seq_err",
                     "ack_deferred", "retry_exceeded_err", "retry_rnr_exceeded_err", "completer_retry_err", "send_err", "link_downed",
                     "rdma_sends", "rdma_recvs", "np_cnp_sent", "rp_cnp_handled", "np_ecn_marked_roce_packets", "out_of_sequence", "local_ack_timeout_err"]
        for device in 0..<devices {
            let folder = "\(root)/dev\(device)/ports/1/hw_counters"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for name in names { try "\(device)\n".write(toFile: "\(folder)/\(name)", atomically: false, encoding: .utf8) }
        }
        var monitor = Monitor(sources: [try failing { () throws(MonitorError) in try SysfsRDMASource(root: root) }], clock: clock)
        _ = try failing { () throws(MonitorError) in try monitor.poll() }
        let poll = try best { _ = try failing { () throws(MonitorError) in try monitor.poll() } }
        print("one poll, \(devices) devices × \(names.count) counters (sysfs files on tmpfs/disk, with analysis): \(ms(poll))")
    }
}
