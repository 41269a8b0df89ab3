/// What a peer needs to connect a queue pair to ours: QP number, first PSN, GID, LID and
/// path MTU. A plain value: send it over TCP, a file, an HTTP call — whatever you have.
///
/// Three encodings round-trip: JSON (`Codable`), 30 fixed bytes (`serialized`), and the
/// `LID:QPN:PSN:GID` text of rdma-core's ibv_rc_pingpong (`pingpongText`, no MTU).
///
/// ```swift
/// let mine = try queuePair.localEndpoint(port: 1, gidIndex: 1, psn: 0x1234)
/// send(mine.serialized)                                   // to the peer …
/// let theirs = Endpoint(serialized: receive())!           // … and back
/// try queuePair.connect(to: theirs, options: .init(gidIndex: 1))
/// ```
public struct Endpoint: Hashable, Sendable, Codable, CustomStringConvertible {
    public var queuePairNumber: UInt32
    /// The first packet sequence number the QP sends (24 bits).
    public var packetSequenceNumber: UInt32
    public var gid: GID
    /// 0 on RoCE.
    public var lid: UInt16
    /// The active MTU of the port; the connection uses the smaller of both sides'.
    public var mtu: PathMTU

    public init(queuePairNumber: UInt32, packetSequenceNumber: UInt32, gid: GID, lid: UInt16 = 0, mtu: PathMTU) {
        self.queuePairNumber = queuePairNumber & 0xFF_FFFF
        self.packetSequenceNumber = packetSequenceNumber & 0xFF_FFFF
        self.gid = gid
        self.lid = lid
        self.mtu = mtu
    }

    enum CodingKeys: String, CodingKey {
        case queuePairNumber = "qpn", packetSequenceNumber = "psn", gid, lid, mtu
    }

    /// Byte count of `serialized`.
    public static let serializedCount = 30

    /// Fixed big-endian layout: version tag 0x5201 (2), QPN (4), PSN (4), LID (2),
    /// MTU in bytes (2), GID (16). The tag lets a reader reject bytes of another format.
    public var serialized: [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(Self.serializedCount)
        bytes.appendBigEndian(UInt16(0x5201))            // version tag: 'R', format 1
        bytes.appendBigEndian(queuePairNumber)
        bytes.appendBigEndian(packetSequenceNumber)
        bytes.appendBigEndian(lid)
        bytes.appendBigEndian(UInt16(mtu.bytes))
        bytes += gid.byteArray
        return bytes
    }

    /// Parses `serialized`; nil for a wrong length, version or MTU.
    public init?<Bytes: Collection>(serialized bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count == Self.serializedCount else { return nil }
        var reader = BigEndianReader(bytes)
        guard reader.read(UInt16.self) == 0x5201 else { return nil }
        let qpn = reader.read(UInt32.self), psn = reader.read(UInt32.self), lid = reader.read(UInt16.self)
        guard let mtu = PathMTU(bytes: Int(reader.read(UInt16.self))),
              let gid = GID(byteArray: reader.readBytes(16)),
              qpn <= 0xFF_FFFF, psn <= 0xFF_FFFF else { return nil }
        self.init(queuePairNumber: qpn, packetSequenceNumber: psn, gid: gid, lid: lid, mtu: mtu)
    }

    /// rdma-core's pingpong exchange line: `%04x:%06x:%06x:` + 32 hex digits of GID.
    public var pingpongText: String {
        func hex(_ value: some BinaryInteger, _ width: Int) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(hex(lid, 4)):\(hex(queuePairNumber, 6)):\(hex(packetSequenceNumber, 6)):\(gid.hexDigits)"
    }

    /// Parses a pingpong exchange line; the MTU is not part of it, so give yours.
    public init?(pingpongText text: String, mtu: PathMTU) {
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 4, let lid = UInt16(fields[0], radix: 16), let qpn = UInt32(fields[1], radix: 16),
              let psn = UInt32(fields[2], radix: 16), qpn <= 0xFF_FFFF, psn <= 0xFF_FFFF,
              let gid = GID(String(fields[3])), fields[3].count == 32 else { return nil }
        self.init(queuePairNumber: qpn, packetSequenceNumber: psn, gid: gid, lid: lid, mtu: mtu)
    }

    public var description: String {
        "QPN 0x\(String(queuePairNumber, radix: 16)) PSN 0x\(String(packetSequenceNumber, radix: 16)) GID \(gid) LID \(lid) MTU \(mtu)"
    }
}
