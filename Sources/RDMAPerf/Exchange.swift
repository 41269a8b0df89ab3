import Foundation
import RDMA

/// The out-of-band exchange: a TCP connection carrying JSON lines.
///
/// Sequence (client → server unless marked ←):
/// 1. `hello` — the run's parameters, the client's QP endpoints and memory descriptor;
///    ← `welcome` — the server's endpoints and memory (or `error`).
/// 2. per size: `go` ← `ready` … the RDMA run … `done` (with the client's figures);
///    in bidirectional bandwidth runs ← `done` too.
/// 3. `bye`.
/// Every read is bounded by a deadline; a closed connection is reported as the peer gone.
///
/// Not perftest's format: perftest's exchange (after the `KEY_PRINT_FMT_GID` key line) also
/// swaps a version string, page and cache-line sizes and its `perftest_parameters`
/// negotiation as raw C structs, which we do not reproduce.
public struct ControlMessage: Codable, Sendable, Equatable {
    public var cmd: String
    public var tool: String?
    public var version: Int?
    public var op: String?
    public var sizes: [Int]?
    public var size: Int?
    public var iterations: Int?
    public var duration: Double?
    public var warmup: Int?
    public var qps: Int?
    public var bidirectional: Bool?
    public var txDepth: Int?
    public var cqMod: Int?
    public var endpoints: [Endpoint]?
    public var memory: RemoteMemory?
    public var count: Int?
    public var latency: LatencyStatistics?
    public var bandwidth: BandwidthStatistics?
    public var error: String?
    public var path: String?

    public init(cmd: String) { self.cmd = cmd }

    /// A client's opening message with what both tools send: who it is, the protocol
    /// version, the run's shape, and its queue pairs and memory.
    static func hello(tool: String, operation: String, sizes: [Int], iterations: Int?, duration: Double?,
                      endpoints: [Endpoint], memory: RemoteMemory) -> ControlMessage {
        var hello = ControlMessage(cmd: "hello")
        hello.tool = tool
        hello.version = LatencySession.protocolVersion
        hello.op = operation
        hello.sizes = sizes
        hello.iterations = iterations
        hello.duration = duration
        hello.endpoints = endpoints
        hello.memory = memory
        return hello
    }
}

/// One TCP connection of the exchange. Reads are bounded; writes are small.
public final class ControlConnection: @unchecked Sendable {
    private var fd: Int32
    private var pending = [UInt8]()
    public let peerDescription: String

    init(fd: Int32, peer: String) {
        self.fd = fd
        peerDescription = peer
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var no: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &no, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close() }

    public func close() {
        if fd >= 0 { _ = Glibc.close(fd); fd = -1 }
    }

