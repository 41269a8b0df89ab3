/// A registered memory region of a soft device. Its lkey and rkey are the same key.
package final class SoftMemoryRegion: @unchecked Sendable {
    package let domain: UInt32
    package let base: UInt64
    package let length: Int
    package let access: SoftAccess
    package let key: UInt32
    package var lkey: UInt32 { key }
    package var rkey: UInt32 { key }
    /// False after deregistration: a key that outlives its region names nothing.
    var valid = true

    init(domain: UInt32, base: UInt64, length: Int, access: SoftAccess, key: UInt32) {
        self.domain = domain
        self.base = base
        self.length = length
        self.access = access
        self.key = key
    }

    /// True when [address, address+count) lies inside the region (no overflow on hostile
    /// addresses and lengths).
    @inline(__always)
    func contains(_ address: UInt64, _ count: Int) -> Bool {
        guard address >= base, count >= 0 else { return false }
        let offset = address - base
        return offset <= UInt64(length) && UInt64(count) <= UInt64(length) - offset
    }
}
