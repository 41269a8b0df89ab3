import RoCEWire
import Testing

@Suite struct PacketSequenceNumberTests {
    @Test func wrapsModulo2To24() {
        let last: PacketSequenceNumber = 0xFF_FFFF
        #expect((last + 1).rawValue == 0)
        #expect((last + 3).rawValue == 2)
        #expect((PacketSequenceNumber(0) - 1).rawValue == 0xFF_FFFF)
        #expect(PacketSequenceNumber(truncating: 0x1FF_FFFF).rawValue == 0xFF_FFFF)
        #expect(PacketSequenceNumber(exactly: 0x100_0000) == nil)
        var psn: PacketSequenceNumber = 0xFF_FFFE
        psn += 2
        #expect(psn == 0)
    }

    @Test func distanceIsShortestSignedWay() {
        let a: PacketSequenceNumber = 0xFF_FFFE
        #expect(a.distance(to: 1) == 3)
        #expect(PacketSequenceNumber(1).distance(to: a) == -3)
        #expect(PacketSequenceNumber(0).distance(to: 0x7F_FFFF) == 0x7F_FFFF)
        #expect(PacketSequenceNumber(0).distance(to: 0x80_0000) == -0x80_0000)
        #expect(a.distance(to: a) == 0)
    }

    @Test func beforeAndAfterUseHalfTheSpace() {
        #expect(PacketSequenceNumber(0xFF_FFF0).isBefore(0x10))
        #expect(PacketSequenceNumber(0x10).isAfter(0xFF_FFF0))
        #expect(!PacketSequenceNumber(5).isBefore(5))
        #expect(PacketSequenceNumber(0).isBefore(0x7F_FFFF))
        #expect(!PacketSequenceNumber(0).isBefore(0x80_0000))
    }

    @Test func windowWraps() {
        let start: PacketSequenceNumber = 0xFF_FFFE
        #expect(start.isInWindow(startingAt: start, count: 1))
        #expect(PacketSequenceNumber(1).isInWindow(startingAt: start, count: 4))
        #expect(!PacketSequenceNumber(2).isInWindow(startingAt: start, count: 4))
        #expect(!PacketSequenceNumber(0xFF_FFFD).isInWindow(startingAt: start, count: 4))
        #expect(!start.isInWindow(startingAt: start, count: 0))
        #expect(PacketSequenceNumber(0xFF_FFFD).isInWindow(startingAt: start, count: 1 << 24))
    }

    @Test func propertiesOverRandomValues() {
        var rng = SplitMix64(seed: 24)
        for _ in 0 ..< 10_000 {
            let a = PacketSequenceNumber(truncating: .random(in: 0 ... .max, using: &rng))
            let n = Int.random(in: -(1 << 23) + 1 ..< (1 << 23), using: &rng)
            let b = a + n
            #expect(a.distance(to: b) == n)
            #expect(b - n == a)
            #expect(a.isBefore(b) == (n > 0))
            #expect(b.isInWindow(startingAt: a, count: max(n + 1, 0)) == (n >= 0))
        }
    }
}
