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
    /// Our server answering an `ib_*_lat` client (in the background) and our --perftest
    /// client, on two soft engines; the client's figures and the server's.
    static func run(operation: LatencyOperation, sizes: [Int], serverSizes: [Int]? = nil, iterations: Int, clientDuration: Double? = nil,
                    serverDuration: Double? = nil, connection: QueuePairKind = .reliableConnected,
                    address: UInt8) throws -> (measured: [LatencyResult], served: [LatencyResult]) {
        let server = try DeviceSelection.open(.soft(address: "127.0.35.\(address)"), port: 1, gidIndex: nil) { _ in }
        defer { server.close() }
        let client = try DeviceSelection.open(.soft(address: "127.0.35.\(address + 1)"), port: 1, gidIndex: nil) { _ in }
        defer { client.close() }
        let listener = try ControlListener(port: 0)
        defer { listener.close() }
        let served = Mutex<[LatencyResult]>([])
        let task = BackgroundTask { () throws(PerfError) in
            let control = try listener.accept(timeout: 30)
            defer { control.close() }
            let results = try PerftestLatency.run(opened: server, control: control, isClient: false, operation: operation, connection: connection,
                                                  sizes: serverSizes ?? sizes,
                                                  iterations: iterations, duration: serverDuration, inlineSize: nil, qpTimeout: 14,
                                                  timeout: 20, runTimeout: 60, log: { _ in })
            served.withLock { $0 = results }
        }
        let control = try connectControl(host: "127.0.0.1", port: listener.port, timeout: 10)
        let measured: [LatencyResult]
        do {
            defer { control.close() }
            measured = try PerftestLatency.run(opened: client, control: control, isClient: true, operation: operation, connection: connection,
                                               sizes: sizes,
                                               iterations: iterations, duration: clientDuration, inlineSize: nil, qpTimeout: 14, timeout: 20,
                                               log: { _ in })
        }
        if let error = task.wait(timeout: 60) { throw error }
        return (measured, served.withLock { $0 })
    }

    @Test("our --perftest -a client against our server answering ib_send_lat/ib_write_lat/ib_read_lat -a",
          arguments: [LatencyOperation.send, .write, .read])
    func allSizes(operation: LatencyOperation) throws {
        // 2 B … 64 KiB: two soft engines stall on SEND/WRITE ping-pongs of 512 KiB (one size, the old code too); the lab
        // runs the whole 2 B … 8 MiB against perftest.
        let sizes = (1...16).map { 1 << $0 }, iterations = 8
        let (measured, served) = try Self.run(operation: operation, sizes: sizes, iterations: iterations, address: 1)
        #expect(measured.map(\.size) == sizes, "a figure for every size, in order")
        // SEND/READ: the last round trip ends at its reply, so every iteration is a sample;
        // WRITE: a sample is the period between two of our posts.
        #expect(measured.allSatisfy { $0.statistics.sampleCount == (operation == .write ? iterations - 1 : iterations) },
                "\(measured.map(\.statistics.sampleCount))")
        // ib_write_lat's server role times its own posts too; the SEND echo and the READ target do not measure.
        #expect(served.map(\.size) == (operation == .write ? sizes : []))
    }

    @Test("our server as the target of ib_read_lat -a / ib_atomic_lat needs none of the client's flags (its default -s 2, -n 1000)",
          arguments: [LatencyOperation.read, .atomic])
    func targetNeedsNoFlags(operation: LatencyOperation) throws {
        let sizes = operation == .read ? (1...23).map { 1 << $0 } : [8]
        let (measured, _) = try Self.run(operation: operation, sizes: sizes, serverSizes: [operation == .read ? 2 : 8], iterations: 4, address: 41)
        #expect(measured.map(\.size) == sizes, "every size read from the server's region")
    }
}

/// `ib_send_lat -D`/`ib_read_lat -D`/`ib_write_lat -D`'s exchange: no run length is exchanged, each side runs
/// on its own clock (perftest's from its first received message) and then closes.
@Suite("perftest exchange: duration (ib_*_lat -D)", .serialized)
struct PerftestLatencyDurationTests {
    @Test("our --perftest -D client against our server answering ib_send_lat/ib_read_lat -D", arguments: [LatencyOperation.send, .read])
    func duration(operation: LatencyOperation) throws {
        let (measured, _) = try PerftestLatencyAllSizesTests.run(operation: operation, sizes: [64], iterations: 1000, clientDuration: 0.3,
                                                                 serverDuration: 0.3, address: 11)
        let result = try #require(measured.first)
        #expect(result.size == 64)
        #expect(result.statistics.sampleCount > 0)
        #expect(result.statistics.sampleCount != 1000, "ran by time, not by -n")
    }

    /// `ib_write_lat -D`: the marker ping-pong runs until each side's own clock runs out;
    /// a side whose peer stopped first stops waiting when its own -D ends.
    @Test("our --perftest -D client against our server answering ib_write_lat -D (each side's clock; the server's shorter)",
          arguments: [(0.3, 0.3), (0.4, 0.2), (0.2, 0.4)])
    func writeDuration(client: Double, server: Double) throws {
        let (measured, served) = try PerftestLatencyAllSizesTests.run(operation: .write, sizes: [64], iterations: 1000, clientDuration: client,
                                                                      serverDuration: server, address: 31)
        let mine = try #require(measured.first), theirs = try #require(served.first)
        #expect(mine.size == 64 && theirs.size == 64)
        #expect(mine.statistics.sampleCount > 0 && theirs.statistics.sampleCount > 0, "\(mine.statistics.sampleCount), \(theirs.statistics.sampleCount)")
        #expect(mine.statistics.sampleCount != 999, "ran by time, not by -n")
        // Both sides time the same lockstep rounds until the first one stops.
        #expect(abs(mine.statistics.sampleCount - theirs.statistics.sampleCount) <= 2, "\(mine.statistics.sampleCount) vs \(theirs.statistics.sampleCount)")
    }

    @Test("a SEND server that stops first (its clock starts and ends earlier): the client drops the unanswered round trip instead of failing")
    func serverStopsFirst() throws {
        let (measured, _) = try PerftestLatencyAllSizesTests.run(operation: .send, sizes: [8], iterations: 1000, clientDuration: 0.6,
                                                                 serverDuration: 0.15, address: 21)
        let result = try #require(measured.first)
        #expect(result.statistics.sampleCount > 0)
    }
}

/// `ib_send_lat -c UD`: the same exchange over UD QPs — each SEND aimed at the peer's QP
/// through an address handle, each receive with room for the route header — and `-a`
/// sweeping 2 B … the path MTU.
@Suite("perftest exchange: SEND latency over UD (ib_send_lat -c UD)", .serialized)
struct PerftestDatagramLatencyTests {
    @Test("our --perftest -c UD client against our server answering ib_send_lat -c UD, one size and -a")
    func datagrams() throws {
        let (one, _) = try PerftestLatencyAllSizesTests.run(operation: .send, sizes: [64], iterations: 200, connection: .unreliableDatagram, address: 51)
        #expect(one.map(\.size) == [64])
        #expect(one.first?.statistics.sampleCount == 200)
        let (swept, _) = try PerftestLatencyAllSizesTests.run(operation: .send, sizes: (1...23).map { 1 << $0 }, iterations: 20,
                                                              connection: .unreliableDatagram, address: 61)
        let mtu = try #require(swept.last?.size)
        #expect(swept.map(\.size) == (1...mtu.trailingZeroBitCount).map { 1 << $0 }, "2 B … the path MTU, as ib_send_lat -c UD -a")
        #expect([256, 512, 1024, 2048, 4096].contains(mtu))
    }
}
