import Congestion

/// How long a queue spent at each depth: a time-weighted histogram, so percentiles are
/// "fraction of time", not "fraction of samples", and no peak between two samples is missed.
///
/// ```swift
/// var histogram = QueueOccupancyHistogram(bucketBytes: 256)
/// histogram.record(bytes: 3_000, at: .microseconds(1))
/// histogram.record(bytes: 0, at: .microseconds(4))
/// histogram.finish(at: .microseconds(10))
/// histogram.percentileBytes(0.5)   // 0: the queue was empty 7 of the 10 µs
/// histogram.maxBytes               // 3 000
/// ```
public struct QueueOccupancyHistogram: Hashable, Sendable {
    public let bucketBytes: Int
    /// Time spent in each bucket; bucket 0 is exactly empty, bucket b holds depths in
    /// ((b−1)·bucketBytes, b·bucketBytes].
    public private(set) var nanosecondsInBucket: [Int64] = [0]
    public private(set) var maxBytes = 0
    private var currentBytes = 0
    private var since: Int64 = 0

    public init(bucketBytes: Int = 256) {
        precondition(bucketBytes > 0)
        self.bucketBytes = bucketBytes
    }

    /// The queue holds `bytes` from `time` on.
    public mutating func record(bytes: Int, at time: Nanoseconds) {
        record(bytes: bytes, atNanoseconds: time.rawValue)
    }

    @inline(__always)
    mutating func record(bytes: Int, atNanoseconds time: Int64) {
        let bucket = (currentBytes + bucketBytes - 1) / bucketBytes
        if bucket >= nanosecondsInBucket.count {
            nanosecondsInBucket.append(contentsOf: repeatElement(0, count: bucket + 1 - nanosecondsInBucket.count))
        }
        nanosecondsInBucket[bucket] += time - since
        since = time
        currentBytes = bytes
        if bytes > maxBytes { maxBytes = bytes }
    }

    /// Accounts the time up to the end of the run.
    public mutating func finish(at time: Nanoseconds) { record(bytes: currentBytes, at: time) }

    public var totalTime: Nanoseconds { Nanoseconds(nanosecondsInBucket.reduce(0, +)) }

    /// The depth the queue stayed at or below for `fraction` of the time, rounded up to the
    /// bucket edge (and never above the maximum seen).
    public func percentileBytes(_ fraction: Double) -> Int {
        let total = nanosecondsInBucket.reduce(0, +)
        guard total > 0 else { return currentBytes }
        let wanted = Double(total) * fraction
        var cumulative: Int64 = 0
        for (bucket, time) in nanosecondsInBucket.enumerated() {
            cumulative += time
            if Double(cumulative) >= wanted { return min(bucket * bucketBytes, maxBytes) }
        }
        return maxBytes
    }

    /// Time-weighted mean depth, with each bucket counted at its upper edge.
    public var meanBytes: Double {
        let total = nanosecondsInBucket.reduce(0, +)
        guard total > 0 else { return 0 }
        var weighted = 0.0
        for (bucket, time) in nanosecondsInBucket.enumerated() { weighted += Double(min(bucket * bucketBytes, maxBytes)) * Double(time) }
        return weighted / Double(total)
    }
}
