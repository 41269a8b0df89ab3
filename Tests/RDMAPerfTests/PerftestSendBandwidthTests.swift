import RDMA
import Synchronization
import Testing
@testable import RDMAPerf

/// `ib_send_bw`'s exchange, both roles of ours against each other on soft engines (the
/// lab's tools/perf-checks runs each against Debian's perftest): the key-line steps
/// (1 before connecting, 3 after, the close) line up, every SEND arrives.
@Suite("perftest exchange: SEND bandwidth (ib_send_bw)", .serialized)
struct PerftestSendBandwidthTests {
    @Test("our --perftest client and our server answering an ib_send_bw client", arguments: [(65536, 500), (2, 2000), (8192, 300)])
    func sendBandwidth(size: Int, iterations: Int) throws {
        let server = try DeviceSelection.open(.soft(address: "127.0.33.1"), port: 1, gidIndex: nil) { _ in }
        defer { server.close() }
        let client = try DeviceSelection.open(.soft(address: "127.0.33.2"), port: 1, gidIndex: nil) { _ in }
        defer { client.close() }
        let listener = try ControlListener(port: 0)
        defer { listener.close() }
        let received = Mutex<BandwidthStatistics?>(nil)
        let task = BackgroundTask { () throws(PerfError) in
            let control = try listener.accept(timeout: 30)
            defer { control.close() }
            let result = try PerftestBandwidth.serveSend(opened: server, control: control, size: size, inlineSize: nil, qpTimeout: 14,
                                                         timeout: 20, log: { _ in })
            received.withLock { $0 = result }
        }
        let control = try connectControl(host: "127.0.0.1", port: listener.port, timeout: 10)
        defer { control.close() }
        let parameters = ThroughputParameters(operation: .send, sizes: [size], iterations: iterations, duration: nil, progressTimeout: 20)
        let sent = try PerftestBandwidth.runClient(opened: client, control: control, parameters: parameters, log: { _ in }).last
        if let error = task.wait(timeout: 60) { throw error }
        #expect(sent?.messages == iterations)
        #expect(sent?.messageSize == size)
        let theirs = try #require(received.withLock { $0 })
        #expect(theirs.messages == iterations - 1, "every SEND counted (the first one starts the clock)")
        #expect(theirs.messageSize == size)
        #expect(theirs.averageBytesPerSecond > 0)
    }
}
