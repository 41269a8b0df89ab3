#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// The socket-level pieces the UDP wire is built from: the one place for socket return
// conventions (`SocketCall`), socket addresses, control messages, packet filters. Only the
// wire files use them; nothing above the Wire seam knows `sockaddr`.

/// One control message with room for an int, sent: IP_TOS / IPV6_TCLASS, UDP_SEGMENT.
/// (The CMSG_* macros do not import into Swift; this is their layout on Linux.)
struct ControlMessageInt {
    var header = cmsghdr()
    var value: Int32 = 0
    var padding: Int32 = 0

    init() {}

    /// `value` at `level`/`type`, of which the option reads the first `valueBytes` bytes.
    init(level: Int32, type: Int32, value: Int32, valueBytes: Int = 4) {
        header.cmsg_len = MemoryLayout<cmsghdr>.size + valueBytes
        header.cmsg_level = level
        header.cmsg_type = type
        self.value = value
    }

    /// UDP_SEGMENT: the GSO segment size, a u16 (little-endian: the int's first two bytes).
    static func udpSegment(_ length: Int) -> ControlMessageInt {
        ControlMessageInt(level: Int32(IPPROTO_UDP), type: SocketCall.udpSegment, value: Int32(length), valueBytes: 2)
    }
}

/// The control area of one received datagram: room for IP_TOS/IPV6_TCLASS and UDP_GRO.
/// (The CMSG_* macros do not import into Swift; this walks their Linux layout.)
struct ControlMessages {
    private var storage: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)

    /// The DSCP/ECN byte (`.unmarked` when none came) and the GSO segment size (0 when the
    /// datagram is one packet) in a control area `length` bytes long.
    func parse(length: Int) -> (TrafficClass, Int) {
        var trafficClass = TrafficClass.unmarked, segmentLength = 0
        withUnsafeBytes(of: storage) { bytes in
            let headerSize = MemoryLayout<cmsghdr>.size
            var offset = 0
            let end = min(length, bytes.count)
            while offset + headerSize <= end {
                let messageLength = Int(bytes.load(fromByteOffset: offset, as: Int.self))
                guard messageLength >= headerSize, offset + messageLength <= end else { break }
                let level = bytes.load(fromByteOffset: offset + 8, as: Int32.self)
                let type = bytes.load(fromByteOffset: offset + 12, as: Int32.self)
                let data = offset + headerSize
                if messageLength > headerSize {
                    if level == Int32(IPPROTO_IP) && type == IP_TOS {
                        trafficClass = TrafficClass(rawValue: bytes[data])
                    } else if level == Int32(IPPROTO_IPV6) && type == IPV6_TCLASS, messageLength >= headerSize + 4 {
                        trafficClass = TrafficClass(rawValue: UInt8(truncatingIfNeeded: bytes.loadUnaligned(fromByteOffset: data, as: Int32.self)))
                    } else if level == Int32(IPPROTO_UDP) && type == SocketCall.udpGRO, messageLength >= headerSize + 4 {
                        segmentLength = Int(bytes.loadUnaligned(fromByteOffset: data, as: Int32.self))
                    }
                }
                offset += (messageLength + 7) & ~7
            }
        }
        return (trafficClass, segmentLength)
    }
}

/// Classic BPF programs for `SO_ATTACH_FILTER` (the layout of `struct sock_filter`).
enum PacketFilter {
    struct Instruction {
        var code: UInt16
        var jumpIfTrue: UInt8
        var jumpIfFalse: UInt8
        var constant: UInt32
    }

    /// Keeps nothing.
    static let dropAll = [Instruction(code: 0x06, jumpIfTrue: 0, jumpIfFalse: 0, constant: 0)]

    /// On a raw IPv4 socket: keeps unfragmented-or-first-fragment UDP datagrams to `port`.
    static func udpDestination(port: UInt16) -> [Instruction] {
        [
            Instruction(code: 0x28, jumpIfTrue: 0, jumpIfFalse: 0, constant: 6),          // ldh [6]: flags, fragment offset
            Instruction(code: 0x45, jumpIfTrue: 4, jumpIfFalse: 0, constant: 0x1FFF),     // jset #0x1fff → drop
            Instruction(code: 0xB1, jumpIfTrue: 0, jumpIfFalse: 0, constant: 0),          // ldxb 4*([0]&0xf): IP header length
            Instruction(code: 0x48, jumpIfTrue: 0, jumpIfFalse: 0, constant: 2),          // ldh [x+2]: UDP destination port
            Instruction(code: 0x15, jumpIfTrue: 0, jumpIfFalse: 1, constant: UInt32(port)), // jeq #port
            Instruction(code: 0x06, jumpIfTrue: 0, jumpIfFalse: 0, constant: 0xFFFF),     // ret: keep
            Instruction(code: 0x06, jumpIfTrue: 0, jumpIfFalse: 0, constant: 0),          // ret: drop
        ]
    }
}

