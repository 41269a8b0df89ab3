import RDMA
import Testing
@testable import RDMAPerf

/// `ib_send_bw`'s exchange, both roles of ours against each other on soft engines (the
/// lab's tools/perf-checks runs each against Debian's perftest): the key-line steps
/// (1 before connecting, 3 after, the close) line up, every SEND arrives.
@Suite("perftest exchange: SEND bandwidth (ib_send_bw)", .serialized)
struct PerftestSendBandwidthTests {
    @Test("our --perftest client and our server answering an ib_send_bw client", arguments: [(65536, 500), (2, 2000), (8192, 300)])
    func sendBandwidth(size: Int, iterations: Int) throws {
        let outcome = try runPerftestBandwidthPeers(operation: .send, sizes: [size], iterations: iterations, address: 31)
        if let error = outcome.served { throw error }
        let sent = try outcome.sent.get().last
        #expect(sent?.messages == iterations)
        #expect(sent?.messageSize == size)
        let theirs = try #require(outcome.received.last)
        #expect(theirs.messages == iterations - 1, "every SEND counted (the first one starts the clock)")
        #expect(theirs.messageSize == size)
        #expect(theirs.averageBytesPerSecond > 0)
    }
}
