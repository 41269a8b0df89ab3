import Congestion
import FabricSim
import Testing

@Suite struct MetricsTests {
    @Test func jainIndex() {
        #expect(jainFairnessIndex([10, 10, 10, 10]) == 1)
        #expect(jainFairnessIndex([40, 0, 0, 0]) == 0.25)
        #expect(jainFairnessIndex([1, 3]) == 0.8)  // 16 / (2 · 10)
        #expect(jainFairnessIndex([Double]()) == nil)
        #expect(jainFairnessIndex([0, 0]) == nil)
    }

    @Test func maxMinFairSharesByProgressiveFilling() {
        #expect(maxMinFairShares(routes: [[0], [0, 1]], capacities: [10e9, 2e9]) == [8e9, 2e9])
        // The victim-flow shape: four flows share link 0 (R's), two of them and the victim
        // share link 1 (S1->S2).
        let shares = maxMinFairShares(routes: [[0, 1], [0, 1], [0], [0], [1]], capacities: [40e9, 40e9])
        #expect(shares == [10e9, 10e9, 10e9, 10e9, 20e9])
    }

    @Test func queueHistogramIsTimeWeighted() {
        var histogram = QueueOccupancyHistogram(bucketBytes: 256)
        histogram.record(bytes: 3_000, at: .microseconds(1))
        histogram.record(bytes: 0, at: .microseconds(4))
        histogram.finish(at: .microseconds(10))
        #expect(histogram.totalTime == .microseconds(10))
        #expect(histogram.percentileBytes(0.5) == 0)
        #expect(histogram.percentileBytes(0.69) == 0)
        #expect(histogram.percentileBytes(0.71) == 3_000)  // bucket edge 3072, capped at the maximum
        #expect(histogram.maxBytes == 3_000)
        #expect(abs(histogram.meanBytes - 900) < 1e-9)
    }
}