/// The one place that turns socket return conventions into the engine's results.
enum SocketCall {
    /// `<netinet/udp.h>`'s UDP_SEGMENT and UDP_GRO (SOL_UDP options; not in Swift's Glibc module).
    static let udpSegment: Int32 = 103
    static let udpGRO: Int32 = 104

    /// A socket type that never blocks and is closed across exec, as every engine socket is.
    static func nonBlocking(_ type: __socket_type) -> Int32 {
        Int32(type.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    }

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

    /// 8 MiB send and receive buffers: bursts of a window of MTU packets per QP
    /// (the FORCE variants need CAP_NET_ADMIN; the plain ones are capped by rmem_max).
    static func enlargeBuffers(_ descriptor: Int32) {
        var size: Int32 = 8 << 20
        if setsockopt(descriptor, SOL_SOCKET, SO_RCVBUFFORCE, &size, 4) != 0 { _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, 4) }
        if setsockopt(descriptor, SOL_SOCKET, SO_SNDBUFFORCE, &size, 4) != 0 { _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &size, 4) }
    }

    /// `setsockopt(IP_TOS)` (IPv4) or `setsockopt(IPV6_TCLASS)` (IPv6) to what datagrams go out
    /// with, and with `receiving` IP_RECVTOS / IPV6_RECVTCLASS, so that each received datagram
    /// brings its DSCP and ECN bits along.
    static func setTrafficClass(_ descriptor: Int32, address: SoftAddress, _ trafficClass: TrafficClass, receiving: Bool) throws(SoftRoCEError) {
        var value = Int32(trafficClass.rawValue)
        var on: Int32 = 1
        let (level, send, receive, names): (Int32, Int32, Int32, (String, String)) = switch address {
        case .ipv4: (Int32(IPPROTO_IP), IP_TOS, IP_RECVTOS, ("setsockopt(IP_TOS)", "setsockopt(IP_RECVTOS)"))
        case .ipv6: (Int32(IPPROTO_IPV6), IPV6_TCLASS, IPV6_RECVTCLASS, ("setsockopt(IPV6_TCLASS)", "setsockopt(IPV6_RECVTCLASS)"))
        }
        if trafficClass != .unmarked, setsockopt(descriptor, level, send, &value, 4) != 0 {
            throw SoftRoCEError(names.0, errno: errno, "cannot set the DSCP/ECN bits datagrams are sent with")
        }
        if receiving, setsockopt(descriptor, level, receive, &on, 4) != 0 {
            throw SoftRoCEError(names.1, errno: errno, "cannot read the ECN bits of received datagrams")
        }
    }

    /// `setsockopt(SO_ATTACH_FILTER)` of a classic BPF program.
    static func attachFilter(_ descriptor: Int32, _ program: [PacketFilter.Instruction], _ operation: String) throws(SoftRoCEError) {
        let result = program.withUnsafeBufferPointer { instructions -> Int32 in
            // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
            var header = (UInt16(instructions.count), UInt16(0), UInt32(0), UInt(bitPattern: instructions.baseAddress))
            return setsockopt(descriptor, SOL_SOCKET, SO_ATTACH_FILTER, &header, socklen_t(MemoryLayout.size(ofValue: header)))
        }
        guard result == 0 else { throw SoftRoCEError(operation, errno: errno, "cannot attach the packet filter") }
    }

    /// Reads and drops every datagram already queued on the non-blocking `descriptor` (at most
    /// `limit`) and returns how many. A raw socket receives every UDP datagram of the host from
    /// `socket()` until its `bind` and filter are in place: what it queued in between is other
    /// flows' traffic (on a busy host, parallel engines' packets, which then failed their ICRC).
    @discardableResult
    static func discardQueued(_ descriptor: Int32, limit: Int = 100_000) -> Int {
        var byte: UInt8 = 0
        var discarded = 0
        while discarded < limit && recv(descriptor, &byte, 1, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC)) >= 0 { discarded += 1 }
        return discarded
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

    var length: socklen_t {
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

extension SoftAddress {
    /// 127.0.0.0/8 or ::1.
    var isLoopback: Bool {
        switch self {
        case .ipv4(let value): value >> 24 == 127
        case .ipv6(let high, let low): high == 0 && low == 1
        }
    }
}
