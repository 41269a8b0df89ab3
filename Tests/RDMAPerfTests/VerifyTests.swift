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

    /// Runs `client` against one session of `serve` behind the server loop (a thread);
    /// the server side's error is thrown when the client's run succeeded.
    static func withServer<T>(_ serve: @escaping @Sendable (ControlConnection, ServerLoop.Admission) throws(PerfError) -> Void,
                              client: (ControlConnection) throws(PerfError) -> T) throws(PerfError) -> T {
        let listener = try ControlListener(port: 0)
        defer { listener.close() }
        let task = BackgroundTask { () throws(PerfError) in
            try ServerLoop.serve(listener: listener, connectTimeout: 60, log: { _ in }, session: serve)
        }
        let control = try connectControl(host: "127.0.0.1", port: listener.port, timeout: 10)
        defer { control.close() }
        do throws(PerfError) {
            let results = try client(control)
            if let error = task.wait(timeout: 60) { throw error }
            return results
        } catch {
            control.close()
            listener.stop()
            _ = task.wait(timeout: 60)
            throw error
        }
    }

    /// Serves one run on `server` and runs `parameters` as the client.
    static func run(_ server: OpenedDevice, _ client: OpenedDevice, _ parameters: LatencyParameters) throws(PerfError) -> [LatencyResult] {
        try withServer({ control, admission throws(PerfError) in
            try LatencySession.serve(opened: server, control: control, admission: admission, progressTimeout: 20,
                                     inlineSize: nil, mtu: nil, qpTimeout: 14, log: { _ in }, report: { _, _, _ in })
        }) { control throws(PerfError) in
            try LatencySession.runClient(opened: client, control: control, parameters: parameters) { _ in }
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

@Suite("rdma-throughput --verify: every byte of every message checked, in rounds", .serialized)
struct ThroughputVerifyTests {
    /// A soft-engine pair whose `unchecked` side receives with the ICRC check off (see
    /// `VerifyTests.pair`), so bytes flipped on the wire by the other side's fault
    /// injection reach its memory.
    static func pair(_ address: String, unchecked: Bool) throws -> (server: OpenedDevice, client: OpenedDevice) {
        let next = try #require(DeviceSelection.nextLoopbackAddress(after: address))
        func open(_ address: String, icrc: Bool) throws -> OpenedDevice {
            let context = try Context(soft: SoftDeviceConfiguration(address: address, port: 4791, icrc: icrc ? .automatic : .off))
            let opened = OpenedDevice(context: context, port: 1, gidIndex: 0, path: "test \(address)", maxMessageSize: 1 << 30,
                                      activeMTU: .mtu1024, cleanup: nil)
            opened.softAddress = address
            return opened
        }
        return (try open(address, icrc: !unchecked), try open(next, icrc: unchecked))
    }

    /// Serves one run on `server` and runs `parameters` as the client.
    static func run(_ server: OpenedDevice, _ client: OpenedDevice, _ parameters: ThroughputParameters) throws(PerfError) -> [BandwidthStatistics] {
        try VerifyTests.withServer({ control, admission throws(PerfError) in
            try ThroughputSession.serve(opened: server, control: control, admission: admission, progressTimeout: 20,
                                        inlineSize: nil, mtu: nil, qpTimeout: 14, log: { _ in }, report: { _ in })
        }) { control throws(PerfError) in
            try ThroughputSession.runClient(opened: client, control: control, parameters: parameters) { _ in }
        }
    }

    @Test("a clean path: every byte of every message on every QP checked and counted", arguments: [
        (BandwidthOperation.write, 3000), (.send, 3000), (.read, 3000), (.send, 1), (.write, 65536),
    ])
    func clean(operation: BandwidthOperation, size: Int) throws {
        let (server, client) = try Self.pair("127.0.28.1", unchecked: false)
        defer { client.close(); server.close() }
        // -t 16: 150 messages per QP are 10 rounds, the last one short.
        let results = try Self.run(server, client, ThroughputParameters(operation: operation, sizes: [size], iterations: 150, duration: nil,
                                                                        queuePairs: 3, sendDepth: 16, verify: true))
        #expect(results.count == 1)
        #expect(results.first?.messages == 450)
        #expect(results.first?.verifiedBytes == 450 * size)
    }

    @Test("a sweep of sizes: each size verified on its own", arguments: [BandwidthOperation.write, .send, .read])
    func sweep(operation: BandwidthOperation) throws {
        let (server, client) = try Self.pair("127.0.28.1", unchecked: false)
        defer { client.close(); server.close() }
        let sizes = [2, 64, 1000, 4096]
        let results = try Self.run(server, client, ThroughputParameters(operation: operation, sizes: sizes, iterations: 40, duration: nil,
                                                                        sendDepth: 8, verify: true))
        #expect(results.map(\.verifiedBytes) == sizes.map { 40 * $0 })
    }

    @Test("bytes flipped on the wire pass unnoticed without --verify and are named with it (the receiver's side checks)",
          arguments: [BandwidthOperation.read, .write, .send])
    func corruption(operation: BandwidthOperation) throws {
        // READ: the server's responses are corrupted and land at the client; WRITE and SEND:
        // the client's requests are corrupted and land at the server.
        let (server, client) = try Self.pair("127.0.29.1", unchecked: operation != .read)
        defer { client.close(); server.close() }
        let sender = try #require((operation == .read ? server : client).context.softEngine)
        let parameters = ThroughputParameters(operation: operation, sizes: [65536], iterations: 100, duration: nil, sendDepth: 16)
        sender.setFaults(SoftFaultInjection(seed: 13, corrupt: 0.002))
        defer { sender.setFaults(.none) }
        let unchecked = try Self.run(server, client, parameters)
        #expect(unchecked.first?.messages == 100, "the run without --verify completes: nothing else looks at the data")
        let flipped = sender.snapshotCounters().injectedCorruptions
        #expect(flipped > 0)
        var verifying = parameters
        verifying.verify = true
        do {
            _ = try Self.run(server, client, verifying)
            Issue.record("--verify passed although the engine flipped \(sender.snapshotCounters().injectedCorruptions - flipped) more bytes")
        } catch {
            #expect(error.message.contains("--verify: \(operation) 65536 B, QP 0 iteration ") && error.message.contains(", byte "), "\(error)")
        }
    }

    @Test("a hostile check is refused by name: more messages than a round holds")
    func hostileCheck() throws {
        let (server, client) = try Self.pair("127.0.28.1", unchecked: false)
        defer { client.close(); server.close() }
        let listener = try ControlListener(port: 0)
        defer { listener.close() }
        let task = BackgroundTask { () throws(PerfError) in
            try ThroughputSession.serve(opened: server, control: try listener.accept(timeout: 10), progressTimeout: 10,
                                        inlineSize: nil, mtu: nil, qpTimeout: 14, log: { _ in }, report: { _ in })
        }
        let control = try connectControl(host: "127.0.0.1", port: listener.port, timeout: 10)
        defer { control.close() }
        let queues = try ThroughputSession.prepare(opened: client, queuePairs: 1, sizes: [64], depth: 8, inlineSize: nil,
                                                   ring: VerifyRing(sizes: [64], queuePairs: 1, sendDepth: 8))
        defer { queues.close() }
        let hello = Hello(shape: .bandwidth(.write, queuePairs: 1, bidirectional: false, sendDepth: 8, completionModeration: 1),
                          sizes: [64], iterations: 100, duration: nil,
                          endpoints: try queues.endpoints(port: 1, gidIndex: 0), memory: queues.remoteDescriptor, verify: true)
        _ = try control.greet(hello, timeout: 10)
        try control.send(.go(size: 64))
        #expect(try control.receive(timeout: 10, waitingFor: "ready") == .ready)
        try control.send(.check(messages: 9))
        let error = try #require(task.wait(timeout: 30))
        #expect(error.refusedField == "check.count", "\(error)")
    }
}
