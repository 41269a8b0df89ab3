import RDMA
import Testing
@testable import RDMAPerf

/// `-e`: the loops sleep on a completion channel instead of spinning, and the runs still
/// account for every message.
@Suite("-e: waiting on completion events", .serialized)
struct CompletionEventTests {
    static func pair(_ address: String) throws -> (server: OpenedDevice, client: OpenedDevice) {
        let server = try DeviceSelection.open(.soft(address: address), port: 1, gidIndex: nil) { _ in }
        let client = try server.openLoopbackPeer()
        server.completionEvents = true
        client.completionEvents = true
        return (server, client)
    }

    @Test("latency: every round trip measured, the client woken by events", arguments: [LatencyOperation.send, .read, .atomic])
    func latency(operation: LatencyOperation) throws {
        let (server, client) = try Self.pair("127.0.34.71")
        defer { client.close(); server.close() }
        let results = try VerifyTests.withServer({ control, admission throws(PerfError) in
            try LatencySession.serve(opened: server, control: control, admission: admission, progressTimeout: 20,
                                     inlineSize: nil, mtu: nil, qpTimeout: 14, log: { _ in }, report: { _, _, _ in })
        }) { control throws(PerfError) in
            try LatencySession.runClient(opened: client, control: control,
                                         parameters: LatencyParameters(operation: operation, sizes: [8], iterations: 200, duration: nil, warmup: 10)) { _ in }
        }
        let result = try #require(results.first)
        #expect(result.statistics.sampleCount == 200)
        // 210 round trips, each one waited for: a completion found by the poll right after
        // arming needs no event, the others end a wait on the channel.
        #expect((result.completionEventWakeups ?? 0) > 0, "\(String(describing: result.completionEventWakeups))")
    }

    @Test("bandwidth: every message counted, the sender woken by events", arguments: [BandwidthOperation.write, .send, .read])
    func bandwidth(operation: BandwidthOperation) throws {
        let (server, client) = try Self.pair("127.0.34.71")
        defer { client.close(); server.close() }
        let results = try VerifyTests.withServer({ control, admission throws(PerfError) in
            try ThroughputSession.serve(opened: server, control: control, admission: admission, progressTimeout: 20,
                                        inlineSize: nil, mtu: nil, qpTimeout: 14, log: { _ in }, report: { _ in })
        }) { control throws(PerfError) in
            try ThroughputSession.runClient(opened: client, control: control,
                                            parameters: ThroughputParameters(operation: operation, sizes: [4096], iterations: 2000, duration: nil,
                                                                             sendDepth: 64, completionModeration: 16)) { _ in }
        }
        let result = try #require(results.first)
        #expect(result.messages == 2000)
        // Counted in -e mode. Whether the sender had to sleep at all is timing: on the soft engine
        // its poll drives the engine, and since GSO a WRITE's completions are often there when it
        // looks (0 wakeups in one CI run). The latency test above asserts real wakeups.
        #expect(result.completionEventWakeups != nil)
    }

    @Test("-e with --op write (a WRITE ping-pong has no completion to wake it) and -e with --spin are refused by name")
    func refusals() throws {
        do {
            _ = try PingPongCommand.parse(["--loopback", "-e", "--op", "write"]).parameters()
            Issue.record("-e --op write accepted")
        } catch let error as PerfError {
            #expect(error.exitCode == 2 && error.message.contains("-e with --op write"), "\(error)")
        }
        do {
            _ = try PingPongCommand.parse(["--loopback", "-e", "--spin"]).parameters()
            Issue.record("-e --spin accepted")
        } catch let error as PerfError {
            #expect(error.exitCode == 2 && error.message.contains("-e and --spin"), "\(error)")
        }
    }
}
