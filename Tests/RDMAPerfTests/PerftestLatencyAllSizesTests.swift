import RDMA
import Synchronization
import Testing
@testable import RDMAPerf

/// `ib_*_lat -a`'s exchange, both roles of ours against each other on soft engines (the
/// lab's tools/perf-checks runs each against Debian's perftest): every size in turn on the
/// same QP — `ib_send_lat` swaps a key line before each size after the first, `ib_write_lat`
/// and `ib_read_lat` go straight on — and a figure for every size on the measuring side.
@Suite("perftest exchange: all sizes (ib_*_lat -a)", .serialized)
struct PerftestLatencyAllSizesTests {
    @Test("our --perftest -a client against our server answering ib_send_lat/ib_write_lat/ib_read_lat -a",
          arguments: [LatencyOperation.send, .write, .read])
    func allSizes(operation: LatencyOperation) throws {
        // 2 B … 64 KiB: two soft engines stall on SEND/WRITE ping-pongs of 512 KiB (one size, the old code too); the lab
        // runs the whole 2 B … 8 MiB against perftest.
        let sizes = (1...16).map { 1 << $0 }, iterations = 8
        let server = try DeviceSelection.open(.soft(address: "127.0.35.1"), port: 1, gidIndex: nil) { _ in }
        defer { server.close() }
        let client = try DeviceSelection.open(.soft(address: "127.0.35.2"), port: 1, gidIndex: nil) { _ in }
        defer { client.close() }
        let listener = try ControlListener(port: 0)
        defer { listener.close() }
        let served = Mutex<[Int]>([])
        let task = BackgroundTask { () throws(PerfError) in
            let control = try listener.accept(timeout: 30)
            defer { control.close() }
            let results = try PerftestLatency.run(opened: server, control: control, isClient: false, operation: operation, sizes: sizes,
                                                  iterations: iterations, inlineSize: nil, qpTimeout: 14, timeout: 20, runTimeout: 60,
                                                  log: { _ in })
            served.withLock { $0 = results.map(\.size) }
        }
        let control = try connectControl(host: "127.0.0.1", port: listener.port, timeout: 10)
        let measured: [LatencyResult]
        do {
            defer { control.close() }
            measured = try PerftestLatency.run(opened: client, control: control, isClient: true, operation: operation, sizes: sizes,
                                               iterations: iterations, inlineSize: nil, qpTimeout: 14, timeout: 20, log: { _ in })
        }
        if let error = task.wait(timeout: 60) { throw error }
        #expect(measured.map(\.size) == sizes, "a figure for every size, in order")
        // SEND/READ: the last round trip ends at its reply, so every iteration is a sample;
        // WRITE: a sample is the period between two of our posts.
        #expect(measured.allSatisfy { $0.statistics.sampleCount == (operation == .write ? iterations - 1 : iterations) },
                "\(measured.map(\.statistics.sampleCount))")
        // ib_write_lat's server role times its own posts too; the SEND echo and the READ target do not measure.
        #expect(served.withLock { $0 } == (operation == .write ? sizes : []))
    }
}
