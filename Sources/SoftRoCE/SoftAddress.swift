import RoCEWire

/// An IPv4 or IPv6 address of a soft device or a peer.
package enum SoftAddress: Hashable, Sendable, CustomStringConvertible {
    case ipv4(UInt32)                 // big-endian value: 127.0.0.1 is 0x7F000001
    case ipv6(high: UInt64, low: UInt64)

    /// Parses dotted IPv4 or textual IPv6.
    package init?(_ text: String) {
        if let v4 = SoftAddress.parseIPv4(text) { self = .ipv4(v4); return }
        guard let gid = SoftAddress.parseIPv6(text) else { return nil }
        self.init(gid: gid)
    }

    /// From a 16-byte RoCEv2 GID: `::ffff:a.b.c.d` is IPv4, anything else IPv6.
    package init(gid bytes: [UInt8]) {
        precondition(bytes.count == 16)
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<8 { high = high << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { low = low << 8 | UInt64(bytes[i]) }
        self.init(gidHigh: high, low: low)
    }

    /// The RoCEv2 GID of this address (IPv4-mapped for IPv4).
    package var gid: [UInt8] {
        let (high, low) = (ipv6Value.high, ipv6Value.low)
        return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    package var description: String {
        switch self {
        case .ipv4(let v): return "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
        case .ipv6(let h, let l):
            let groups = (0..<4).map { String(h >> (48 - 16 * $0) & 0xFFFF, radix: 16) } + (0..<4).map { String(l >> (48 - 16 * $0) & 0xFFFF, radix: 16) }
            return groups.joined(separator: ":")
        }
    }

    static func parseIPv4(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        return value
    }

    static func parseIPv6(_ text: String) -> [UInt8]? {
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ s: String) -> [UInt16]? {
            if s.isEmpty { return [] }
            var out = [UInt16]()
            for g in s.split(separator: ":", omittingEmptySubsequences: false) {
                guard let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}

extension String {
    func components(separatedBy separator: String) -> [String] {
        var result = [String]()
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            result.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        result.append(String(rest))
        return result
    }
}

extension SoftAddress {
    /// From the two halves of a 16-byte GID or IPv6 address: `::ffff:a.b.c.d` is IPv4.
    package init(gidHigh high: UInt64, low: UInt64) {
        if high == 0 && low >> 32 == 0xFFFF { self = .ipv4(UInt32(truncatingIfNeeded: low)) } else { self = .ipv6(high: high, low: low) }
    }

    /// The address as RoCEWire's IPv6 value (IPv4-mapped for IPv4), as the GRH and ICRC see it.
    package var ipv6Value: RoCEEncapsulation.IPv6Address {
        switch self {
        case .ipv4(let v): RoCEEncapsulation.IPv6Address(high: 0, low: 0xFFFF_0000_0000 | UInt64(v))
        case .ipv6(let h, let l): RoCEEncapsulation.IPv6Address(high: h, low: l)
        }
    }
}
