import CZlib

/// CRC-32 with the IEEE 802.3 polynomial (reflected), as computed by zlib's `crc32`.
///
/// The value is zlib's: pre- and post-inverted, so `CRC32.update(0, bytes)` is the CRC of
/// `bytes`, and feeding the result back in continues the same CRC over more bytes.
///
/// ```swift
/// let whole = CRC32.update(CRC32.update(0, first), second) // == CRC of first + second
/// ```
///
/// zlib is used rather than a Swift table implementation because it is a long-maintained,
/// widely fuzzed implementation that computes several bytes per step ("braided" CRC), and
/// the per-packet cost of RoCEv2 is dominated by this loop. The corresponding C function is
/// `crc32_z`.
public enum CRC32 {
    /// Continues `crc` over `bytes`.
    @inlinable
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        // crc32_z takes a size_t length, so buffers above 4 GiB need no splitting.
        return UInt32(truncatingIfNeeded: crc32_z(UInt(crc), base.assumingMemoryBound(to: Bytef.self), bytes.count))
    }
}
