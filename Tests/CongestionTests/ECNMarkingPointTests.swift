import Congestion
import Testing

@Suite struct ECNMarkingPointTests {
    let point = ECNMarkingPoint(ECNMarkingParameters(kMinBytes: 100, kMaxBytes: 300, maximumMarkingProbability: 0.5))

    @Test func probabilityFollowsTheREDRamp() {
        #expect(point.markingProbability(queueBytes: 0) == 0)
        #expect(point.markingProbability(queueBytes: 99) == 0)
        #expect(point.markingProbability(queueBytes: 100) == 0)
        #expect(point.markingProbability(queueBytes: 200) == 0.25)
        #expect(point.markingProbability(queueBytes: 300) == 0.5)
        #expect(point.markingProbability(queueBytes: 301) == 1)
    }

    @Test func markingIsDeterministicForASeedAndMatchesTheProbability() {
        func marks(seed: UInt64) -> [Bool] {
            var random = SplitMix64(seed: seed)
            return (0..<100_000).map { _ in point.shouldMark(queueBytes: 200, using: &random) }
        }
        let first = marks(seed: 7)
        #expect(first == marks(seed: 7))
        #expect(first != marks(seed: 8))
        let fraction = Double(first.filter { $0 }.count) / Double(first.count)
        #expect(abs(fraction - 0.25) < 0.01)
    }

    @Test func noDrawOutsideTheRamp() {
        var random = SplitMix64(seed: 1)
        #expect(!point.shouldMark(queueBytes: 50, using: &random))
        #expect(point.shouldMark(queueBytes: 1_000, using: &random))
        #expect(random == SplitMix64(seed: 1))
    }

    @Test func equalThresholdsMarkOnlyAbove() {
        let step = ECNMarkingPoint(ECNMarkingParameters(kMinBytes: 100, kMaxBytes: 100, maximumMarkingProbability: 1))
        #expect(step.markingProbability(queueBytes: 100) == 0)
        #expect(step.markingProbability(queueBytes: 101) == 1)
    }

    @Test func splitMix64MatchesTheReferenceSequence() {
        var random = SplitMix64(seed: 0)
        #expect(random.next() == 0xE220_A839_7B1D_CDAF)
        #expect(random.next() == 0x6E78_9E6A_A1B9_65F4)
    }
}
