import Foundation
import RDMA
import Testing
@testable import RDMAPerf

/// How runs end: a client stopped mid-run, a -D too short for figures.
@Suite("Sessions: how runs end", .serialized)
struct SessionTests {
    @Test("a server whose client stops mid-run (Ctrl-C sends bye) ends normally, not with 'unexpected bye'", arguments: [
        (ServerUnderTest.Tool.throughput, "127.0.19.1"), (ServerUnderTest.Tool.pingpong, "127.0.19.5"),
    ])
    func clientStoppedMidRun(tool: ServerUnderTest.Tool, address: String) throws {
        let server = try ServerUnderTest(tool, softAddress: address)
        let endpoint = Endpoint(queuePairNumber: 0x123, packetSequenceNumber: 7, gid: GID(ipv4: (127, 0, 0, 1)), mtu: .mtu1024)
        let hello = tool == .throughput ? HostilePeerTests.bandwidthHello(endpoint, operation: .send) : HostilePeerTests.latencyHello(endpoint)
        let size = tool == .throughput ? 4096 : 64
        let answer = try RawPeer.exchange(port: server.listener.port, hello.line + ControlMessage.go(size: size).line + ControlMessage.bye.line)
        #expect(answer.contains("\"cmd\":\"welcome\"") && answer.contains("\"cmd\":\"ready\""))
        #expect(!answer.contains("\"cmd\":\"error\""), "\(answer.suffix(300))")
        #expect(try server.finish() == 0)
        #expect(server.log.lines.contains { $0.contains("stopped the run") })
    }

    @Test("-D shorter than three measured round trips is an error naming -D, not an empty success")
    func durationTooShort() throws {
        let opened = try DeviceSelection.open(.soft(address: "127.0.20.1"), port: 1, gidIndex: nil) { _ in }
        defer { opened.close() }
        let server = try LoopbackServer(opened: opened, connectTimeout: 60) { peer, control, admission throws(PerfError) in
            try LatencySession.serve(opened: peer, control: control, admission: admission, progressTimeout: 20,
                                     inlineSize: nil, mtu: nil, qpTimeout: 14, log: { _ in }, report: { _, _, _ in })
        }
        let control = try server.connect(timeout: 10)
        defer { control.close() }
        do {
            let results = try LatencySession.runClient(opened: opened, control: control,
                                                       parameters: LatencyParameters(operation: .send, sizes: [8], iterations: nil,
                                                                                     duration: 1e-9, warmup: 5)) { _ in }
            Issue.record("-D 1 ns gave \(results.count) results and no error")
        } catch {
            #expect(error.description.contains("-D"), "\(error)")
        }
    }
}
