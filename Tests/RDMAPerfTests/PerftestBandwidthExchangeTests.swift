import RDMA
import Synchronization
import Testing
@testable import RDMAPerf

/// Our perftest-style server (`serverQueuePairs`) in the background and our --perftest
/// client (`clientQueuePairs`, `sizes`) here, on two soft engines; both outcomes (the
/// client's last size; `received`: what our SEND server counted, or with `bidirectional`
/// what our -b server printed).
func runPerftestBandwidthPeers(operation: BandwidthOperation, sizes: [Int], iterations: Int, duration: Double? = nil, bidirectional: Bool = false,
                               clientQueuePairs: Int = 1, serverQueuePairs: Int = 1, connection: QueuePairKind = .reliableConnected,
                               address: UInt8) throws -> (sent: Result<[BandwidthStatistics], PerfError>, served: PerfError?, report: PerftestBandwidthReport?, received: [BandwidthStatistics]) {
    let size = sizes.max() ?? 0
    let server = try DeviceSelection.open(.soft(address: "127.0.34.\(address)"), port: 1, gidIndex: nil) { _ in }
    defer { server.close() }
    let client = try DeviceSelection.open(.soft(address: "127.0.34.\(address + 1)"), port: 1, gidIndex: nil) { _ in }
    defer { client.close() }
    let listener = try ControlListener(port: 0)
    defer { listener.close() }
    let report = Mutex<PerftestBandwidthReport?>(nil)
    let received = Mutex<[BandwidthStatistics]>([])
    let parameters = ThroughputParameters(operation: operation, sizes: sizes, iterations: duration == nil ? iterations : nil, duration: duration,
                                          queuePairs: clientQueuePairs, bidirectional: bidirectional, progressTimeout: 20)
    var serverParameters = parameters
    serverParameters.queuePairs = serverQueuePairs
    let task = BackgroundTask { [serverParameters] () throws(PerfError) in
        let control = try listener.accept(timeout: 30)
        defer { control.close() }
        if bidirectional {
            let result = try PerftestBandwidth.runClient(opened: server, control: control, parameters: serverParameters, isClient: false, log: { _ in })
            received.withLock { $0 = result }
        } else if operation == .send {
            let result = try PerftestBandwidth.serveSend(opened: server, control: control, size: size, sizeCount: sizes.count,
                                                         queuePairs: serverQueuePairs, connection: connection, inlineSize: nil, qpTimeout: 14,
                                                         timeout: 20, log: { _ in })
            received.withLock { $0 = result }
        } else {
            let result = try PerftestBandwidth.serve(opened: server, control: control, queuePairs: serverQueuePairs, inlineSize: nil,
                                                     qpTimeout: 14, timeout: 20, runTimeout: 60, log: { _ in })
            report.withLock { $0 = result }
        }
    }
    let sent: Result<[BandwidthStatistics], PerfError>
    do {
        let control = try connectControl(host: "127.0.0.1", port: listener.port, timeout: 10)
        defer { control.close() }
        sent = .success(try PerftestBandwidth.runClient(opened: client, control: control, parameters: parameters, connection: connection, log: { _ in }))
    } catch {
        sent = .failure(error)
    }
    var served = task.wait(timeout: 60)
    // A side that fails closes the exchange, so the other usually fails with "the peer
    // closed": name both, the client's first, or the cause is lost.
    if let server = served, case .failure(let clientError) = sent {
        served = PerfError("client: \(clientError); server: \(server)", exitCode: server.exitCode)
    }
    return (sent, served, report.withLock { $0 }, received.withLock { $0 })
}

