#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The real wire: one non-blocking UDP socket bound to the device's address and port.
/// This is the only file of the engine that knows `sockaddr`; every socket call's result
/// goes through `SocketCall`, which names the call and the errno.
package final class UDPWire: Wire {
    package let local: WireEndpoint
    private var descriptor: Int32
    package var pollDescriptor: Int32? { descriptor >= 0 ? descriptor : nil }

    /// Opens the socket (`socket`, `setsockopt` SO_RCVBUF/SO_SNDBUF, `bind`).
    package init(address: SoftAddress, port: UInt16) throws(SoftRoCEError) {
        let family: Int32
        switch address {
        case .ipv4: family = AF_INET
        case .ipv6: family = AF_INET6
        }
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = try SocketCall.descriptor("socket", Glibc.socket(family, type, 0), "cannot create a UDP socket")
        // Bursts of a window of MTU packets per QP: ask for 8 MiB (FORCE needs CAP_NET_ADMIN).
        var size: Int32 = 8 << 20
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, 4) != 0 { _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, 4) }
        if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, 4) != 0 { _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, 4) }
        if case .ipv4 = address {
            // DF set, as rxe sends: the ICRC covers the flags, so the receiver can rebuild them.
            var discover = Int32(IP_PMTUDISC_DO)
            _ = setsockopt(fd, Int32(IPPROTO_IP), IP_MTU_DISCOVER, &discover, 4)
        }
        var storage = SocketAddress(WireEndpoint(address, port: port))
        let bound = storage.withSockaddr { bind(fd, $0, $1) }
        if bound != 0 {
            let code = errno
            _ = Glibc.close(fd)
            throw SoftRoCEError("bind \(address) port \(port)", errno: code,
                                code == EADDRINUSE ? "the UDP port is taken (kernel rxe binds 4791 in its namespace): pick another port or address"
                                : "cannot bind the address: it must be assigned to a local interface (127.0.0.0/8 always is)")
        }
        var name = SocketAddress()
        _ = name.withMutableSockaddr { getsockname(fd, $0, $1) }
        descriptor = fd
        local = WireEndpoint(address, port: name.endpoint.port)
    }

    deinit { close() }

    /// `sendto(2)` of one datagram.
    package func send(_ datagram: UnsafeRawBufferPointer, to destination: WireEndpoint) -> WireSendResult {
        guard descriptor >= 0 else { return .failed(errno: EBADF) }
        var address = SocketAddress(destination)
        let result = address.withSockaddr { sendto(descriptor, datagram.baseAddress, datagram.count, 0, $0, $1) }
        return SocketCall.sendResult(result)
    }

    /// `recvfrom(2)` until the socket is empty or the batch is full.
    package func receive(into batch: ReceiveBatch) {
        batch.reset()
        guard descriptor >= 0 else { return }
        var from = SocketAddress()
        while batch.count < batch.capacity {
            let target = batch.buffer(batch.count)
            let length = from.withMutableSockaddr { recvfrom(descriptor, target.baseAddress, target.count, 0, $0, $1) }
            guard length >= 0 else {
                if let failure = SocketCall.receiveFailure(errno) { batch.error = failure }
                return
            }
            batch.append(length: length, from: from.endpoint)
        }
    }

    /// `close(2)`. Idempotent.
    package func close() {
        guard descriptor >= 0 else { return }
        _ = Glibc.close(descriptor)
        descriptor = -1
    }
}

/// The one place that turns socket return conventions into the engine's results.
enum SocketCall {
    /// A call returning a descriptor or −1 with errno.
    static func descriptor(_ operation: String, _ result: Int32, _ message: String) throws(SoftRoCEError) -> Int32 {
        guard result >= 0 else { throw SoftRoCEError(operation, errno: errno, message) }
        return result
    }

    /// `sendto`'s byte count or −1 with errno.
    static func sendResult(_ result: Int) -> WireSendResult {
        if result >= 0 { return .sent }
        switch errno {
        case EAGAIN, EWOULDBLOCK: return .wouldBlock
        case ENOBUFS: return .noBuffers
        case ECONNREFUSED: return .refused
        case let code: return .failed(errno: code)
        }
    }

    /// `recvfrom`'s −1: nil when nothing was waiting (EAGAIN) or a signal interrupted it.
    static func receiveFailure(_ code: Int32) -> Int32? {
        code == EAGAIN || code == EWOULDBLOCK || code == EINTR ? nil : code
    }
}

/// A `sockaddr_in`/`sockaddr_in6` in a `sockaddr_storage`, converted from and to `WireEndpoint`.
struct SocketAddress {
    private var storage = sockaddr_storage()

    init() {}

    init(_ endpoint: WireEndpoint) {
        withUnsafeMutableBytes(of: &storage) { bytes in
            switch endpoint.address {
            case .ipv4(let value):
                bytes.storeBytes(of: sa_family_t(AF_INET), as: sa_family_t.self)
                bytes.storeBytes(of: endpoint.port.bigEndian, toByteOffset: 2, as: UInt16.self)
                bytes.storeBytes(of: value.bigEndian, toByteOffset: 4, as: UInt32.self)
            case .ipv6(let high, let low):
                bytes.storeBytes(of: sa_family_t(AF_INET6), as: sa_family_t.self)
                bytes.storeBytes(of: endpoint.port.bigEndian, toByteOffset: 2, as: UInt16.self)
                bytes.storeBytes(of: high.bigEndian, toByteOffset: 8, as: UInt64.self)
                bytes.storeBytes(of: low.bigEndian, toByteOffset: 16, as: UInt64.self)
            }
        }
    }

    private var length: socklen_t {
        let family = withUnsafeBytes(of: storage) { $0.load(as: sa_family_t.self) }
        return socklen_t(family == sa_family_t(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
    }

    mutating func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        let length = self.length
        return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }

    mutating func withMutableSockaddr<T>(_ body: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> T) -> T {
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, &length) } }
    }

    var endpoint: WireEndpoint {
        withUnsafeBytes(of: storage) { bytes in
            let port = UInt16(bigEndian: bytes.load(fromByteOffset: 2, as: UInt16.self))
            if bytes.load(as: sa_family_t.self) == sa_family_t(AF_INET6) {
                let high = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                let low = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
                return WireEndpoint(SoftAddress(gidHigh: high, low: low), port: port)
            }
            return WireEndpoint(.ipv4(UInt32(bigEndian: bytes.load(fromByteOffset: 4, as: UInt32.self))), port: port)
        }
    }
}
