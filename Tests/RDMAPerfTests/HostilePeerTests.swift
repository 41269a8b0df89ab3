import Foundation
import RDMA
import Testing
@testable import RDMAPerf

/// A scripted client that sends what it is given to a server's exchange port, closes its
/// sending half, and reads whatever the server answers until the server closes.
enum RawPeer {
    static func exchange(port: UInt16, _ bytes: [UInt8]) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PerfError("socket()") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else { throw PerfError("connect(): \(String(cString: strerror(errno)))") }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { break }   // the server refused and closed early: fine
            offset += written
        }
        shutdown(fd, Int32(SHUT_WR))
        var answer = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        // A safety bound only: the server answers and closes as soon as it has refused.
        let deadline = MonotonicClock.deadline(after: 60)
        while MonotonicClock.nanoseconds() < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 200) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            answer += buffer[0..<count]
        }
        return String(decoding: answer, as: UTF8.self)
    }
}

/// Lines of JSON built from an honest message, then altered one field at a time.
struct HostileLine {
    static func from(_ message: ControlMessage, _ change: (inout [String: Any]) -> Void = { _ in }) -> [UInt8] {
        var object = (try? JSONSerialization.jsonObject(with: Data(message.line.dropLast()))) as? [String: Any] ?? [:]
        change(&object)
        var bytes = Array((try? JSONSerialization.data(withJSONObject: object)) ?? Data())
        bytes.append(0x0A)
        return bytes
    }

    /// Seeded blobs: JSON-looking ones (taking our path) and others (taking perftest's).
    static func blobs(count: Int, seed: UInt64) -> [[UInt8]] {
        var state = seed
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        return (0..<count).map { index in
            var blob = (0..<(16 + Int(next() % 200))).map { _ in UInt8(truncatingIfNeeded: next()) }
            if index % 2 == 0 { blob[0] = UInt8(ascii: "{") } else if blob[0] == UInt8(ascii: "{") { blob[0] = 0x01 }
            blob.append(0x0A)
            return blob
        }
    }
}

/// One tool's server on a soft engine, running the command's own server role on a
/// thread, with its refusals collected; and the device an honest client uses.
final class ServerUnderTest: @unchecked Sendable {
    let server: OpenedDevice
    let client: OpenedDevice
    let listener: ControlListener
    let log = LineLog()
    private var task: BackgroundTask!
    private var refused = 0

    enum Tool { case pingpong, throughput }

    init(_ tool: Tool, softAddress: String) throws {
        server = try DeviceSelection.open(.soft(address: softAddress), port: 1, gidIndex: nil) { _ in }
        client = try server.openLoopbackPeer()
        listener = try ControlListener(port: 0)
        let arguments = ["--soft", softAddress, "--timeout", "20", "--connect-timeout", "120", "--output", "latency"]
        let (server, listener, log) = (self.server, self.listener, self.log)
        switch tool {
        case .pingpong:
            nonisolated(unsafe) let command = try PingPongCommand.parse(arguments)
            let parameters = try command.parameters()
            let printer = LatencyPrinter(json: nil, output: .latency, operation: .send)
            task = BackgroundTask { [self] () throws(PerfError) in
                refused = try command.serve(opened: server, listener: listener, parameters: parameters, printer: printer, log: log.append)
            }
        case .throughput:
            nonisolated(unsafe) let command = try ThroughputCommand.parse(arguments)
            let printer = BandwidthPrinter(json: nil, output: .bandwidth, gigabits: false, operation: .write, queuePairs: 1,
                                           bidirectional: false, path: "test")
            task = BackgroundTask { [self] () throws(PerfError) in
                refused = try command.serve(opened: server, listener: listener, printer: printer, log: log.append)
            }
        }
    }

    /// Sends `bytes` as one client and returns the log line of its refusal.
    func refusal(of bytes: [UInt8]) throws -> (answer: String, logged: String) {
        let before = log.lines.count
        let answer = try RawPeer.exchange(port: listener.port, bytes)
        // The server logs the refusal before it closes the connection we just saw close.
        let lines = log.lines
        return (answer, lines.count > before ? lines[before...].joined(separator: "\n") : "")
    }

    func honestEndpoint() -> Endpoint {
        Endpoint(queuePairNumber: 0x123, packetSequenceNumber: 7, gid: GID(ipv4: (127, 0, 0, 1)), mtu: .mtu1024)
    }