    public func send(_ message: ControlMessage) throws(PerfError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard var data = try? encoder.encode(message) else { throw PerfError("cannot encode \(message.cmd)") }
        data.append(0x0A)
        let ok = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if written <= 0 { if errno == EINTR { continue }; return false }
                offset += written
            }
            return true
        }
        if !ok { throw .peer("the peer \(peerDescription) closed the exchange connection", hint: "it exited or was killed (\(String(cString: strerror(errno))))") }
    }

    /// The next message, waiting at most `timeout` seconds.
    public func receive(timeout: Double, waitingFor what: String) throws(PerfError) -> ControlMessage {
        let deadline = MonotonicClock.nanoseconds() + UInt64(max(0, timeout) * 1e9)
        while true {
            if let message = try parsePending() { return message }
            let now = MonotonicClock.nanoseconds()
            if now >= deadline {
                throw .peer("no \(what) from \(peerDescription) within \(timeout) s", hint: "the peer is stuck or gone; --timeout/--connect-timeout change the bound")
            }
            let waitMs = Int32(min(200, (deadline - now) / 1_000_000 + 1))
            try fill(waitMilliseconds: waitMs)
            if stopRequested() { throw PerfError("interrupted", exitCode: 130) }
        }
    }

    /// The client's half of the handshake both tools share: send `hello` (carrying our
    /// endpoints and memory), wait for the server's welcome, return its endpoints and memory.
    public func greet(_ hello: ControlMessage, timeout: Double) throws(PerfError) -> (endpoints: [Endpoint], memory: RemoteMemory) {
        try send(hello)
        let welcome = try receive(timeout: timeout, waitingFor: "welcome")
        guard welcome.cmd == "welcome", let endpoints = welcome.endpoints, let memory = welcome.memory else {
            throw .peer("the server answered \(welcome.cmd), expected welcome")
        }
        return (endpoints, memory)
    }

    /// Writes raw bytes (perftest's fixed-size exchange messages).
    public func sendRaw(_ bytes: [UInt8]) throws(PerfError) {
        let ok = bytes.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if written <= 0 { if errno == EINTR { continue }; return false }
                offset += written
            }
            return true
        }
        if !ok { throw .peer("the peer \(peerDescription) closed the exchange connection") }
    }

    /// Reads exactly `count` raw bytes, waiting at most `timeout` seconds.
    public func receiveRaw(count: Int, timeout: Double, waitingFor what: String) throws(PerfError) -> [UInt8] {
        let deadline = MonotonicClock.nanoseconds() + UInt64(max(0, timeout) * 1e9)
        while pending.count < count {
            let now = MonotonicClock.nanoseconds()
            if now >= deadline { throw .peer("no \(what) from \(peerDescription) within \(timeout) s") }
            try fill(waitMilliseconds: Int32(min(200, (deadline - now) / 1_000_000 + 1)))
            if stopRequested() { throw PerfError("interrupted", exitCode: 130) }
        }
        let bytes = Array(pending[0..<count])
        pending.removeSubrange(0..<count)
        return bytes
    }

    /// The first byte the peer sent, without consuming it: `{` is our JSON exchange,
    /// a digit is perftest's version string.
    public func peekFirstByte(timeout: Double) throws(PerfError) -> UInt8 {
        let deadline = MonotonicClock.nanoseconds() + UInt64(max(0, timeout) * 1e9)
        while pending.isEmpty {
            let now = MonotonicClock.nanoseconds()
            if now >= deadline { throw .peer("the client \(peerDescription) sent nothing within \(timeout) s") }
            try fill(waitMilliseconds: Int32(min(200, (deadline - now) / 1_000_000 + 1)))
            if stopRequested() { throw PerfError("interrupted", exitCode: 130) }
        }
        return pending[0]
    }

    /// A message if one is already here; never blocks. For the run loops' occasional checks.
    public func poll() throws(PerfError) -> ControlMessage? {
        if let message = try parsePending() { return message }
        try fill(waitMilliseconds: 0)
        return try parsePending()
    }

    private func fill(waitMilliseconds: Int32) throws(PerfError) {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = Glibc.poll(&descriptor, 1, waitMilliseconds)
        guard ready > 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
        if count == 0 {
            throw .peer("the peer \(peerDescription) closed the exchange connection", hint: "it exited or was killed mid-run")
        }
        if count < 0 {
            if errno == EINTR || errno == EAGAIN { return }
            throw .peer("exchange connection to \(peerDescription) failed: \(String(cString: strerror(errno)))")
        }
        pending += buffer[0..<count]
        if pending.count > 1 << 20 { throw .peer("the peer sent more than 1 MiB without a newline: not rdma-pingpong/rdma-throughput?") }
    }

    private func parsePending() throws(PerfError) -> ControlMessage? {
        guard let newline = pending.firstIndex(of: 0x0A) else { return nil }
        let line = Array(pending[..<newline])
        pending.removeSubrange(...newline)
        guard let message = try? JSONDecoder().decode(ControlMessage.self, from: Data(line)) else {
            let text = String(decoding: line.prefix(80), as: UTF8.self)
            throw .peer("unexpected exchange message from \(peerDescription): \"\(text)\"",
                        hint: "the peer is not rdma-pingpong/rdma-throughput (perftest's exchange is not compatible)")
        }
        if message.cmd == "error" {
            throw .peer("the peer reported: \(message.error ?? "an error")")
        }
        return message
    }
}

/// The server's listening socket.
public final class ControlListener: @unchecked Sendable {
    private var fd: Int32
    /// The bound port (useful with port 0).
    public let port: UInt16

