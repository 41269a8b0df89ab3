// Unchecked big-endian field access. Every caller has already checked that the whole
// header lies inside the buffer, so these do no bounds checks of their own in release
// builds; the debug assertions catch a caller that forgot.

extension UnsafeRawBufferPointer {
    @inlinable @inline(__always)
    func loadBigEndian<T: FixedWidthInteger>(at offset: Int, as: T.Type = T.self) -> T {
        assert(offset >= 0 && offset + MemoryLayout<T>.size <= count)
        return T(bigEndian: baseAddress.unsafelyUnwrapped.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// Loads a 24-bit big-endian field.
    @inlinable @inline(__always)
    func loadUInt24(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 16 | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2])
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable @inline(__always)
    func storeBigEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        assert(offset >= 0 && offset + MemoryLayout<T>.size <= count)
        baseAddress.unsafelyUnwrapped.storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
    }

    /// Stores the low 24 bits of `value`, big-endian.
    @inlinable @inline(__always)
    func storeUInt24(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 2] = UInt8(truncatingIfNeeded: value)
    }
}