/// `ib_*_bw -q N`'s exchange, both roles of ours against each other on soft engines (the
/// lab's tools/perf-checks runs each against Debian's perftest): a key line per QP before
/// connecting, a remote-QP print per QP after, every QP carrying its iterations; a peer
/// with another -q is refused by name instead of hanging.
@Suite("perftest exchange: several QPs (ib_*_bw -q N)", .serialized)
struct PerftestQueuePairTests {
    @Test("our --perftest client and our server answering an ib_*_bw -q N client", arguments: [
        (BandwidthOperation.write, 4), (.read, 3), (.send, 2),
    ])
    func severalQueuePairs(operation: BandwidthOperation, queuePairs: Int) throws {
        let size = 4096, iterations = 300
        let outcome = try runPerftestBandwidthPeers(operation: operation, sizes: [size], iterations: iterations, clientQueuePairs: queuePairs,
                                                    serverQueuePairs: queuePairs, address: 1)
        if let error = outcome.served { throw error }
        let sent = try #require(try outcome.sent.get().last)
        #expect(sent.messages == iterations * queuePairs, "every QP ran -n iterations")
        #expect(sent.messageSize == size)
        if operation == .send {
            let received = try #require(outcome.received.last)
            #expect(received.messages == iterations * queuePairs - 1, "every SEND on every QP counted (the first starts the clock)")
        } else {
            let report = try #require(outcome.report)
            #expect(report.iterations == UInt64(iterations * queuePairs), "perftest's report counts the messages of all QPs (ib_write_bw -q 4 -n 1000 prints 4000)")
            #expect(report.size == UInt64(size))
            #expect(report.averageMiBps > 0)
        }
    }

    @Test("a peer with another -q is refused naming -q, either way round", arguments: [(2, 1), (1, 2), (3, 2)])
    func mismatchedQueuePairs(client: Int, server: Int) throws {
        let outcome = try runPerftestBandwidthPeers(operation: .write, sizes: [4096], iterations: 100, clientQueuePairs: client,
                                                    serverQueuePairs: server, address: 11)
        let errors = [outcome.served, outcome.sent.failure].compactMap { $0 }
        #expect(!errors.isEmpty, "a -q mismatch went unnoticed")
        #expect(errors.contains { "\($0)".contains("-q") }, "\(errors)")
    }
}

/// `ib_write_bw -a`/`ib_read_bw -a`'s exchange as our client speaks it: every size 2 … 2^23
/// in turn with no exchange between them, then the last size's report, which the server
/// (ours here, perftest's in the lab) prints.
@Suite("perftest exchange: all sizes (ib_*_bw -a)", .serialized)
struct PerftestAllSizesTests {
    @Test("our --perftest -a client against our server answering ib_send_bw -a: a key line before and after each size, every size received")
    func allSizesSend() throws {
        let sizes = (1...16).map { 1 << $0 }, iterations = 20
        let outcome = try runPerftestBandwidthPeers(operation: .send, sizes: sizes, iterations: iterations, address: 51)
        if let error = outcome.served { throw error }
        let sent = try outcome.sent.get()
        #expect(sent.map(\.messageSize) == sizes)
        #expect(sent.allSatisfy { $0.messages == iterations })
        #expect(outcome.received.map(\.messageSize) == sizes, "the server saw each size in turn")
        #expect(outcome.received.allSatisfy { $0.messages == iterations - 1 }, "\(outcome.received.map(\.messages)) (the first of each size starts its clock)")
    }

    @Test("our --perftest -a client against our server answering ib_write_bw/ib_read_bw", arguments: [BandwidthOperation.write, .read])
    func allSizes(operation: BandwidthOperation) throws {
        let sizes = (1...23).map { 1 << $0 }, iterations = 5
        let outcome = try runPerftestBandwidthPeers(operation: operation, sizes: sizes, iterations: iterations, address: 21)
        if let error = outcome.served { throw error }
        let sent = try outcome.sent.get()
        #expect(sent.map(\.messageSize) == sizes)
        #expect(sent.allSatisfy { $0.messages == iterations })
        let report = try #require(outcome.report)
        #expect(report.size == 1 << 23, "the server is told the last size's figures")
        #expect(report.iterations == UInt64(iterations))
        #expect(report.averageMiBps > 0)
    }
}

