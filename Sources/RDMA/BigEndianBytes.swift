// Fixed-width big-endian encoding for the out-of-band formats (RemoteMemory, Endpoint).
// Not on any data path.

extension Array where Element == UInt8 {
    mutating func appendBigEndian<Value: FixedWidthInteger>(_ value: Value) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
}

struct BigEndianReader<Bytes: Collection> where Bytes.Element == UInt8 {
    private var remaining: Bytes.SubSequence

    init(_ bytes: Bytes) { remaining = bytes[...] }

    /// Reads the next value; the caller has checked the total length.
    mutating func read<Value: FixedWidthInteger>(_: Value.Type) -> Value {
        var value: Value = 0
        for byte in remaining.prefix(MemoryLayout<Value>.size) {
            value = value << 8 | Value(byte)
        }
        remaining = remaining.dropFirst(MemoryLayout<Value>.size)
        return value
    }

    mutating func readBytes(_ count: Int) -> [UInt8] {
        defer { remaining = remaining.dropFirst(count) }
        return Array(remaining.prefix(count))
    }
}
