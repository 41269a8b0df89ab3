import RDMA

/// What one endpoint tells its peer before the first message: how many receive buffers it
/// posted (the peer's initial credits), how large an eager message may be, where the peer
/// writes credit grants (the control block) and large messages (the rendezvous region).
///
/// 40 bytes serialized, so it travels in rdma_cm's 56 bytes of REQ/REP private data, or
/// over any other channel.
///
/// ```swift
/// let mine = endpoint.localHandshake.serialized          // send these bytes to the peer …
/// let theirs = try EndpointHandshake(serialized: bytes)  // … and read the peer's
/// try endpoint.start(peer: theirs)
/// ```
public struct EndpointHandshake: Hashable, Sendable {
    /// The protocol version this code speaks; a peer with another one is refused.
    public static let currentVersion: UInt8 = 1
    public static let serializedCount = 40
    static let magic: UInt16 = 0x4D45 // "ME"

    /// The limits a peer's handshake is checked against.
    public static let maxReceiveSlots = 65_535
    public static let maxEagerLimit = 1 << 20
    public static let maxRendezvousSlots = 64
    public static let maxRendezvousSlotSize = 1 << 30

    public var version: UInt8
    /// Receive buffers posted before the handshake was sent: the peer's initial credits.
    public var receiveSlots: UInt16
    /// The largest payload one receive buffer holds (an eager message).
    public var eagerLimit: UInt32
    /// Where the peer RDMA WRITEs its credit grants, rendezvous releases and close reason.
    public var controlBlock: RemoteMemory
    /// Where the peer RDMA WRITEs messages above the eager threshold: `rendezvousSlots`
    /// slots of `rendezvousSlotSize` bytes each, used in turn.
    public var rendezvousRegion: RemoteMemory
    public var rendezvousSlots: UInt16
    public var rendezvousSlotSize: UInt32

    public init(version: UInt8 = currentVersion, receiveSlots: UInt16, eagerLimit: UInt32, controlBlock: RemoteMemory,
                rendezvousRegion: RemoteMemory, rendezvousSlots: UInt16, rendezvousSlotSize: UInt32) {
        self.version = version
        self.receiveSlots = receiveSlots
        self.eagerLimit = eagerLimit
        self.controlBlock = controlBlock
        self.rendezvousRegion = rendezvousRegion
        self.rendezvousSlots = rendezvousSlots
        self.rendezvousSlotSize = rendezvousSlotSize
    }

    /// Little-endian: magic "ME" (2), version (1), reserved (1), receive slots (2),
    /// rendezvous slots (2), eager limit (4), rendezvous slot size (4), control block
    /// address (8), control block rkey (4), rendezvous rkey (4), rendezvous address (8).
    public var serialized: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.serializedCount)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: Self.magic.littleEndian, toByteOffset: 0, as: UInt16.self)
            raw[2] = version
            raw.storeBytes(of: receiveSlots.littleEndian, toByteOffset: 4, as: UInt16.self)
            raw.storeBytes(of: rendezvousSlots.littleEndian, toByteOffset: 6, as: UInt16.self)
            raw.storeBytes(of: eagerLimit.littleEndian, toByteOffset: 8, as: UInt32.self)
            raw.storeBytes(of: rendezvousSlotSize.littleEndian, toByteOffset: 12, as: UInt32.self)
            raw.storeBytes(of: controlBlock.address.littleEndian, toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: controlBlock.rkey.littleEndian, toByteOffset: 24, as: UInt32.self)
            raw.storeBytes(of: rendezvousRegion.rkey.littleEndian, toByteOffset: 28, as: UInt32.self)
            raw.storeBytes(of: rendezvousRegion.address.littleEndian, toByteOffset: 32, as: UInt64.self)
        }
        return bytes
    }

    /// Parses and validates a peer's handshake; the error names the field that is wrong.
    public init(serialized bytes: some Collection<UInt8>) throws(EndpointError) {
        let array = Array(bytes)
        guard array.count >= Self.serializedCount else {
            throw .invalidConfiguration(field: "handshake.length", detail: "\(array.count) bytes, need \(Self.serializedCount)")
        }
        func read<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            array.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        }
        guard read(0, UInt16.self) == Self.magic else {
            throw .invalidConfiguration(field: "handshake.magic", detail: "not an endpoint handshake")
        }
        let slots = read(6, UInt16.self), slotSize = read(12, UInt32.self)
        self.init(version: array[2], receiveSlots: read(4, UInt16.self), eagerLimit: read(8, UInt32.self),
                  controlBlock: RemoteMemory(address: read(16, UInt64.self), rkey: read(24, UInt32.self), length: UInt32(ControlBlock.size)),
                  rendezvousRegion: RemoteMemory(address: read(32, UInt64.self), rkey: read(28, UInt32.self),
                                                 length: UInt32(clamping: UInt64(slots) * UInt64(slotSize))),
                  rendezvousSlots: slots, rendezvousSlotSize: slotSize)
        try validate()
    }

    /// Checks every field against the limits this side accepts.
    public func validate() throws(EndpointError) {
        guard version == Self.currentVersion else {
            throw .invalidConfiguration(field: "handshake.version", detail: "peer speaks version \(version), we speak \(Self.currentVersion)")
        }
        guard receiveSlots >= 1 else {
            throw .invalidConfiguration(field: "handshake.receiveSlots", detail: "the peer posted no receive buffers")
        }
        guard eagerLimit >= 1, eagerLimit <= Self.maxEagerLimit else {
            throw .invalidConfiguration(field: "handshake.eagerLimit", detail: "\(eagerLimit) outside 1…\(Self.maxEagerLimit)")
        }
        guard controlBlock.address != 0, controlBlock.address % 8 == 0 else {
            throw .invalidConfiguration(field: "handshake.controlBlock", detail: "address 0x\(String(controlBlock.address, radix: 16)) is null or unaligned")
        }
        guard rendezvousSlots <= Self.maxRendezvousSlots else {
            throw .invalidConfiguration(field: "handshake.rendezvousSlots", detail: "\(rendezvousSlots) > \(Self.maxRendezvousSlots)")
        }
        if rendezvousSlots > 0 {
            guard rendezvousSlotSize >= 1, rendezvousSlotSize <= Self.maxRendezvousSlotSize else {
                throw .invalidConfiguration(field: "handshake.rendezvousSlotSize", detail: "\(rendezvousSlotSize) outside 1…\(Self.maxRendezvousSlotSize)")
            }
            let total = UInt64(rendezvousSlots) * UInt64(rendezvousSlotSize)
            guard rendezvousRegion.address != 0, rendezvousRegion.address.addingReportingOverflow(total).overflow == false,
                  total <= UInt64(UInt32.max) else {
                throw .invalidConfiguration(field: "handshake.rendezvousRegion", detail: "address 0x\(String(rendezvousRegion.address, radix: 16)) with \(total) bytes is null, wraps or exceeds 4 GiB")
            }
        }
    }
}
