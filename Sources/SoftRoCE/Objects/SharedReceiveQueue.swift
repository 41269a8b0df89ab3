/// A shared receive queue: one ring of receives that several QPs draw from.
package final class SoftSharedReceiveQueue: @unchecked Sendable {
    let ring: ReceiveRing
    package let domain: UInt32
    init(domain: UInt32, capacity: Int, maxScatterGather: Int) {
        self.domain = domain
        ring = ReceiveRing(capacity: capacity, maxScatterGather: maxScatterGather)
    }
    package var capacity: Int { ring.capacity }
}