    /// Listens on `port` on every IPv4 address (`loopbackOnly`: 127.0.0.1).
    public init(port: UInt16, loopbackOnly: Bool = false) throws(PerfError) {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketFD >= 0 else { throw PerfError("socket(): \(String(cString: strerror(errno)))") }
        // A server restarted right after a run must not trip over its own TIME_WAIT; Linux
        // still refuses a port another socket is listening on, so "port in use" stays exact.
        var reuse: Int32 = 1
        setsockopt(socketFD, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = loopbackOnly ? UInt32(0x7F00_0001).bigEndian : 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound != 0 {
            let code = errno
            _ = Glibc.close(socketFD)
            if code == EADDRINUSE {
                throw .usage("TCP port \(port) is in use", hint: "another rdma-pingpong/rdma-throughput or perftest server is listening there; stop it or pick another with -p (on both sides)")
            }
            throw .usage("cannot listen on TCP port \(port): \(String(cString: strerror(code)))")
        }
        guard listen(socketFD, 4) == 0 else {
            let code = errno
            _ = Glibc.close(socketFD)
            throw .usage("listen on TCP port \(port): \(String(cString: strerror(code)))")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &length) }
        }
        fd = socketFD
        self.port = UInt16(bigEndian: actual.sin_port)
    }

    deinit { close() }

    public func close() {
        if fd >= 0 { _ = Glibc.close(fd); fd = -1 }
    }

    /// Waits at most `timeout` seconds for a client.
    public func accept(timeout: Double) throws(PerfError) -> ControlConnection {
        let deadline = MonotonicClock.nanoseconds() + UInt64(max(0, timeout) * 1e9)
        while true {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if Glibc.poll(&descriptor, 1, 200) > 0 {
                var address = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let client = withUnsafeMutablePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(fd, $0, &length) }
                }
                if client >= 0 {
                    return ControlConnection(fd: client, peer: "\(Self.text(address)):\(UInt16(bigEndian: address.sin_port))")
                }
            }
            if stopRequested() { throw PerfError("interrupted while waiting for a client", exitCode: 130) }
            if MonotonicClock.nanoseconds() >= deadline {
                throw .peer("no client connected to TCP port \(port) within \(timeout) s", hint: "start the client with this host's address, or raise --connect-timeout")
            }
        }
    }

    static func text(_ address: sockaddr_in) -> String {
        var copy = address.sin_addr
        var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &copy, &buffer, socklen_t(INET_ADDRSTRLEN))
        return String(cString: buffer)
    }
}

/// Connects to a server, retrying refused connections until `timeout` passes (the server
/// may still be starting), each attempt itself bounded.
public func connectControl(host: String, port: UInt16, timeout: Double) throws(PerfError) -> ControlConnection {
    var hints = addrinfo()
    hints.ai_family = AF_INET
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var result: UnsafeMutablePointer<addrinfo>?
    let code = getaddrinfo(host, String(port), &hints, &result)
    guard code == 0, let info = result else {
        throw .usage("cannot resolve server \"\(host)\": \(String(cString: gai_strerror(code)))")
    }
    defer { freeaddrinfo(result) }
    let deadline = MonotonicClock.nanoseconds() + UInt64(max(0, timeout) * 1e9)
    var lastError: Int32 = 0
    while true {
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { throw PerfError("socket(): \(String(cString: strerror(errno)))") }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        var status = Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen)
        if status != 0, errno == EINPROGRESS {
            var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            if Glibc.poll(&descriptor, 1, 1000) > 0 {
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                status = error == 0 ? 0 : -1
                lastError = error
            } else {
                lastError = ETIMEDOUT
                status = -1
            }
        } else if status != 0 {
            lastError = errno
        }
        if status == 0 {
            _ = fcntl(fd, F_SETFL, flags)
            return ControlConnection(fd: fd, peer: "\(host):\(port)")
        }
        _ = Glibc.close(fd)
        if stopRequested() { throw PerfError("interrupted while connecting", exitCode: 130) }
        if MonotonicClock.nanoseconds() >= deadline {
            let reason = String(cString: strerror(lastError))
            throw .peer("server \(host):\(port) is not answering (\(reason)) after \(timeout) s",
                        hint: "start the server first (same tool, no address), check the host and -p, or raise --connect-timeout")
        }
        usleep(100_000)
    }
}
