import Histogram

/// perftest's latency figures computed the way `print_report_lat` computes them, plus
/// honest percentiles from an HDR histogram over the same samples.
///
/// perftest's rules, reproduced on purpose so the columns compare one to one:
/// - samples are sorted and the top 2 are dropped (`LAT_MEASURE_TAIL`) before the
///   average, stdev, median and 99/99.9 % columns;
/// - `t_max` is `sorted[count - 2]` — the smaller of the two dropped samples;
/// - `t_typical` is the median of the kept samples (mean of the two middle ones when even);
/// - `99%` is `sorted[ceil(kept × 0.99)]`, `99.9%` likewise;
/// - ping-pong SEND/WRITE samples are round trips, reported halved (RTT/2);
///   READ/atomic samples are one request/response and are not halved.
///
/// One difference: perftest's `t_stdev` truncates to whole µs in an intermediate `int`;
/// ours does not (`stdevMicroseconds`), so sub-µs jitter is not shown as 0.
///
/// The HDR percentiles (`p50` … `max`) use every sample, none dropped: they are the tail
/// the tool is for.
///
/// ```swift
/// let stats = LatencyStatistics(samplesNanoseconds: rtts, halve: true)
/// print(stats.typicalMicroseconds, stats.p99_99Microseconds)
/// ```
public struct LatencyStatistics: Sendable, Equatable, Codable {
    public var sampleCount: Int
    public var minMicroseconds: Double
    public var maxMicroseconds: Double
    public var typicalMicroseconds: Double
    public var averageMicroseconds: Double
    public var stdevMicroseconds: Double
    public var percentile99Microseconds: Double
    public var percentile99_9Microseconds: Double
    /// From the HDR histogram over all samples (3 significant digits).
    public var p50Microseconds: Double
    public var p90Microseconds: Double
    public var p99Microseconds: Double
    public var p99_9Microseconds: Double
    public var p99_99Microseconds: Double
    public var hdrMaxMicroseconds: Double
    /// True when samples were round trips and every figure is RTT/2.
    public var halved: Bool

    /// perftest's number of samples it drops from the top.
    public static let droppedTail = 2

    /// The histogram the HDR figures came from, in nanoseconds (already halved when `halved`).
    public static func histogram(of samplesNanoseconds: UnsafeBufferPointer<UInt64>, halve: Bool) -> Histogram<UInt64> {
        // Sized for the largest sample up front: an auto-resizing histogram grows one
        // allocation at a time as new maxima arrive, thousands of times over a long run.
        let largest = samplesNanoseconds.max().map { halve ? $0 / 2 : $0 } ?? 2
        var histogram = Histogram<UInt64>(highestTrackableValue: max(largest, 2), numberOfSignificantValueDigits: .three)
        histogram.autoResize = true
        for sample in samplesNanoseconds { _ = histogram.record(halve ? sample / 2 : sample) }
        return histogram
    }

    /// Computes the figures; nil with fewer than 3 samples (perftest needs more than its
    /// dropped tail to say anything).
    public init?(samplesNanoseconds: [UInt64], halve: Bool) {
        let result = samplesNanoseconds.withUnsafeBufferPointer { Self(samples: $0, halve: halve) }
        guard let result else { return nil }
        self = result
    }

