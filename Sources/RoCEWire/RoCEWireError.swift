/// Why a packet was rejected or could not be built.
///
/// Every parsing and ICRC function throws this type (typed throws, so nothing is boxed or
/// allocated on the error path), and the message of each case says what failed and what
/// it usually means.
///
/// ```swift
/// do {
///     let packet = try RoCEPacket(parsing: bytes)
/// } catch .icrcMismatch(let received, let computed) {
///     dropped += 1
/// } catch {
///     log("RoCE packet dropped: \(error)")
/// }
/// ```
@frozen
public enum RoCEWireError: Error, Hashable, Sendable {
    /// The input ends before the headers it announces (or before the ICRC).
    case truncated(needed: Int, available: Int)
    /// The caller's output buffer cannot hold what is to be written.
    case bufferTooSmall(needed: Int, available: Int)
    /// BTH opcode not in the table (RD and vendor opcodes are unknown too).
    case unknownOpcode(UInt8)
    /// BTH TVer is not 0.
    case badTransportVersion(UInt8)
    /// The BTH pad count is larger than the bytes between the headers and the ICRC.
    case padExceedsPayload(padCount: Int, available: Int)
    /// A length field disagrees with the bytes actually present.
    case lengthMismatch(LengthField, declared: Int, actual: Int)
    /// Headers + payload + pad + ICRC is not a multiple of 4 bytes, as the pad count requires.
    case unalignedLength(Int)
    /// An opcode that carries no payload (ACK, read request, atomics, CNP) came with one.
    case unexpectedPayload(Opcode, byteCount: Int)
    /// The extension headers supplied to a serializer are not the ones the opcode carries.
    case headerMismatch(Opcode, expected: Opcode.ExtendedHeaders, supplied: Opcode.ExtendedHeaders)
    /// The packet would not fit in a UDP datagram (or its IP header's length field).
    case packetTooLarge(byteCount: Int, limit: Int)
    /// The IP or UDP header is one RoCEv2 does not use.
    case unsupportedNetworkHeader(NetworkHeaderProblem)
    /// The ICRC in the packet is not the one computed over it.
    case icrcMismatch(received: UInt32, computed: UInt32)

    /// The length fields `lengthMismatch` can name.
    @frozen
    public enum LengthField: Hashable, Sendable {
        case ipv4TotalLength
        case ipv6PayloadLength
        case udpLength
    }

    /// What `unsupportedNetworkHeader` found.
    @frozen
    public enum NetworkHeaderProblem: Hashable, Sendable {
        /// The IP version nibble is neither 4 nor 6.
        case ipVersion(UInt8)
        /// IPv4 header length other than 20 bytes (options are not used by RoCEv2).
        case ipv4Options(headerLength: Int)
        /// IPv4 fragment (MF set or non-zero offset): RoCEv2 is never fragmented.
        case ipv4Fragment
        /// IPv4 protocol or IPv6 next header is not UDP (17); IPv6 extension headers land here.
        case notUDP(protocol: UInt8)
    }
}

extension RoCEWireError: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .truncated(needed, available):
            "truncated RoCE packet: needs \(needed) bytes for its headers and ICRC, has \(available) — the datagram was cut short or the receive buffer is too small"
        case let .bufferTooSmall(needed, available):
            "output buffer too small: needs \(needed) bytes, has \(available) — pass a buffer of at least the serialized length"
        case let .unknownOpcode(raw):
            "unknown BTH opcode 0x\(String(raw, radix: 16)) — not an RC, UC or UD opcode or the CNP (0x81); RD and vendor opcodes are not supported"
        case let .badTransportVersion(version):
            "BTH transport version \(version), expected 0 — not a RoCEv2 packet, or it was corrupted"
        case let .padExceedsPayload(padCount, available):
            "BTH pad count \(padCount) exceeds the \(available) bytes between the headers and the ICRC — malformed packet"
        case let .lengthMismatch(field, declared, actual):
            "\(field) says \(declared) bytes but \(actual) are present — truncated or malformed packet"
        case let .unalignedLength(length):
            "RoCE packet length \(length) is not a multiple of 4 — the pad count does not pad the payload correctly"
        case let .unexpectedPayload(opcode, byteCount):
            "\(opcode) carries no payload, but \(byteCount) bytes follow its headers — malformed packet"
        case let .headerMismatch(opcode, expected, supplied):
            "\(opcode) carries extension headers \(expected.names), but \(supplied.names) were supplied — set exactly those headers"
        case let .packetTooLarge(byteCount, limit):
            "RoCE packet of \(byteCount) bytes exceeds the \(limit)-byte limit of its UDP/IP encapsulation"
        case let .unsupportedNetworkHeader(problem):
            "unsupported IP/UDP header for RoCEv2: \(problem)"
        case let .icrcMismatch(received, computed):
            "ICRC mismatch: packet carries 0x\(String(received, radix: 16)), computed 0x\(String(computed, radix: 16)) — corrupted, or an IP/UDP field the ICRC covers (IPv4 ID, flags, addresses, ports) differs from what the checker assumed"
        }
    }
}

extension RoCEWireError.LengthField: CustomStringConvertible {
    public var description: String {
        switch self {
        case .ipv4TotalLength: "IPv4 total length"
        case .ipv6PayloadLength: "IPv6 payload length"
        case .udpLength: "UDP length"
        }
    }
}

extension RoCEWireError.NetworkHeaderProblem: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .ipVersion(version): "IP version \(version) (expected 4 or 6)"
        case let .ipv4Options(headerLength): "IPv4 header of \(headerLength) bytes (options are not supported)"
        case .ipv4Fragment: "IPv4 fragment (RoCEv2 packets are sent with DF and never fragmented)"
        case let .notUDP(proto): "IP protocol \(proto) (expected UDP, 17; IPv6 extension headers are not supported)"
        }
    }
}

extension Opcode.ExtendedHeaders {
    /// IBTA names of the headers in the set, for messages.
    var names: String {
        let all: [(Opcode.ExtendedHeaders, String)] = [
            (.datagram, "DETH"), (.rdma, "RETH"), (.atomic, "AtomicETH"), (.acknowledge, "AETH"),
            (.atomicAcknowledge, "AtomicAckETH"), (.immediateData, "ImmDt"), (.invalidate, "IETH"),
            (.congestionNotificationReserved, "CNP reserved"),
        ]
        let present = all.filter { contains($0.0) }.map(\.1)
        return present.isEmpty ? "none" : "[" + present.joined(separator: ", ") + "]"
    }
}
