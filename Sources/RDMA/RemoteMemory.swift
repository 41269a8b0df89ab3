/// Where a peer may read or write: an address, the remote key that grants access, and the
/// length granted. Send it to the peer over any channel — JSON or 16 fixed bytes.
///
/// ```swift
/// let descriptor = region.remoteDescriptor           // on the target
/// let bytes = descriptor.serialized                  // send these 16 bytes …
/// let remote = RemoteMemory(serialized: bytes)!      // … and on the initiator
/// chain.append(.init(id: 1, operation: .write(remote)), scatterGather: local)
/// ```
public struct RemoteMemory: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The virtual address on the target (what `ibv_reg_mr` registered).
    public var address: UInt64
    /// The remote key of the target's memory region.
    public var rkey: UInt32
    /// How many bytes from `address` the peer may touch.
    public var length: UInt32

    public init(address: UInt64, rkey: UInt32, length: UInt32) {
        self.address = address
        self.rkey = rkey
        self.length = length
    }

    /// The same region starting `offset` bytes further, `length` bytes long (or the rest).
    /// Traps when the slice would leave the region: that is a programmer error that the
    /// target would otherwise report as a remote access error much later.
    public func slice(offset: UInt32, length: UInt32? = nil) -> RemoteMemory {
        precondition(offset <= self.length, "RemoteMemory.slice: offset \(offset) beyond length \(self.length)")
        let rest = self.length - offset
        let size = length ?? rest
        precondition(size <= rest, "RemoteMemory.slice: \(size) bytes at \(offset) exceed length \(self.length)")
        return RemoteMemory(address: address + UInt64(offset), rkey: rkey, length: size)
    }

    /// The 16-byte big-endian wire form: address (8), rkey (4), length (4).
    public var serialized: [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(16)
        bytes.appendBigEndian(address)
        bytes.appendBigEndian(rkey)
        bytes.appendBigEndian(length)
        return bytes
    }

    /// Parses the 16-byte wire form; nil for any other length.
    public init?<Bytes: Collection>(serialized bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count == 16 else { return nil }
        var reader = BigEndianReader(bytes)
        address = reader.read(UInt64.self)
        rkey = reader.read(UInt32.self)
        length = reader.read(UInt32.self)
    }

    public var description: String {
        "0x\(String(address, radix: 16)) rkey 0x\(String(rkey, radix: 16)) length \(length)"
    }
}