    public init?(samples: UnsafeBufferPointer<UInt64>, halve: Bool) {
        guard samples.count > Self.droppedTail else { return nil }
        let divisor = halve ? 2000.0 : 1000.0
        let sorted = samples.sorted()
        let kept = sorted.count - Self.droppedTail
        func us(_ value: UInt64) -> Double { Double(value) / divisor }
        let median: Double
        if (kept - 1) % 2 != 0 {
            median = (Double(sorted[kept / 2]) + Double(sorted[kept / 2 - 1])) / 2 / divisor
        } else {
            median = us(sorted[kept / 2])
        }
        var sum = 0.0
        for index in 0..<kept { sum += us(sorted[index]) }
        let average = sum / Double(kept)
        var squares = 0.0
        for index in 0..<kept { let d = us(sorted[index]) - average; squares += d * d }
        let index99 = min(Int((Double(kept) * 0.99).rounded(.up)), sorted.count - 1)
        let index999 = min(Int((Double(kept) * 0.999).rounded(.up)), sorted.count - 1)
        sampleCount = samples.count
        minMicroseconds = us(sorted[0])
        maxMicroseconds = us(sorted[kept])
        typicalMicroseconds = median
        averageMicroseconds = average
        stdevMicroseconds = (squares / Double(kept)).squareRoot()
        percentile99Microseconds = us(sorted[index99])
        percentile99_9Microseconds = us(sorted[index999])
        let histogram = Self.histogram(of: samples, halve: halve)
        func hdr(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
        p50Microseconds = hdr(50)
        p90Microseconds = hdr(90)
        p99Microseconds = hdr(99)
        p99_9Microseconds = hdr(99.9)
        p99_99Microseconds = hdr(99.99)
        hdrMaxMicroseconds = Double(histogram.max) / 1000
        halved = halve
    }
}

/// Bandwidth figures the way perftest's `print_report_bw` defines them.
///
/// - average: total bytes ÷ (last completion − first post);
/// - peak: the best rate over any run of consecutive messages, from the post of the first
///   to the completion of the last (perftest's `opt_delta`);
/// - message rate: messages ÷ elapsed, in millions per second.
/// Units: MiB/s (2^20 B) or, with `--report_gbits`, Gb/s (10^9 bit).
public struct BandwidthStatistics: Sendable, Equatable, Codable {
    public var messageSize: Int
    public var messages: Int
    public var elapsedSeconds: Double
    public var averageBytesPerSecond: Double
    public var peakBytesPerSecond: Double
    public var messageRateMpps: Double
    /// Payload bytes compared with --verify (both sides); nil without it.
    public var verifiedBytes: Int?
    /// With -e: waits on the completion channel an event ended (this side, all sizes so
    /// far); nil without -e.
    public var completionEventWakeups: Int?
    /// With more than one QP: how evenly they shared the path (nil with one QP, or a run cut short).
    public var queuePairSpread: QueuePairSpread?

    public init(messageSize: Int, messages: Int, elapsedNanoseconds: UInt64, peakBytesPerSecond: Double) {
        self.messageSize = messageSize
        self.messages = messages
        elapsedSeconds = Double(elapsedNanoseconds) / 1e9
        let seconds = max(elapsedSeconds, 1e-9)
        averageBytesPerSecond = Double(messageSize) * Double(messages) / seconds
        self.peakBytesPerSecond = max(peakBytesPerSecond, averageBytesPerSecond)
        messageRateMpps = Double(messages) / seconds / 1e6
    }

    /// perftest's peak: the smallest time per message over any run of consecutive
    /// messages i…j, from the post of i to the completion of j (its `opt_delta`).
    /// `posted[i]`/`completed[i]` are per-message timestamps in ns. Quadratic like
    /// perftest's; beyond ~7,000 messages the start index is sampled to stay bounded.
    public static func peak(posted: UnsafeBufferPointer<UInt64>, completed: UnsafeBufferPointer<UInt64>,
                            messageSize: Int) -> Double {
        let count = min(posted.count, completed.count)
        guard count > 0 else { return 0 }
        let step = max(1, count * count / 50_000_000)
        var best = Double.infinity
        var i = 0
        while i < count {
            let start = posted[i]
            for j in i..<count where completed[j] > start {
                let perMessage = Double(completed[j] - start) / Double(j - i + 1)
                if perMessage < best { best = perMessage }
            }
            i += step
        }
        guard best.isFinite, best > 0 else { return 0 }
        return Double(messageSize) / (best / 1e9)
    }

    /// MiB/s or Gb/s.
    public static func format(_ bytesPerSecond: Double, gigabits: Bool) -> Double {
        gigabits ? bytesPerSecond * 8 / 1e9 : bytesPerSecond / 1_048_576
    }
}

/// How evenly several QPs of one bandwidth run shared the path: each QP moves the same number
/// of messages, so its bandwidth is its bytes over the time from the run's start to its last
/// completion. Jain's fairness index is (Σx)² / (n·Σx²): 1 when all are equal, 1/n when one
/// QP had everything.
///
/// ```swift
/// let spread = QueuePairSpread(rates: [100, 100, 50])   // bytes/s
/// spread?.jainIndex   // 0.926
/// ```
public struct QueuePairSpread: Sendable, Equatable, Codable {
    public var queuePairs: Int
    public var minimumBytesPerSecond: Double
    public var medianBytesPerSecond: Double
    public var maximumBytesPerSecond: Double
    public var jainIndex: Double

    /// Nil for fewer than two rates or any rate that is not positive and finite.
    public init?(rates: [Double]) {
        guard rates.count > 1, rates.allSatisfy({ $0 > 0 && $0.isFinite }) else { return nil }
        let sorted = rates.sorted()
        queuePairs = rates.count
        minimumBytesPerSecond = sorted[0]
        maximumBytesPerSecond = sorted[sorted.count - 1]
        medianBytesPerSecond = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        let sum = rates.reduce(0, +), squares = rates.reduce(0) { $0 + $1 * $1 }
        jainIndex = sum * sum / (Double(rates.count) * squares)
    }
}
