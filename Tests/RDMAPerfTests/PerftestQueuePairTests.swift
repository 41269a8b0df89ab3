import RDMA
import Synchronization
import Testing
@testable import RDMAPerf

/// `ib_*_bw -q N`'s exchange, both roles of ours against each other on soft engines (the
/// lab's tools/perf-checks runs each against Debian's perftest): a key line per QP before
/// connecting, a remote-QP print per QP after, every QP carrying its iterations; a peer
/// with another -q is refused by name instead of hanging.
@Suite("perftest exchange: several QPs (ib_*_bw -q N)", .serialized)
struct PerftestQueuePairTests {
    /// Runs our perftest-style server (`serverQueuePairs`) in the background and our
    /// --perftest client (`clientQueuePairs`) here; returns both outcomes.
    func run(operation: BandwidthOperation, size: Int, iterations: Int, clientQueuePairs: Int, serverQueuePairs: Int,
             address: UInt8) throws -> (sent: Result<BandwidthStatistics?, PerfError>, served: PerfError?, report: PerftestBandwidthReport?, received: BandwidthStatistics?) {
        let server = try DeviceSelection.open(.soft(address: "127.0.34.\(address)"), port: 1, gidIndex: nil) { _ in }
        defer { server.close() }
        let client = try DeviceSelection.open(.soft(address: "127.0.34.\(address + 1)"), port: 1, gidIndex: nil) { _ in }
        defer { client.close() }
        let listener = try ControlListener(port: 0)
        defer { listener.close() }
        let report = Mutex<PerftestBandwidthReport?>(nil)
        let received = Mutex<BandwidthStatistics?>(nil)
        let task = BackgroundTask { () throws(PerfError) in
            let control = try listener.accept(timeout: 30)
            defer { control.close() }
            if operation == .send {
                let result = try PerftestBandwidth.serveSend(opened: server, control: control, size: size, queuePairs: serverQueuePairs,
                                                             inlineSize: nil, qpTimeout: 14, timeout: 5, log: { _ in })
                received.withLock { $0 = result }
            } else {
                let result = try PerftestBandwidth.serve(opened: server, control: control, queuePairs: serverQueuePairs, inlineSize: nil,
                                                         qpTimeout: 14, timeout: 5, runTimeout: 30, log: { _ in })
                report.withLock { $0 = result }
            }
        }
        let sent: Result<BandwidthStatistics?, PerfError>
        do {
            let control = try connectControl(host: "127.0.0.1", port: listener.port, timeout: 10)
            defer { control.close() }
            let parameters = ThroughputParameters(operation: operation, sizes: [size], iterations: iterations, duration: nil,
                                                  queuePairs: clientQueuePairs, progressTimeout: 5)
            sent = .success(try PerftestBandwidth.runClient(opened: client, control: control, parameters: parameters, log: { _ in }).last)
        } catch {
            sent = .failure(error)
        }
        let served = task.wait(timeout: 60)
        return (sent, served, report.withLock { $0 }, received.withLock { $0 })
    }

    @Test("our --perftest client and our server answering an ib_*_bw -q N client", arguments: [
        (BandwidthOperation.write, 4), (.read, 3), (.send, 2),
    ])
    func severalQueuePairs(operation: BandwidthOperation, queuePairs: Int) throws {
        let size = 4096, iterations = 300
        let outcome = try run(operation: operation, size: size, iterations: iterations, clientQueuePairs: queuePairs,
                              serverQueuePairs: queuePairs, address: 1)
        if let error = outcome.served { throw error }
        let sent = try #require(try outcome.sent.get())
        #expect(sent.messages == iterations * queuePairs, "every QP ran -n iterations")
        #expect(sent.messageSize == size)
        if operation == .send {
            let received = try #require(outcome.received)
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
        let outcome = try run(operation: .write, size: 4096, iterations: 100, clientQueuePairs: client, serverQueuePairs: server, address: 11)
        let errors = [outcome.served, outcome.sent.failure].compactMap { $0 }
        #expect(!errors.isEmpty, "a -q mismatch went unnoticed")
        #expect(errors.contains { "\($0)".contains("-q") }, "\(errors)")
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
