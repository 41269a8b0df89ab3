/// rdma_cm's IP-based service ID (IBTA's RDMA IP CM Service annex): 0x0000000001, then
/// the IP protocol byte, then the 16-bit port — which is `port space << 16 | port` with
/// rdma_cm's 16-bit port spaces (TCP 0x0106 = 0x01 · protocol 6). A TCP-style listener on
/// port 7174 is service ID 0x0000000001061C06 (`cma_get_service_id` in the kernel's cma.c).
///
/// ```swift
/// let service = RDMAServiceID(port: 7174)          // RDMA_PS_TCP
/// #expect(service.rawValue == 0x0000_0000_0106_1C06)
/// ```
public struct RDMAServiceID: Hashable, Sendable {
    public var portSpace: PortSpace
    public var port: UInt16

    /// The port spaces of `enum rdma_ucm_port_space`.
    public enum PortSpace: UInt16, Hashable, Sendable {
        case ipOverInfiniBand = 0x0002, tcp = 0x0106, udp = 0x0111, infiniBand = 0x013F
    }

    public init(portSpace: PortSpace = .tcp, port: UInt16) {
        self.portSpace = portSpace
        self.port = port
    }

    /// Parses a REQ's service ID; refuses IDs outside rdma_cm's range or port spaces.
    public init(rawValue: UInt64) throws(ConnectionManagementError) {
        guard rawValue >> 32 == 0 else { throw .unsupported(field: "service ID (not an rdma_cm IP service)", value: rawValue) }
        guard let space = PortSpace(rawValue: UInt16(truncatingIfNeeded: rawValue >> 16)) else {
            throw .unsupported(field: "service ID port space", value: rawValue >> 16 & 0xFFFF)
        }
        portSpace = space
        port = UInt16(truncatingIfNeeded: rawValue)
    }

    public var rawValue: UInt64 { UInt64(portSpace.rawValue) << 16 | UInt64(port) }
}

/// `struct cma_hdr`: the 36 bytes rdma_cm puts first in a REQ's private data — version 0,
/// IP version in the high nibble, the active side's port, then source and destination
/// addresses (16 bytes each; IPv4 in the last 4, the rest zero). The user's private data
/// (up to 56 bytes) follows.
///
/// ```swift
/// let header = RDMAConnectionManagerHeader(source: .ipv4(0x0AEF_0001), sourcePort: 40000, destination: .ipv4(0x0AEF_0002))
/// let privateData = header.bytes + userData
/// ```
public struct RDMAConnectionManagerHeader: Hashable, Sendable {
    public static let byteCount = 36
    /// The user's private data that still fits in a REQ (92 − 36).
    public static let userPrivateDataCapacity = ConnectRequest.privateDataCapacity - byteCount
    public static let version: UInt8 = 0

    public enum Address: Hashable, Sendable {
        /// Big-endian value (10.239.0.1 is 0x0AEF0001).
        case ipv4(UInt32)
        case ipv6(GlobalIdentifier)
    }

    public var source: Address
    public var sourcePort: UInt16
    public var destination: Address

    public init(source: Address, sourcePort: UInt16, destination: Address) {
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
    }

    /// Parses the first 36 bytes of a REQ's private data: version 0, IP version 4 or 6.
    public init(parsing privateData: [UInt8]) throws(ConnectionManagementError) {
        guard privateData.count >= Self.byteCount else {
            throw .wrongLength(what: "rdma_cm private-data header", expected: Self.byteCount, actual: privateData.count)
        }
        guard privateData[0] == Self.version else { throw .unsupported(field: "cma_hdr version", value: UInt64(privateData[0])) }
        let ipVersion = privateData[1] >> 4
        sourcePort = UInt16(privateData[2]) << 8 | UInt16(privateData[3])
        func load(_ offset: Int) -> (UInt64, UInt64) {
            var high: UInt64 = 0, low: UInt64 = 0
            for i in 0..<8 { high = high << 8 | UInt64(privateData[offset + i]) }
            for i in 8..<16 { low = low << 8 | UInt64(privateData[offset + i]) }
            return (high, low)
        }
        let (sourceHigh, sourceLow) = load(4), (destinationHigh, destinationLow) = load(20)
        switch ipVersion {
        case 4:
            source = .ipv4(UInt32(truncatingIfNeeded: sourceLow))
            destination = .ipv4(UInt32(truncatingIfNeeded: destinationLow))
        case 6:
            source = .ipv6(GlobalIdentifier(high: sourceHigh, low: sourceLow))
            destination = .ipv6(GlobalIdentifier(high: destinationHigh, low: destinationLow))
        default:
            throw .unsupported(field: "cma_hdr IP version", value: UInt64(ipVersion))
        }
    }

    /// The 36 bytes.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.byteCount)
        out[0] = Self.version
        if case .ipv6 = source { out[1] = 0x60 } else { out[1] = 0x40 }
        out[2] = UInt8(sourcePort >> 8)
        out[3] = UInt8(truncatingIfNeeded: sourcePort)
        for (offset, address) in [(4, source), (20, destination)] {
            switch address {
            case .ipv4(let value):
                for i in 0..<4 { out[offset + 12 + i] = UInt8(truncatingIfNeeded: value >> (24 - 8 * i)) }
            case .ipv6(let gid):
                for i in 0..<8 { out[offset + i] = UInt8(truncatingIfNeeded: gid.high >> (56 - 8 * i)) }
                for i in 0..<8 { out[offset + 8 + i] = UInt8(truncatingIfNeeded: gid.low >> (56 - 8 * i)) }
            }
        }
        return out
    }
}
