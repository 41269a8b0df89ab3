/// A wire that damages what another wire sends, per `SoftFaultInjection`: drops, duplicates,
/// holds back (reorder: ~100 µs, delay: `delayMicroseconds`), or flips one byte after the
/// ICRC was sealed (the receiver's ICRC check must catch it). Seeded xorshift, so the same
/// seed and the same traffic give the same faults. Held-back datagrams live in preallocated
/// slots; when all are busy the datagram goes out undelayed (counted as sent normally).
///
/// Batching goes through: a datagram's fate is drawn in `prepareSend`, before its ICRC is
/// sealed, so one that leaves once and on time (possibly corrupted) may join the inner wire's
/// GSO batch and carry that batch's IPv4 Identification, while one that is dropped, held back
/// or duplicated never does (it is sealed for a datagram of its own). Loss then hits segments
/// of super-datagrams as it would on a real path.
package final class FaultInjectingWire: Wire {
    package let inner: any Wire
    package let faults: SoftFaultInjection
    private let clock: EngineClock
    private var random: UInt64
    package private(set) var tally = Tally()

    /// What was injected, for the device's counters.
    package struct Tally: Equatable, Sendable {
        package var drops: UInt64 = 0
        package var duplicates: UInt64 = 0
        package var reorders: UInt64 = 0
        package var corruptions: UInt64 = 0
        package var delays: UInt64 = 0
    }

    private static let slotCount = 32
    private static let slotSize = 4096 + 512
    private let heldBytes: UnsafeMutableRawPointer
    private var held: [Held]
    private var heldCount = 0
    private let scratch: UnsafeMutableRawPointer

    /// What happens to the datagram `prepareSend` was told of (drawn there, applied by `send`).
    private struct Fate {
        var drop = false
        /// The byte flipped after sealing, if it is corrupted.
        var corruptedByte: Int? = nil
        var reorder = false
        var delay = false
        var duplicate = false
    }
    private var pendingFate: Fate? = nil

    private struct Held {
        var length = 0
        var release: UInt64 = 0     // 0 = free
        var sourcePort: UInt16 = 0
        var trafficClass = TrafficClass.unmarked
        var destination = WireEndpoint(.ipv4(0), port: 0)
    }

    package init(wrapping inner: any Wire, faults: SoftFaultInjection, clock: EngineClock) {
        self.inner = inner
        self.faults = faults
        self.clock = clock
        random = faults.seed == 0 ? 0x9E37_79B9_7F4A_7C15 : faults.seed
        heldBytes = .allocate(byteCount: Self.slotCount * Self.slotSize, alignment: 64)
        held = Array(repeating: Held(), count: Self.slotCount)
        scratch = .allocate(byteCount: Self.slotSize, alignment: 64)
    }

    deinit {
        heldBytes.deallocate()
        scratch.deallocate()
    }

    package var local: WireEndpoint { inner.local }
    package var pollDescriptor: Int32? { inner.pollDescriptor }
    package var deliversRealHeaders: Bool { inner.deliversRealHeaders }
    package var choosesSourcePort: Bool { inner.choosesSourcePort }
    package func receive(into batch: ReceiveBatch) { inner.receive(into: batch) }
    package func close() { inner.close() }

    private func nextRandom() -> Double {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return Double(random >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Draws the fate of a datagram of `length` bytes (in the order the draws were always
    /// made, so a seed gives the faults it gave before batching went through this wire).
    private func drawFate(length: Int) -> Fate {
        var fate = Fate()
        if nextRandom() < faults.drop { fate.drop = true; return fate }
        if nextRandom() < faults.corrupt, length > 0, length <= Self.slotSize {
            fate.corruptedByte = Int(nextRandom() * Double(length)) % length
        }
        fate.reorder = nextRandom() < faults.reorder
        fate.delay = !fate.reorder && nextRandom() < faults.delay
        let heldBack = (fate.reorder || fate.delay) && length <= Self.slotSize && heldCount < Self.slotCount
        if !heldBack {
            fate.reorder = false
            fate.delay = false
            fate.duplicate = nextRandom() < faults.duplicate
        }
        return fate
    }

    /// Draws the datagram's fate; only one that leaves once and on time may join a batch of
    /// the inner wire (the others are sealed as datagrams of their own: Identification 0).
    package func prepareSend(length: Int, from sourcePort: UInt16, to destination: WireEndpoint, trafficClass: TrafficClass,
                             batchRole: BatchRole) -> IPv4HeaderFields {
        let fate = drawFate(length: length)
        pendingFate = fate
        if fate.drop || fate.reorder || fate.delay { return .softSender }
        return inner.prepareSend(length: length, from: sourcePort, to: destination, trafficClass: trafficClass,
                                 batchRole: fate.duplicate ? .alone : batchRole)
    }

    package func holdSends() { inner.holdSends() }
    package func releaseSends() -> WireSendResult { inner.releaseSends() }

    package func send(_ datagram: UnsafeRawBufferPointer, from sourcePort: UInt16, to destination: WireEndpoint,
                      trafficClass: TrafficClass) -> WireSendResult {
        let fate = pendingFate ?? drawFate(length: datagram.count)
        pendingFate = nil
        // A dropped datagram is "sent" as far as the sender can tell: loss happens on the path.
        if fate.drop { tally.drops += 1; return .sent }
        var outgoing = datagram
        var corrupted = false
        if let flipped = fate.corruptedByte, flipped < datagram.count {
            corrupted = true
            tally.corruptions += 1
            scratch.copyMemory(from: datagram.baseAddress!, byteCount: datagram.count)
            scratch.storeBytes(of: scratch.load(fromByteOffset: flipped, as: UInt8.self) ^ 0x5A, toByteOffset: flipped, as: UInt8.self)
            outgoing = UnsafeRawBufferPointer(start: scratch, count: datagram.count)
        }
        if fate.reorder || fate.delay, let slot = held.firstIndex(where: { $0.release == 0 }) {
            if fate.reorder { tally.reorders += 1 } else { tally.delays += 1 }
            (heldBytes + slot * Self.slotSize).copyMemory(from: outgoing.baseAddress!, byteCount: outgoing.count)
            let wait: UInt64 = fate.reorder ? 100_000 : UInt64(max(faults.delayMicroseconds, 0)) * 1000
            held[slot] = Held(length: outgoing.count, release: max(clock.now() + wait, 1), sourcePort: sourcePort,
                                trafficClass: trafficClass, destination: destination)
            heldCount += 1
            return .sent
        }
        let result = inner.send(outgoing, from: sourcePort, to: destination, trafficClass: trafficClass)
        if fate.duplicate {
            tally.duplicates += 1
            // Each corrupted datagram on the path counts: the receiver sees both copies fail.
            if corrupted { tally.corruptions += 1 }
            _ = inner.send(outgoing, from: sourcePort, to: destination, trafficClass: trafficClass)
        }
        return result
    }

    /// When the next held-back datagram is due, if any.
    package var nextRelease: UInt64? {
        guard heldCount > 0 else { return nil }
        return held.lazy.filter { $0.release != 0 }.map(\.release).min()
    }

    package func service(now: UInt64) {
        inner.service(now: now)
        guard heldCount > 0 else { return }
        for slot in 0..<Self.slotCount where held[slot].release != 0 && held[slot].release <= now {
            _ = inner.send(UnsafeRawBufferPointer(start: heldBytes + slot * Self.slotSize, count: held[slot].length),
                           from: held[slot].sourcePort, to: held[slot].destination, trafficClass: held[slot].trafficClass)
            held[slot].release = 0
            heldCount -= 1
        }
    }
}