/// `ib_write_bw -D`/`ib_read_bw -D`'s exchange as our client speaks it: the run lasts -D,
/// then the same epilogue as after -n (a key line, the report the server prints, the close).
@Suite("perftest exchange: duration (ib_write_bw/ib_read_bw -D)", .serialized)
struct PerftestBandwidthDurationTests {
    @Test("our --perftest -D client against our server answering ib_write_bw/ib_read_bw -D", arguments: [BandwidthOperation.write, .read])
    func duration(operation: BandwidthOperation) throws {
        let outcome = try runPerftestBandwidthPeers(operation: operation, sizes: [4096], iterations: 0, duration: 0.3, address: 61)
        if let error = outcome.served { throw error }
        let sent = try #require(try outcome.sent.get().last)
        #expect(sent.messages > 0)
        let report = try #require(outcome.report)
        #expect(report.iterations == UInt64(sent.messages), "the server is told what the timed run moved")
        #expect(report.size == 4096)
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// `ib_write_bw -b`/`ib_read_bw -b`'s exchange, both roles of ours on soft engines (the
/// lab's tools/perf-checks runs each against Debian's perftest): one more key line, both
/// sides run, the reports are swapped and each side prints the sum of both directions.
@Suite("perftest exchange: bidirectional (ib_write_bw/ib_read_bw -b)", .serialized)
struct PerftestBidirectionalTests {
    @Test("our --perftest -b client against our -b server answering ib_write_bw/ib_read_bw/ib_atomic_bw/ib_send_bw -b",
          arguments: [BandwidthOperation.write, .read, .atomic, .send])
    func bidirectional(operation: BandwidthOperation) throws {
        let size = operation == .atomic ? BandwidthOperation.atomicSize : 4096, iterations = 200
        let outcome = try runPerftestBandwidthPeers(operation: operation, sizes: [size], iterations: iterations, bidirectional: true, address: 41)
        if let error = outcome.served { throw error }
        let mine = try #require(try outcome.sent.get().first), theirs = try #require(outcome.received.first)
        #expect(mine.messages == 2 * iterations, "both directions' messages (perftest's report counts each side's -n)")
        #expect(theirs.messages == 2 * iterations)
        #expect(mine.messageSize == size && theirs.messageSize == size)
        #expect(mine.averageBytesPerSecond > 0 && theirs.averageBytesPerSecond > 0)
    }
}

/// `ib_write_bw -D -b` (and READ, atomic): both sides run on their own clocks, then swap
/// their reports as after -n.
@Suite("perftest exchange: both ways for a time (ib_*_bw -D -b)", .serialized)
struct PerftestBidirectionalDurationTests {
    @Test("our --perftest -D -b client against our -D -b server", arguments: [BandwidthOperation.write, .read, .atomic])
    func bothWaysForATime(operation: BandwidthOperation) throws {
        let size = operation == .atomic ? BandwidthOperation.atomicSize : 4096
        let outcome = try runPerftestBandwidthPeers(operation: operation, sizes: [size], iterations: 0, duration: 0.3, bidirectional: true,
                                                    address: 171)
        if let error = outcome.served { throw error }
        let mine = try #require(try outcome.sent.get().first), theirs = try #require(outcome.received.first)
        #expect(mine.messages > 0 && mine.messages == theirs.messages, "each side sums both directions: \(mine.messages) vs \(theirs.messages)")
        #expect(mine.messageSize == size)
    }
}

/// `ib_*_bw -a -b`: each size in turn both ways — WRITE/READ with a key line before and
/// after each size's run, SEND with its receives posted and a key line before and after —
/// the reports swapped after each size.
@Suite("perftest exchange: all sizes both ways (ib_*_bw -a -b)", .serialized)
struct PerftestAllSizesBidirectionalTests {
    @Test("our --perftest -a -b client against our -a -b server", arguments: [BandwidthOperation.write, .read, .send])
    func allSizesBothWays(operation: BandwidthOperation) throws {
        let sizes = (1...12).map { 1 << $0 }, iterations = 20
        let outcome = try runPerftestBandwidthPeers(operation: operation, sizes: sizes, iterations: iterations, bidirectional: true, address: 121)
        if let error = outcome.served { throw error }
        let mine = try outcome.sent.get()
        #expect(mine.map(\.messageSize) == sizes)
        #expect(outcome.received.map(\.messageSize) == sizes)
        #expect(mine.allSatisfy { $0.messages == 2 * iterations }, "\(mine.map(\.messages))")
        #expect(outcome.received.allSatisfy { $0.messages == 2 * iterations }, "\(outcome.received.map(\.messages))")
    }
}

/// `ib_atomic_bw`: `ib_read_bw`'s exchange with 8-byte FETCH_AND_ADDs; the server is the
/// passive target and prints the client's report.
@Suite("perftest exchange: atomic bandwidth (ib_atomic_bw)", .serialized)
struct PerftestAtomicBandwidthTests {
    @Test("our --perftest --op atomic client against our server answering ib_atomic_bw, -q 1 and 2", arguments: [1, 2])
    func atomic(queuePairs: Int) throws {
        let iterations = 300
        let outcome = try runPerftestBandwidthPeers(operation: .atomic, sizes: [BandwidthOperation.atomicSize], iterations: iterations,
                                                    clientQueuePairs: queuePairs, serverQueuePairs: queuePairs, address: 131)
        if let error = outcome.served { throw error }
        let sent = try #require(try outcome.sent.get().last)
        #expect(sent.messages == iterations * queuePairs)
        #expect(sent.messageSize == 8)
        let report = try #require(outcome.report)
        #expect(report.size == 8 && report.iterations == UInt64(iterations * queuePairs))
        #expect(report.averageMiBps > 0)
    }
}

/// `ib_send_bw -D`: the client sends for -D, then the close; our SEND server counts until
/// that close (it needs no -D).
@Suite("perftest exchange: SEND bandwidth for a time (ib_send_bw -D)", .serialized)
struct PerftestSendDurationTests {
    @Test("our --perftest --op send -D client against our server answering ib_send_bw -D")
    func sendDuration() throws {
        let outcome = try runPerftestBandwidthPeers(operation: .send, sizes: [4096], iterations: 0, duration: 0.3, address: 141)
        if let error = outcome.served { throw error }
        let sent = try #require(try outcome.sent.get().last)
        #expect(sent.messages > 0)
        let received = try #require(outcome.received.last)
        #expect(received.messages == sent.messages - 1, "every SEND counted (the first starts the clock)")
    }
}

/// `ib_send_bw -c UD`: SENDs over UD QPs (each aimed at the peer's QP of the same index),
/// counted by our server until the client's close; `-a` sweeps 2 B … the path MTU.
@Suite("perftest exchange: SEND bandwidth over UD (ib_send_bw -c UD)", .serialized)
struct PerftestDatagramBandwidthTests {
    @Test("our --perftest -c UD client against our server answering ib_send_bw -c UD: one size on 2 QPs, and -a")
    func datagrams() throws {
        // 200 per QP against 256 receives posted on each: none can find its receive queue empty (UD drops those).
        let one = try runPerftestBandwidthPeers(operation: .send, sizes: [512], iterations: 200, clientQueuePairs: 2, serverQueuePairs: 2,
                                                connection: .unreliableDatagram, address: 151)
        if let error = one.served { throw error }
        let sent = try #require(try one.sent.get().last)
        #expect(sent.messages == 400)
        #expect(one.received.last?.messages == 399, "every datagram counted (the first starts the clock)")
        let swept = try runPerftestBandwidthPeers(operation: .send, sizes: (1...23).map { 1 << $0 }, iterations: 20,
                                                  connection: .unreliableDatagram, address: 161)
        if let error = swept.served { throw error }
        let sizes = try swept.sent.get().map(\.messageSize)
        let mtu = try #require(sizes.last)
        #expect(sizes == (1...mtu.trailingZeroBitCount).map { 1 << $0 }, "2 B … the path MTU")
        #expect(swept.received.map(\.messageSize) == sizes, "the server saw each size in turn")
    }
}
