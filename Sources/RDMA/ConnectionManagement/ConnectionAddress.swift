#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An IP address and port, as rdma_cm connects by: IPv4 or IPv6.
///
/// ```swift
/// let server = try ConnectionAddress(host: "10.0.0.2", port: 7471)
/// let any = ConnectionAddress.any(port: 7471)      // listen on every address
/// print(server)                                      // 10.0.0.2:7471
/// ```
public struct ConnectionAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable { case ipv4, ipv6 }

    public var family: Family
    /// 4 bytes for IPv4, 16 for IPv6, network order.
    public var bytes: [UInt8]
    public var port: UInt16

    /// A numeric address (`10.0.0.2`, `fe80::1`); nil when `text` is not one.
    public init?(_ text: String, port: UInt16) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(family: .ipv4, bytes: withUnsafeBytes(of: &v4) { Array($0) }, port: port)
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self.init(family: .ipv6, bytes: withUnsafeBytes(of: &v6) { Array($0) }, port: port)
            return
        }
        return nil
    }

    /// A numeric address, or a host name looked up with `getaddrinfo` (which may block on
    /// DNS: the async `Connection.connect` calls it off the cooperative pool).
    /// The corresponding C function is `getaddrinfo`.
    public init(host: String, port: UInt16) throws(RDMAError) {
        if let numeric = ConnectionAddress(host, port: port) { self = numeric; return }
        guard !host.isEmpty, host.utf8.count <= 253 else {
            throw RDMAError(operation: "getaddrinfo", kind: .invalidArgument, hint: "host must be 1…253 characters; got \(host.utf8.count)")
        }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(host, nil, &hints, &list)
        defer { if let list { freeaddrinfo(list) } }
        guard code == 0 else {
            throw RDMAError(operation: "getaddrinfo(\(host))", kind: .system(errno: ENOENT),
                            hint: "cannot resolve the host: \(String(cString: gai_strerror(code)))")
        }
        var entry = list
        while let current = entry {
            if let address = current.pointee.ai_addr, let found = ConnectionAddress(socketAddress: address) {
                self = found
                self.port = port
                return
            }
            entry = current.pointee.ai_next
        }
        throw RDMAError(operation: "getaddrinfo(\(host))", kind: .system(errno: ENOENT), hint: "the host has no IPv4 or IPv6 address")
    }

    init(family: Family, bytes: [UInt8], port: UInt16) {
        self.family = family
        self.bytes = bytes
        self.port = port
    }

    /// The wildcard address (`0.0.0.0`, or `::` for IPv6) on `port`: listen on every device.
    public static func any(port: UInt16, family: Family = .ipv4) -> ConnectionAddress {
        ConnectionAddress(family: family, bytes: [UInt8](repeating: 0, count: family == .ipv4 ? 4 : 16), port: port)
    }

    /// The address as the RoCEv2 GID that stands for it (IPv4-mapped for IPv4).
    public var gid: GID {
        let bytes16 = family == .ipv4 ? [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + bytes : bytes
        return GID(byteArray: bytes16)!
    }

    /// The address without the port, as `inet_ntop` writes it.
    public var host: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        bytes.withUnsafeBytes { raw in
            _ = inet_ntop(family == .ipv4 ? AF_INET : AF_INET6, raw.baseAddress, &text, socklen_t(text.count))
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { family == .ipv4 ? "\(host):\(port)" : "[\(host)]:\(port)" }

    /// From a C `struct sockaddr` (`sockaddr_in` or `sockaddr_in6`); nil for other families.
    init?(socketAddress: UnsafePointer<sockaddr>) {
        switch Int32(socketAddress.pointee.sa_family) {
        case AF_INET:
            let v4 = UnsafeRawPointer(socketAddress).loadUnaligned(as: sockaddr_in.self)
            self.init(family: .ipv4, bytes: withUnsafeBytes(of: v4.sin_addr) { Array($0) }, port: UInt16(bigEndian: v4.sin_port))
        case AF_INET6:
            let v6 = UnsafeRawPointer(socketAddress).loadUnaligned(as: sockaddr_in6.self)
            self.init(family: .ipv6, bytes: withUnsafeBytes(of: v6.sin6_addr) { Array($0) }, port: UInt16(bigEndian: v6.sin6_port))
        default:
            return nil
        }
    }

    /// Calls `body` with this address as a C `struct sockaddr` (an in or in6 one).
    func withSocketAddress<Result>(_ body: (UnsafeMutablePointer<sockaddr>) -> Result) -> Result {
        var storage = sockaddr_storage()
        return withUnsafeMutableBytes(of: &storage) { raw in
            switch family {
            case .ipv4:
                var v4 = sockaddr_in()
                v4.sin_family = sa_family_t(AF_INET)
                v4.sin_port = port.bigEndian
                withUnsafeMutableBytes(of: &v4.sin_addr) { $0.copyBytes(from: bytes) }
                raw.storeBytes(of: v4, as: sockaddr_in.self)
            case .ipv6:
                var v6 = sockaddr_in6()
                v6.sin6_family = sa_family_t(AF_INET6)
                v6.sin6_port = port.bigEndian
                withUnsafeMutableBytes(of: &v6.sin6_addr) { $0.copyBytes(from: bytes) }
                raw.storeBytes(of: v6, as: sockaddr_in6.self)
            }
            return body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self))
        }
    }
}
