import RDMA
import Testing
@testable import RDMAPerf

/// `rdma-throughput -q N`: how evenly the QPs shared the path, per QP and as Jain's index.
@Suite("per-QP bandwidth spread", .serialized)
struct QueuePairSpreadTests {
    @Test("Jain's index, minimum, median and maximum of per-QP rates")
    func arithmetic() throws {
        let even = try #require(QueuePairSpread(rates: [5, 5, 5, 5]))
        #expect(even.jainIndex == 1 && even.minimumBytesPerSecond == 5 && even.maximumBytesPerSecond == 5)
        let uneven = try #require(QueuePairSpread(rates: [100, 100, 50]))
        #expect(abs(uneven.jainIndex - 62_500.0 / 67_500.0) < 1e-12)
        #expect(uneven.medianBytesPerSecond == 100 && uneven.minimumBytesPerSecond == 50)
        let hog = try #require(QueuePairSpread(rates: [1_000_000, 1, 1, 1]))
        #expect(hog.jainIndex < 0.26)                       // → 1/n as one QP takes everything
        #expect(QueuePairSpread(rates: [7]) == nil)          // one QP: no spread
        #expect(QueuePairSpread(rates: [7, 0]) == nil)       // a QP that never finished
    }

    @Test("a -q 8 WRITE run reports each QP's bandwidth; a -q 1 run none")
    func reportedByTheRun() throws {
        // 127.0.36.x: the all-sizes exchange suite, which may run at the same time, binds 127.0.35.x.
        let server = try DeviceSelection.open(.soft(address: "127.0.36.1"), port: 1, gidIndex: nil) { _ in }
        let client = try server.openLoopbackPeer()
        defer { client.close(); server.close() }
        for queuePairs in [8, 1] {
            let results = try VerifyTests.withServer({ control, admission throws(PerfError) in
                try ThroughputSession.serve(opened: server, control: control, admission: admission, progressTimeout: 20,
                                            inlineSize: nil, mtu: nil, qpTimeout: 14, log: { _ in }, report: { _ in })
            }) { control throws(PerfError) in
                try ThroughputSession.runClient(opened: client, control: control,
                                                parameters: ThroughputParameters(operation: .write, sizes: [65536], iterations: 200, duration: nil,
                                                                                 queuePairs: queuePairs)) { _ in }
            }
            let result = try #require(results.first)
            #expect(result.messages == 200 * queuePairs)
            guard queuePairs > 1 else { #expect(result.queuePairSpread == nil); continue }
            let spread = try #require(result.queuePairSpread)
            #expect(spread.queuePairs == 8)
            #expect(spread.minimumBytesPerSecond <= spread.medianBytesPerSecond && spread.medianBytesPerSecond <= spread.maximumBytesPerSecond)
            #expect(spread.jainIndex > 0.125 && spread.jainIndex <= 1.000_001)
            // Each QP moved 200 × 64 KiB by the run's end: none is slower than the whole run allows.
            #expect(spread.minimumBytesPerSecond * result.elapsedSeconds >= 200 * 65536 * 0.999)
        }
    }
}
