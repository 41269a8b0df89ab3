/// The answer of the last lookup in a table keyed by `UInt32` (QP numbers, memory keys): the
/// engine asks for the same QP and the same key packet after packet, and hashing the key was
/// a tenth of a small packet's receive work (callgrind, softroce-bench). The value is
/// unowned(unsafe): the table owns it, and whoever takes it out of the table calls `forget`
/// first.
struct LastLookup<Value: AnyObject> {
    private var key: UInt32 = 0
    private unowned(unsafe) var value: Value? = nil

    /// `table[key]`, without hashing when `key` is the one found last.
    @inline(__always)
    mutating func value(_ key: UInt32, in table: [UInt32: Value]) -> Value? {
        if key == self.key, let value { return value }
        guard let found = table[key] else { return nil }
        (self.key, value) = (key, found)
        return found
    }

    /// Drops the answer if it is `leaving` (about to leave its table).
    mutating func forget(_ leaving: Value) {
        if value === leaving { value = nil }
    }

    /// Drops the answer (the table is being emptied).
    mutating func forgetAll() { value = nil }
}
