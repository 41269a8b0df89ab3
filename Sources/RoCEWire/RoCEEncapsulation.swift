#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The IP and UDP fields around a RoCEv2 packet that its ICRC covers: addresses, ports,
/// and for IPv4 the identification and flags. Lengths are derived from the packet.
///
/// A UDP-socket engine never sees these headers, so it states what the kernel puts there:
/// for sending, an unconnected socket with `IP_PMTUDISC_DO` gives IPv4 ID 0 and DF, the
/// defaults here. Packets from Linux rxe carry a non-zero IPv4 ID, which a UDP socket
/// cannot see, so their ICRC can only be checked from the whole IP packet
/// (``parse(ipPacket:)`` or ``ICRC/verify(ipPacket:)``).
///
/// ```swift
/// let flow = RoCEEncapsulation(
///     network: .ipv4(source: .init(10, 0, 0, 1), destination: .init(10, 0, 0, 2)),
///     sourcePort: 0xC123)
/// try ICRC.verify(transportPacket: datagram, encapsulation: flow)
/// ```
@frozen
public struct RoCEEncapsulation: Hashable, Sendable {
    /// The IANA port of RoCEv2.
    public static let udpPort: UInt16 = 4791

    @frozen
    public enum Network: Hashable, Sendable {
        /// `flagsAndFragmentOffset` is the IPv4 header's 16-bit word (0x4000 = DF).
        case ipv4(source: IPv4Address, destination: IPv4Address, identification: UInt16 = 0, flagsAndFragmentOffset: UInt16 = 0x4000)
        case ipv6(source: IPv6Address, destination: IPv6Address)
    }

    public var network: Network
    public var sourcePort: UInt16
    public var destinationPort: UInt16

    @inlinable
    public init(network: Network, sourcePort: UInt16, destinationPort: UInt16 = RoCEEncapsulation.udpPort) {
        self.network = network
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }
}

// MARK: - Addresses

extension RoCEEncapsulation {
    /// An IPv4 address; `rawValue` holds the four bytes big-endian (10.0.0.1 is 0x0A000001).
    @frozen
    public struct IPv4Address: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: UInt32
        @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

        @inlinable
        public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
            rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
        }

        /// Parses dotted-quad text such as `"192.168.1.7"`; `nil` if it is not one.
        public init?(_ text: String) {
            var address = in_addr()
            guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
            rawValue = UInt32(bigEndian: address.s_addr)
        }

        public var description: String {
            "\(rawValue >> 24).\(rawValue >> 16 & 0xFF).\(rawValue >> 8 & 0xFF).\(rawValue & 0xFF)"
        }
    }

    /// An IPv6 address as two big-endian halves (`::1` is high 0, low 1).
    @frozen
    public struct IPv6Address: Hashable, Sendable, CustomStringConvertible {
        public var high: UInt64
        public var low: UInt64

        @inlinable
        public init(high: UInt64, low: UInt64) {
            self.high = high
            self.low = low
        }

        /// The IPv4-mapped address `::ffff:a.b.c.d` (the form of a RoCEv2 GID for IPv4).
        @inlinable
        public init(ipv4Mapped address: IPv4Address) {
            self.init(high: 0, low: 0xFFFF_0000_0000 | UInt64(address.rawValue))
        }

        /// Sixteen bytes in network order; `nil` for any other count.
        public init?(bytes: some Collection<UInt8>) {
            guard bytes.count == 16 else { return nil }
            var high: UInt64 = 0, low: UInt64 = 0
            for (index, byte) in bytes.enumerated() {
                if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
            }
            self.init(high: high, low: low)
        }

        /// Parses IPv6 text such as `"fe80::1"` or `"::ffff:10.0.0.1"`; `nil` if it is not one.
        public init?(_ text: String) {
            var address = in6_addr()
            guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
            let parsed = withUnsafeBytes(of: &address) { raw in
                (raw.loadBigEndian(at: 0, as: UInt64.self), raw.loadBigEndian(at: 8, as: UInt64.self))
            }
            self.init(high: parsed.0, low: parsed.1)
        }

        public var description: String {
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { raw in
                raw.storeBigEndian(high, at: 0)
                raw.storeBigEndian(low, at: 8)
            }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &address, &text, socklen_t(text.count)) != nil else { return "?" }
            return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}

// MARK: - Reading the headers of a whole IP packet

extension RoCEEncapsulation {
    @usableFromInline static let ipv4HeaderLength = 20
    @usableFromInline static let ipv6HeaderLength = 40
    @usableFromInline static let udpHeaderLength = 8
    @usableFromInline static let udpProtocol: UInt8 = 17