    /// Waits for the server role to end; returns how many clients it refused.
    func finish() throws -> Int {
        if let error = task.wait(timeout: 120) { throw error }
        return refused
    }

    deinit {
        listener.stop()
        client.close()
        server.close()
    }
}

@Suite("Hostile peers: every bad field refused by name, floods and stalls dropped, the next honest client served", .serialized)
struct HostilePeerTests {
    static func latencyHello(_ endpoint: Endpoint, operation: LatencyOperation = .send) -> ControlMessage {
        .hello(Hello(shape: .latency(operation, warmup: 5), sizes: [64], iterations: 100, duration: nil, endpoints: [endpoint],
                     memory: RemoteMemory(address: 0x10000, rkey: 5, length: 256)))
    }

    static func bandwidthHello(_ endpoint: Endpoint, operation: BandwidthOperation = .write) -> ControlMessage {
        .hello(Hello(shape: .bandwidth(operation, queuePairs: 1, bidirectional: false, sendDepth: 128, completionModeration: 100),
                     sizes: [4096], iterations: 100, duration: nil, endpoints: [endpoint],
                     memory: RemoteMemory(address: 0x10000, rkey: 5, length: 8192)))
    }

    /// (what is sent, the field the refusal must name).
    static func latencyCases(_ endpoint: Endpoint) -> [([UInt8], String)] {
        let hello = latencyHello(endpoint)
        let endpointObject = { (change: (inout [String: Any]) -> Void) -> [[String: Any]] in
            var object = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(endpoint))) as? [String: Any] ?? [:]
            change(&object)
            return [object]
        }
        return [
            (HostileLine.from(hello) { $0["sizes"] = [-1] }, "hello.sizes[0]"),
            (HostileLine.from(hello) { $0["sizes"] = [0] }, "hello.sizes[0]"),
            (HostileLine.from(hello) { $0["sizes"] = [1 << 40] }, "hello.sizes[0]"),
            (HostileLine.from(hello) { $0["sizes"] = Array(repeating: 2, count: 100) }, "hello.sizes"),
            (HostileLine.from(hello) { $0["sizes"] = nil }, "hello.sizes"),
            (HostileLine.from(hello) { $0["memory"] = ["address": 0x10000, "rkey": 5, "length": 1] }, "hello.memory.length"),
            (HostileLine.from(hello) { $0["memory"] = ["address": UInt64.max - 10, "rkey": 5, "length": 256] }, "hello.memory.address"),
            (HostileLine.from(hello) { $0["iterations"] = 1 << 62 }, "hello.iterations"),
            (HostileLine.from(hello) { $0["iterations"] = -1 }, "hello.iterations"),
            (HostileLine.from(hello) { $0["iterations"] = nil; $0["duration"] = 1e300 }, "hello.duration"),
            (HostileLine.from(hello) { $0["warmup"] = -1 }, "hello.warmup"),
            (HostileLine.from(hello) { $0["endpoints"] = [] as [Any] }, "hello.endpoints"),
            (HostileLine.from(hello) { $0["endpoints"] = endpointObject { $0["qpn"] = 0 } }, "hello.endpoints[0].qpn"),
            (HostileLine.from(hello) { $0["endpoints"] = endpointObject { $0["psn"] = 1 << 24 } }, "hello.endpoints[0].psn"),
            (HostileLine.from(hello) { $0["version"] = 1 }, "hello.version"),
            (HostileLine.from(hello) { $0["op"] = "bogus" }, "hello.op"),
            (HostileLine.from(hello) { $0["op"] = "atomic" }, "hello.sizes"),
            (HostileLine.from(bandwidthHello(endpoint)), "hello.tool"),
            (ControlMessage.go(size: 8).line, "cmd"),
            (Array("{\"cmd\":\"hello\",\"sizes\":\"x\"}\n".utf8), "message"),
            ([UInt8(ascii: "{")] + [UInt8](repeating: 0x20, count: ControlMessage.maximumLineLength + 10), "message"),
            // Admitted (a valid hello, QPs connected, welcome sent), then a bad message.
            (hello.line + HostileLine.from(.go(size: 64)) { $0["size"] = -1 }, "go.size"),
            (hello.line + ControlMessage.go(size: 3).line, "go.size"),
            (hello.line + hello.line, "cmd"),
        ]
    }

    static func bandwidthCases(_ endpoint: Endpoint) -> [([UInt8], String)] {
        let hello = bandwidthHello(endpoint)
        let send = bandwidthHello(endpoint, operation: .send)
        return [
            (HostileLine.from(hello) { $0["qps"] = 20_000 }, "hello.qps"),
            (HostileLine.from(hello) { $0["qps"] = -1 }, "hello.qps"),
            (HostileLine.from(hello) { $0["txDepth"] = -1 }, "hello.txDepth"),
            (HostileLine.from(hello) { $0["qps"] = 1024; $0["txDepth"] = 8192 }, "hello.txDepth"),
            (HostileLine.from(hello) { $0["cqMod"] = 0 }, "hello.cqMod"),
            (HostileLine.from(hello) { $0["qps"] = nil }, "hello.qps"),
            (HostileLine.from(hello) { $0["qps"] = 2 }, "hello.endpoints"),
            (HostileLine.from(hello) { $0["sizes"] = [-1] }, "hello.sizes[0]"),
            (HostileLine.from(hello) { $0["memory"] = ["address": 0x10000, "rkey": 5, "length": 1] }, "hello.memory.length"),
            (HostileLine.from(hello) { $0["iterations"] = 1 << 62 }, "hello.iterations"),
            (HostileLine.from(hello) { $0["duration"] = 1e300 }, "hello.iterations"),
            (HostileLine.from(hello) { $0["op"] = "bogus" }, "hello.op"),
            (HostileLine.from(hello) { $0["op"] = "atomic" }, "hello.sizes"),   // an atomic moves 8 B, not 4096
            (HostileLine.from(latencyHello(endpoint)), "hello.tool"),
            (hello.line + ControlMessage.go(size: 0).line, "go.size"),
            (send.line + ControlMessage.go(size: 4096).line + ControlMessage.done(count: 1 << 62, latency: nil).line, "done.count"),
        ]
    }

    func serveHostileThenHonest(_ tool: ServerUnderTest.Tool, softAddress: String, cases: [([UInt8], String)],
                                hello: (ServerUnderTest) -> ControlMessage, floodSize: Int,
                                honest: (ServerUnderTest, ControlConnection) throws -> Void) throws {
        let server = try ServerUnderTest(tool, softAddress: softAddress)
        for (bytes, field) in cases {
            let (answer, logged) = try server.refusal(of: bytes)
            #expect(logged.contains("refused \(field):"), "expected a refusal naming \(field); log: \(logged.prefix(300))")
            if bytes.first == UInt8(ascii: "{") {
                #expect(answer.contains("\"cmd\":\"error\"") && answer.contains(field), "answer: \(answer.prefix(300))")
            }
        }
        // Admitted, then a flood of small valid messages and no pings: read through and
        // dropped when the peer goes, the server still serving.
        let flood = hello(server).line + ControlMessage.go(size: floodSize).line
            + Array([[UInt8]](repeating: ControlMessage.alive.line, count: ControlMessage.maximumLineLength / 16 + 1000).joined())
        let (_, dropped) = try server.refusal(of: flood)
        #expect(dropped.contains("dropped client"), "\(dropped.prefix(300))")
        let blobs = HostileLine.blobs(count: 12, seed: 0x5EED)
        for blob in blobs {
            let (_, logged) = try server.refusal(of: blob)
            #expect(logged.contains("refused client"), "blob \(blob.prefix(8)) not refused: \(logged.prefix(200))")
            if blob.first != UInt8(ascii: "{") {
                // Not JSON, not perftest's version string: the server says so, and does not
                // tell it to "drop --perftest" (that hint is for a client of ours).
                #expect(logged.contains("refused version:") && !logged.contains("--perftest"), "\(logged.prefix(300))")
            }
        }
        let control = try connectControl(host: "127.0.0.1", port: server.listener.port, timeout: 10)
        try honest(server, control)
        control.close()
        #expect(try server.finish() == cases.count + blobs.count + 1)
    }

    @Test("rdma-pingpong server (soft engine): each bad hello/go field refused, random blobs refused, then an honest client runs")
    func pingpongServer() throws {
        let cases = Self.latencyCases(Endpoint(queuePairNumber: 0x123, packetSequenceNumber: 7, gid: GID(ipv4: (127, 0, 16, 2)), mtu: .mtu1024))
        try serveHostileThenHonest(.pingpong, softAddress: "127.0.16.1", cases: cases,
                                   hello: { Self.latencyHello($0.honestEndpoint()) }, floodSize: 64) { server, control in
            let results = try LatencySession.runClient(opened: server.client, control: control,
                                                       parameters: LatencyParameters(operation: .write, sizes: [64], iterations: 50,
                                                                                     duration: nil, warmup: 5)) { _ in }
            #expect(results.count == 1 && results[0].statistics.sampleCount == 50)
        }
    }

    @Test("rdma-throughput server (soft engine): each bad hello/go/done field refused, random blobs refused, then an honest client runs")
    func throughputServer() throws {
        let cases = Self.bandwidthCases(Endpoint(queuePairNumber: 0x123, packetSequenceNumber: 7, gid: GID(ipv4: (127, 0, 17, 2)), mtu: .mtu1024))
        try serveHostileThenHonest(.throughput, softAddress: "127.0.17.1", cases: cases,
                                   hello: { Self.bandwidthHello($0.honestEndpoint(), operation: .send) }, floodSize: 4096) { server, control in
            let results = try ThroughputSession.runClient(opened: server.client, control: control,
                                                          parameters: ThroughputParameters(operation: .send, sizes: [4096], iterations: 200,
                                                                                           duration: nil, queuePairs: 2, bidirectional: true)) { _ in }
            #expect(results.count == 1 && results[0].messages == 800)
        }
    }

    @Test("--loopback's server side: a stray client on its port is refused and the run's own client still served")
    func loopbackServer() throws {
        let opened = try DeviceSelection.open(.soft(address: "127.0.18.1"), port: 1, gidIndex: nil) { _ in }
        defer { opened.close() }
        let server = try LoopbackServer(opened: opened, connectTimeout: 60) { peer, control, admission throws(PerfError) in
            try LatencySession.serve(opened: peer, control: control, admission: admission, progressTimeout: 20,
                                     inlineSize: nil, mtu: nil, qpTimeout: 14, log: { _ in }, report: { _, _, _ in })
        }
        let endpoint = Endpoint(queuePairNumber: 0x123, packetSequenceNumber: 7, gid: GID(ipv4: (127, 0, 18, 2)), mtu: .mtu1024)
        let answer = try RawPeer.exchange(port: server.listener.port, HostileLine.from(Self.latencyHello(endpoint)) { $0["sizes"] = [-1] })
        #expect(answer.contains("refused hello.sizes[0]"))
        let control = try server.connect(timeout: 10)
        let results = try LatencySession.runClient(opened: opened, control: control,
                                                   parameters: LatencyParameters(operation: .read, sizes: [64], iterations: 20,
                                                                                 duration: nil, warmup: 2)) { _ in }
        control.close()
        #expect(results.count == 1)
        try server.finish(tool: "test", clientError: nil, wait: 60)
        #expect(server.refusals.lines.count == 1 && server.refusals.lines[0].contains("refused hello.sizes[0]"))
    }

    @Test("the decoder names the field of each malformed message and never traps", arguments: [
        ("{\"cmd\":\"go\"}", "go.size"), ("{\"cmd\":\"go\",\"size\":1e300}", "message"), ("{\"cmd\":\"teleport\"}", "cmd"),
        ("[]", "message"), ("", "message"), ("{\"cmd\":\"done\"}", "done.count"), ("{\"cmd\":\"result\"}", "result.bandwidth"),
        ("{\"cmd\":\"hello\",\"tool\":\"rdma-pingpong\",\"op\":\"send\"}", "hello.warmup"),
        ("{\"cmd\":\"hello\",\"tool\":\"x\",\"op\":\"send\"}", "hello.tool"),
    ])
    func decoder(line: String, field: String) {
        do {
            _ = try ControlMessage(line: Array(line.utf8))
            Issue.record("\(line) accepted")
        } catch {
            #expect(error.refusedField == field, "\(error)")
        }
    }

    @Test("every message round-trips through its line")
    func roundTrip() throws {
        let endpoint = Endpoint(queuePairNumber: 0x123, packetSequenceNumber: 7, gid: GID(ipv4: (127, 0, 0, 1)), mtu: .mtu1024)
        let messages: [ControlMessage] = [
            Self.latencyHello(endpoint), Self.bandwidthHello(endpoint), .go(size: 64), .ready, .alive, .done(count: 5, latency: nil),
            .bye, .error("x"), .welcome(Welcome(endpoints: [endpoint], memory: RemoteMemory(address: 1, rkey: 2, length: 3), path: "p")),
            .result(BandwidthStatistics(messageSize: 64, messages: 10, elapsedNanoseconds: 1000, peakBytesPerSecond: 1)),
        ]
        for message in messages {
            #expect(try ControlMessage(line: message.line.dropLast()) == message)
        }
    }
}
