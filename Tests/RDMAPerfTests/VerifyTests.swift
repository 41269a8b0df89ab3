import Foundation
import RDMA
import SoftRoCE
import Testing
@testable import RDMAPerf

@Suite("--verify: every received byte checked", .serialized)
struct VerifyTests {
    /// A client/server pair on soft engines: the server an ordinary one (at `address`),
    /// the client's engine at the next address with the ICRC check off — as the soft engine
    /// runs when it interoperates with kernel rxe — so a byte flipped on the wire after the
    /// ICRC was sealed reaches the client's memory instead of being dropped.
    static func pair(_ address: String) throws -> (server: OpenedDevice, client: OpenedDevice) {
        let server = try DeviceSelection.open(.soft(address: address), port: 1, gidIndex: nil) { _ in }
        let next = try #require(DeviceSelection.nextLoopbackAddress(after: address))
        let context = try Context(soft: SoftDeviceConfiguration(address: next, port: 4791, icrc: .off))
        let client = OpenedDevice(context: context, port: server.port, gidIndex: server.gidIndex, path: "test client, ICRC unchecked",
                                  maxMessageSize: server.maxMessageSize, activeMTU: server.activeMTU, cleanup: nil)
        client.softAddress = next
        return (server, client)
    }

    /// Serves one run on `server` and runs `parameters` as the client.
    static func run(_ server: OpenedDevice, _ client: OpenedDevice, _ parameters: LatencyParameters) throws(PerfError) -> [LatencyResult] {
        let listener = try ControlListener(port: 0)
        defer { listener.close() }
        let task = BackgroundTask { () throws(PerfError) in
            try ServerLoop.serve(listener: listener, connectTimeout: 60, log: { _ in }) { control, admission throws(PerfError) in
                try LatencySession.serve(opened: server, control: control, admission: admission, progressTimeout: 20,
                                         inlineSize: nil, mtu: nil, qpTimeout: 14, log: { _ in }, report: { _, _, _ in })
            }
        }
        let control = try connectControl(host: "127.0.0.1", port: listener.port, timeout: 10)
        defer { control.close() }
        do throws(PerfError) {
            let results = try LatencySession.runClient(opened: client, control: control, parameters: parameters) { _ in }
            if let error = task.wait(timeout: 60) { throw error }
            return results
        } catch {
            control.close()
            listener.stop()
            _ = task.wait(timeout: 60)
            throw error
        }
    }

    @Test("a clean path: every byte of every message of each operation checked and counted", arguments: [
        (LatencyOperation.send, 3000), (.write, 3000), (.read, 3000), (.atomic, 8), (.write, 1), (.send, 1),
    ])
    func clean(operation: LatencyOperation, size: Int) throws {
        let (server, client) = try Self.pair("127.0.26.1")
        defer { client.close(); server.close() }
        let results = try Self.run(server, client, LatencyParameters(operation: operation, sizes: [size], iterations: 40, duration: nil,
                                                                     warmup: 4, verify: true))
        #expect(results.count == 1)
        #expect(results.first?.verifiedBytes == 44 * size)   // 40 measured + 4 warm-up messages
    }

    @Test("bytes flipped on the wire (the engine's fault injection; ICRC unchecked) pass unnoticed without --verify and are named with it")
    func corruption() throws {
        let (server, client) = try Self.pair("127.0.27.1")
        defer { client.close(); server.close() }
        let engine = try #require(server.context.softEngine)
        // READ 64 KiB: 64 response packets per READ from the server, nearly all payload.
        let parameters = LatencyParameters(operation: .read, sizes: [65536], iterations: 100, duration: nil, warmup: 2)
        engine.setFaults(SoftFaultInjection(seed: 11, corrupt: 0.002))
        let unchecked = try Self.run(server, client, parameters)
        #expect(unchecked.count == 1, "the run without --verify completes: nothing else looks at the data")
        let flipped = engine.snapshotCounters().injectedCorruptions
        #expect(flipped > 0)
        var verifying = parameters
        verifying.verify = true
        do {
            _ = try Self.run(server, client, verifying)
            Issue.record("--verify passed although the engine flipped \(engine.snapshotCounters().injectedCorruptions - flipped) more bytes")
        } catch {
            #expect(error.message.contains("--verify: read message") && error.message.contains("byte"), "\(error)")
        }
        engine.setFaults(.none)
    }
}
