import CIBVerbs

/// One piece of local memory a work request reads from or writes into.
///
/// Layout-identical to `struct ibv_sge`, so a chain is built without conversion.
/// ```swift
/// let element = region.scatterGather(offset: 128, length: 64)
/// ```
@frozen
public struct ScatterGatherElement: Hashable, Sendable {
    /// The address of the first byte (inside a registered memory region).
    public var address: UInt64
    /// The byte count.
    public var length: UInt32
    /// The local key of the region that holds the bytes.
    public var lkey: UInt32

    @inlinable
    public init(address: UInt64, length: UInt32, lkey: UInt32) {
        self.address = address
        self.length = length
        self.lkey = lkey
    }

    @inlinable
    var verbs: ibv_sge { ibv_sge(addr: address, length: length, lkey: lkey) }
}
