/// A 128-bit global identifier: the layer-3 address of an RDMA port.
///
/// For RoCEv2 over IPv4 it is the IPv4-mapped IPv6 address `::ffff:a.b.c.d`; for IPv6 it is
/// the address itself. Formats as an IPv6 address and parses the same forms, plus the
/// 32-hex-digit form that rdma-core's pingpong examples exchange.
///
/// ```swift
/// let gid = GID(ipv4: (192, 168, 1, 7))
/// print(gid)                  // ::ffff:192.168.1.7
/// print(gid.ipv4Address!)     // (192, 168, 1, 7)
/// ```
public struct GID: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The 16 bytes in network order.
    public var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                       UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

    /// The all-zero GID (an empty GID table slot).
    public static let zero = GID(bytes: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    public init(bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) {
        self.bytes = bytes
    }

    /// Builds a GID from exactly 16 bytes; returns nil for any other count.
    public init?<Bytes: Collection>(byteArray: Bytes) where Bytes.Element == UInt8 {
        guard byteArray.count == 16 else { return nil }
        var value = GID.zero
        withUnsafeMutableBytes(of: &value.bytes) { destination in
            for (index, byte) in byteArray.enumerated() { destination[index] = byte }
        }
        self = value
    }

    /// The IPv4-mapped GID `::ffff:a.b.c.d` that RoCEv2 uses for an IPv4 address.
    public init(ipv4 address: (UInt8, UInt8, UInt8, UInt8)) {
        self.init(bytes: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
                          address.0, address.1, address.2, address.3))
    }

    /// The bytes as an array (for serialising).
    public var byteArray: [UInt8] {
        withUnsafeBytes(of: bytes) { Array($0) }
    }

    /// True for `::ffff:a.b.c.d`, the form of a RoCEv2 GID derived from an IPv4 address.
    public var isIPv4Mapped: Bool {
        withUnsafeBytes(of: bytes) { raw in
            raw[0..<10].allSatisfy { $0 == 0 } && raw[10] == 0xff && raw[11] == 0xff
        }
    }

    /// The IPv4 address of an IPv4-mapped GID.
    public var ipv4Address: (UInt8, UInt8, UInt8, UInt8)? {
        guard isIPv4Mapped else { return nil }
        return (bytes.12, bytes.13, bytes.14, bytes.15)
    }

    /// True for the all-zero GID.
    public var isZero: Bool { self == .zero }

    public static func == (lhs: GID, rhs: GID) -> Bool {
        withUnsafeBytes(of: lhs.bytes) { l in withUnsafeBytes(of: rhs.bytes) { r in l.elementsEqual(r) } }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: bytes) { hasher.combine(bytes: $0) }
    }

    /// IPv6 text form; IPv4-mapped GIDs print their dotted quad.
    public var description: String {
        if let v4 = ipv4Address { return "::ffff:\(v4.0).\(v4.1).\(v4.2).\(v4.3)" }
        let groups: [UInt16] = withUnsafeBytes(of: bytes) { raw in
            (0..<8).map { UInt16(raw[2 * $0]) << 8 | UInt16(raw[2 * $0 + 1]) }
        }
        // RFC 5952: compress the longest run (length ≥ 2) of zero groups.
        var bestStart = -1, bestLength = 0, runStart = -1
        for index in 0...8 {
            if index < 8 && groups[index] == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                if index - runStart > bestLength { bestStart = runStart; bestLength = index - runStart }
                runStart = -1
            }
        }
        func hex(_ range: Range<Int>) -> String {
            groups[range].map { String($0, radix: 16) }.joined(separator: ":")
        }
        if bestLength < 2 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    /// The 32 lowercase hex digits rdma-core's pingpong examples send (`ibv_rc_pingpong`).
    public var hexDigits: String {
        withUnsafeBytes(of: bytes) { raw in
            raw.map { byte in
                let digits = String(byte, radix: 16)
                return digits.count == 1 ? "0" + digits : digits
            }.joined()
        }
    }

    /// Parses IPv6 text (`fe80::1`, `::ffff:10.0.0.1`), an IPv4 dotted quad (mapped), or
    /// 32 hex digits. Returns nil for anything else.
    public init?(_ text: String) {
        if text.count == 32, text.allSatisfy(\.isHexDigit) {
            var raw = [UInt8]()
            var index = text.startIndex
            while index < text.endIndex {
                let next = text.index(index, offsetBy: 2)
                guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
                raw.append(byte)
                index = next
            }
            self.init(byteArray: raw)
            return
        }
        if let v4 = GID.parseIPv4(Substring(text)) {
            self.init(ipv4: v4)
            return
        }
        guard let raw = GID.parseIPv6(text) else { return nil }
        self.init(byteArray: raw)
    }

    private static func parseIPv4(_ text: Substring) -> (UInt8, UInt8, UInt8, UInt8)? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var values = [UInt8]()
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isNumber), let value = UInt8(part) else { return nil }
            values.append(value)
        }
        return (values[0], values[1], values[2], values[3])
    }

    private static func parseIPv6(_ text: String) -> [UInt8]? {
        var head = Substring(text)
        var tailIPv4: (UInt8, UInt8, UInt8, UInt8)?
        if let lastColon = text.lastIndex(of: ":"), text[lastColon...].contains(".") {
            guard let v4 = parseIPv4(text[text.index(after: lastColon)...]) else { return nil }
            tailIPv4 = v4
            head = text[...lastColon]
            // keep a trailing "::" intact, drop a single trailing ":" before the dotted quad
            if head.hasSuffix(":") && !head.hasSuffix("::") { head = head.dropLast() }
        }
        let groupsNeeded = tailIPv4 == nil ? 8 : 6
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result = [UInt16]()
            for field in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(field.count), let value = UInt16(field, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        var values: [UInt16]
        if let range = head.firstRange(of: "::") {
            guard let left = groups(head[..<range.lowerBound]), let right = groups(head[range.upperBound...]),
                  left.count + right.count < groupsNeeded, !head[range.upperBound...].contains("::")
            else { return nil }
            values = left + Array(repeating: 0, count: groupsNeeded - left.count - right.count) + right
        } else {
            guard let all = groups(head), all.count == groupsNeeded else { return nil }
            values = all
        }
        var raw = values.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
        if let v4 = tailIPv4 { raw += [v4.0, v4.1, v4.2, v4.3] }
        return raw
    }

    // Codable as the text form: JSON readers see an address, not 16 numbers.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let gid = GID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a GID: \(text)"))
        }
        self = gid
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