    /// Reads the IPv4 or IPv6 header and the UDP header of a RoCEv2 packet and returns
    /// them with the range of the BTH-onward part. Bytes after the IP length (Ethernet
    /// padding of short frames) are ignored. The UDP destination port is not checked, so
    /// that tests and labs may use other ports.
    ///
    /// ```swift
    /// let (flow, range) = try RoCEEncapsulation.parse(ipPacket: frame)
    /// let packet = try RoCEPacket(parsing: UnsafeRawBufferPointer(rebasing: frame[range]))
    /// ```
    ///
    /// - Throws: `.truncated`, `.lengthMismatch` or `.unsupportedNetworkHeader`.
    @inlinable
    public static func parse(ipPacket bytes: UnsafeRawBufferPointer) throws(RoCEWireError)
        -> (encapsulation: RoCEEncapsulation, transportRange: Range<Int>)
    {
        guard !bytes.isEmpty else { throw .truncated(needed: ipv4HeaderLength + udpHeaderLength, available: 0) }
        let network: Network
        let udpOffset: Int
        let ipEnd: Int
        switch bytes[0] >> 4 {
        case 4:
            udpOffset = ipv4HeaderLength
            guard bytes.count >= udpOffset + udpHeaderLength else {
                throw .truncated(needed: udpOffset + udpHeaderLength, available: bytes.count)
            }
            let headerLength = Int(bytes[0] & 0x0F) * 4
            guard headerLength == ipv4HeaderLength else { throw .unsupportedNetworkHeader(.ipv4Options(headerLength: headerLength)) }
            ipEnd = Int(bytes.loadBigEndian(at: 2, as: UInt16.self))
            guard ipEnd >= udpOffset + udpHeaderLength, ipEnd <= bytes.count else {
                throw .lengthMismatch(.ipv4TotalLength, declared: ipEnd, actual: bytes.count)
            }
            let flagsAndFragmentOffset: UInt16 = bytes.loadBigEndian(at: 6)
            // MF or a fragment offset: RoCEv2 is never fragmented, and a fragment's ICRC
            // cannot be checked on its own anyway.
            guard flagsAndFragmentOffset & 0x3FFF == 0 else { throw .unsupportedNetworkHeader(.ipv4Fragment) }
            guard bytes[9] == udpProtocol else { throw .unsupportedNetworkHeader(.notUDP(protocol: bytes[9])) }
            network = .ipv4(
                source: IPv4Address(rawValue: bytes.loadBigEndian(at: 12)),
                destination: IPv4Address(rawValue: bytes.loadBigEndian(at: 16)),
                identification: bytes.loadBigEndian(at: 4),
                flagsAndFragmentOffset: flagsAndFragmentOffset
            )
        case 6:
            udpOffset = ipv6HeaderLength
            guard bytes.count >= udpOffset + udpHeaderLength else {
                throw .truncated(needed: udpOffset + udpHeaderLength, available: bytes.count)
            }
            let payloadLength = Int(bytes.loadBigEndian(at: 4, as: UInt16.self))
            ipEnd = udpOffset + payloadLength
            guard payloadLength >= udpHeaderLength, ipEnd <= bytes.count else {
                throw .lengthMismatch(.ipv6PayloadLength, declared: payloadLength, actual: bytes.count - udpOffset)
            }
            guard bytes[6] == udpProtocol else { throw .unsupportedNetworkHeader(.notUDP(protocol: bytes[6])) }
            network = .ipv6(
                source: IPv6Address(high: bytes.loadBigEndian(at: 8), low: bytes.loadBigEndian(at: 16)),
                destination: IPv6Address(high: bytes.loadBigEndian(at: 24), low: bytes.loadBigEndian(at: 32))
            )
        case let version:
            throw .unsupportedNetworkHeader(.ipVersion(version))
        }
        let udpLength = Int(bytes.loadBigEndian(at: udpOffset + 4, as: UInt16.self))
        guard udpLength == ipEnd - udpOffset else {
            throw .lengthMismatch(.udpLength, declared: udpLength, actual: ipEnd - udpOffset)
        }
        let encapsulation = RoCEEncapsulation(
            network: network,
            sourcePort: bytes.loadBigEndian(at: udpOffset),
            destinationPort: bytes.loadBigEndian(at: udpOffset + 2)
        )
        return (encapsulation, (udpOffset + udpHeaderLength) ..< ipEnd)
    }
}
