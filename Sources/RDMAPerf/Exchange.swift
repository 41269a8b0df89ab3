import Foundation
import RDMA
import Synchronization

/// One TCP connection of the exchange. Reads are bounded; writes are small.
public final class ControlConnection: @unchecked Sendable {
    private var fd: Int32
    private var pending = [UInt8]()
    public let peerDescription: String
    /// False: Ctrl-C does not end a wait on this connection — the server side of a
    /// `--loopback` run (its client decides when the run ends) and a client reporting
    /// what it measured before the interrupt.
    public var interruptible = true

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
        do { try sendRaw(message.line) } catch {
            throw .peer("the peer \(peerDescription) closed the exchange connection", hint: "it exited or was killed (\(String(cString: strerror(errno))))")
        }
    }

    /// The next message, waiting at most `timeout` seconds.
    public func receive(timeout: Double, waitingFor what: String) throws(PerfError) -> ControlMessage {
        let deadline = MonotonicClock.deadline(after: timeout)
        while true {
            if let message = try parsePending() { return message }
            let now = MonotonicClock.nanoseconds()
            if now >= deadline {
                throw .peer("no \(what) from \(peerDescription) within \(timeout) s", hint: "the peer is stuck or gone; --timeout/--connect-timeout change the bound")
            }
            let waitMs = Int32(min(200, (deadline - now) / 1_000_000 + 1))
            try fill(waitMilliseconds: waitMs)
            if interruptible, stopRequested() { throw PerfError("interrupted", exitCode: 130) }
        }
    }

    /// The client's half of the handshake both tools share: send `hello` (carrying our
    /// endpoints and memory), wait for the server's welcome.
    public func greet(_ hello: Hello, timeout: Double) throws(PerfError) -> Welcome {
        try send(.hello(hello))
        let answer = try receive(timeout: timeout, waitingFor: "welcome")
        guard case .welcome(let welcome) = answer else {
            throw .peer("the server answered \(answer.name), expected welcome")
        }
        try RunLimits.check(welcome, answering: hello)
        return welcome
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
        let deadline = MonotonicClock.deadline(after: timeout)
        while pending.count < count {
            let now = MonotonicClock.nanoseconds()
            if now >= deadline { throw .peer("no \(what) from \(peerDescription) within \(timeout) s") }
            try fill(waitMilliseconds: Int32(min(200, (deadline - now) / 1_000_000 + 1)))
            if interruptible, stopRequested() { throw PerfError("interrupted", exitCode: 130) }
        }
        let bytes = Array(pending[0..<count])
        pending.removeSubrange(0..<count)
        return bytes
    }

    /// True when `count` raw bytes have arrived (never blocks; nothing is consumed). For
    /// a loop that must notice perftest's close between completions.
    public func rawAvailable(_ count: Int) throws(PerfError) -> Bool {
        if pending.count < count { try fill(waitMilliseconds: 0) }
        return pending.count >= count
    }

    /// The first byte the peer sent, without consuming it: `{` is our JSON exchange,
    /// a digit is perftest's version string.
    public func peekFirstByte(timeout: Double) throws(PerfError) -> UInt8 {
        let deadline = MonotonicClock.deadline(after: timeout)
        while pending.isEmpty {
            let now = MonotonicClock.nanoseconds()
            if now >= deadline { throw .peer("the client \(peerDescription) sent nothing within \(timeout) s") }
            try fill(waitMilliseconds: Int32(min(200, (deadline - now) / 1_000_000 + 1)))
            if interruptible, stopRequested() { throw PerfError("interrupted", exitCode: 130) }
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
        // Bounded whatever the peer sends: one overlong line, or many lines faster than
        // they are read (an honest peer has a message or two in flight).
        if pending.count > ControlMessage.maximumLineLength {
            throw .refused("message", pending.contains(0x0A)
                ? "more than \(ControlMessage.maximumLineLength) bytes of messages queued unread"
                : "more than \(ControlMessage.maximumLineLength) bytes without a newline: not rdma-pingpong/rdma-throughput?")
        }
    }

    private func parsePending() throws(PerfError) -> ControlMessage? {
        guard let newline = pending.firstIndex(of: 0x0A) else { return nil }
        let line = pending[..<newline]
        defer { pending.removeSubrange(...newline) }
        let message = try ControlMessage(line: line)
        if case .error(let text) = message {
            throw .peer("the peer reported: \(text)")
        }
        return message
    }
}

/// The server's listening socket.
public final class ControlListener: @unchecked Sendable {
    private var fd: Int32
    /// The bound port (useful with port 0).
    public let port: UInt16

    /// The address listened on, as given (`0.0.0.0`: every IPv4 address).
    public let address: String
    private let stopped = Atomic<Bool>(false)

    /// Listens on `port` (0: any free one) at `address`, an IPv4 address of this host;
    /// `0.0.0.0` listens on every address.
    public init(port: UInt16, address: String = "127.0.0.1") throws(PerfError) {
        var binary = in_addr()
        guard inet_pton(AF_INET, address, &binary) == 1 else {
            throw .usage("--bind \(address): not an IPv4 address", hint: "give one of this host's IPv4 addresses, or 0.0.0.0 for all")
        }
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketFD >= 0 else { throw PerfError("socket(): \(String(cString: strerror(errno)))") }
        // A server restarted right after a run must not trip over its own TIME_WAIT; Linux
        // still refuses a port another socket is listening on, so "port in use" stays exact.
        var reuse: Int32 = 1
        setsockopt(socketFD, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        socketAddress.sin_addr = binary
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound != 0 {
            let code = errno
            _ = Glibc.close(socketFD)
            if code == EADDRINUSE {
                throw .usage("TCP port \(port) is in use on \(address)", hint: "another rdma-pingpong/rdma-throughput or perftest server is listening there; stop it or pick another with -p (on both sides)")
            }
            if code == EADDRNOTAVAIL {
                throw .usage("cannot listen on \(address): it is not an address of this host", hint: "give one of this host's IPv4 addresses with --bind, or 0.0.0.0 for all")
            }
            throw .usage("cannot listen on \(address) TCP port \(port): \(String(cString: strerror(code)))")
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
        self.address = address
        self.port = UInt16(bigEndian: actual.sin_port)
    }

    deinit { close() }

    public func close() {
        if fd >= 0 { _ = Glibc.close(fd); fd = -1 }
    }

    /// Makes a wait in `accept` (on another thread) end within 200 ms.
    public func stop() { stopped.store(true, ordering: .relaxed) }

    /// Waits at most `timeout` seconds for a client.
    public func accept(timeout: Double) throws(PerfError) -> ControlConnection {
        let deadline = MonotonicClock.deadline(after: timeout)
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
            if stopped.load(ordering: .relaxed) { throw PerfError("stopped waiting for a client", exitCode: 130) }
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
    let deadline = MonotonicClock.deadline(after: timeout)
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
