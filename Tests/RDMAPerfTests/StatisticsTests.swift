import Foundation
import Testing
@testable import RDMAPerf

@Suite("Statistics follow perftest's rules")
struct StatisticsTests {
    @Test("top 2 dropped, t_max is the smaller dropped sample, median of the kept ones")
    func perftestRules() throws {
        // 10 samples in µs×1000 (ns); the two largest (900, 1000 µs) are dropped.
        let samples: [UInt64] = [5, 1, 3, 2, 4, 6, 7, 8, 900, 1000].map { $0 * 1000 }
        let stats = try #require(LatencyStatistics(samplesNanoseconds: samples, halve: false))
        #expect(stats.sampleCount == 10)
        #expect(stats.minMicroseconds == 1)
        #expect(stats.maxMicroseconds == 900)          // sorted[kept] = sorted[8]
        #expect(stats.typicalMicroseconds == 4.5)      // kept = 8 (even): mean of 4 and 5
        #expect(stats.averageMicroseconds == 4.5)      // mean of 1…8
        #expect(abs(stats.stdevMicroseconds - 2.2913) < 0.001)
        #expect(stats.percentile99Microseconds == 900) // sorted[ceil(8×0.99)] = sorted[8]
        #expect(stats.hdrMaxMicroseconds >= 999 && stats.hdrMaxMicroseconds <= 1001)  // HDR keeps every sample
        #expect(!stats.halved)
    }

    @Test("odd kept count takes the middle sample; ping-pong halves every figure")
    func medianOddAndHalving() throws {
        let samples: [UInt64] = [10, 20, 30, 40, 50, 60, 70, 80, 90].map { $0 * 1000 }  // kept 7: 10…70
        let plain = try #require(LatencyStatistics(samplesNanoseconds: samples, halve: false))
        #expect(plain.typicalMicroseconds == 40)
        let halved = try #require(LatencyStatistics(samplesNanoseconds: samples, halve: true))
        #expect(halved.typicalMicroseconds == 20)
        #expect(halved.minMicroseconds == 5)
        #expect(halved.halved)
        #expect(abs(halved.p50Microseconds - 25) < 0.1)  // HDR: all 9 samples, none dropped
    }

    @Test("too few samples say nothing")
    func tooFew() {
        #expect(LatencyStatistics(samplesNanoseconds: [1, 2], halve: true) == nil)
    }

    @Test("HDR percentiles of a long tail")
    func tail() throws {
        var samples = [UInt64](repeating: 10_000, count: 9_990)
        samples += [UInt64](repeating: 1_000_000, count: 10)
        let stats = try #require(LatencyStatistics(samplesNanoseconds: samples, halve: false))
        #expect(abs(stats.p50Microseconds - 10) < 0.02)
        #expect(abs(stats.p99Microseconds - 10) < 0.02)
        #expect(stats.p99_99Microseconds > 990)
        #expect(stats.typicalMicroseconds == 10)
    }

    @Test("bandwidth: average, best window, units")
    func bandwidth() {
        let posted: [UInt64] = [0, 0, 100, 200]
        let completed: [UInt64] = [100, 200, 250, 400]
        let peak = posted.withUnsafeBufferPointer { p in
            completed.withUnsafeBufferPointer { c in BandwidthStatistics.peak(posted: p, completed: c, messageSize: 1000) }
        }
        // best run: messages 0…2, 250 ns for 3 → 83.3 ns each → 1000 B / 83.3 ns = 1.2e10 B/s
        #expect(abs(peak - 1.2e10) < 1e3)
        let stats = BandwidthStatistics(messageSize: 65536, messages: 1000, elapsedNanoseconds: 1_000_000_000, peakBytesPerSecond: 0)
        #expect(stats.averageBytesPerSecond == 65_536_000)
        #expect(BandwidthStatistics.format(stats.averageBytesPerSecond, gigabits: false) == 62.5)
        #expect(BandwidthStatistics.format(stats.averageBytesPerSecond, gigabits: true) == 0.524288)
        #expect(stats.peakBytesPerSecond == stats.averageBytesPerSecond)  // never below the average
        #expect(stats.messageRateMpps == 0.001)
    }
}

@Suite("Reports")
struct ReportTests {
    @Test("headers are perftest's, byte for byte")
    func headers() {
        #expect(PerftestFormat.latencyHeader == " #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    t_stdev[usec]   99% percentile[usec]   99.9% percentile[usec] ")
        #expect(PerftestFormat.bandwidthHeaderMiB == " #bytes     #iterations    BW peak[MiB/sec]    BW average[MiB/sec]   MsgRate[Mpps]")
        #expect(PerftestFormat.bandwidthHeaderGbits == " #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]")
        #expect(PerftestFormat.resultLine == String(repeating: "-", count: 87))
    }

    @Test("rows use perftest's printf layout")
    func rows() throws {
        let stats = try #require(LatencyStatistics(samplesNanoseconds: (1...1000).map { UInt64($0) * 1000 }, halve: false))
        let row = PerftestFormat.latencyRow(size: 2, iterations: 1000, stats)
        // Expected strings produced by C-semantics printf with perftest's REPORT_FMT_LAT / REPORT_FMT.
        #expect(row == " 2       1000          1.00           999.00       499.50   \t       499.50      \t288.10 \t\t990.00  \t\t999.00 ")
        let bw = BandwidthStatistics(messageSize: 65536, messages: 5000, elapsedNanoseconds: 1_000_000_000, peakBytesPerSecond: 0)
        #expect(PerftestFormat.bandwidthRow(bw, gigabits: false) == " 65536      5000             312.50             312.50 \t\t     0.005000")
    }

    @Test("JSON keys are stable")
    func jsonKeys() throws {
        let samples: [UInt64] = (1...100).map { UInt64($0) * 1000 }
        let stats = try #require(LatencyStatistics(samplesNanoseconds: samples, halve: true))
        let result = samples.withUnsafeBufferPointer {
            LatencyResult(size: 2, operation: .send, statistics: stats, histogram: LatencyStatistics.histogram(of: $0, halve: true), truncated: false)
        }
        let line = JSONReport.latency(result, path: "verbs device rxe0")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["tool", "op", "bytes", "iterations", "halved", "backend_path", "truncated",
                                     "t_min_us", "t_max_us", "t_typical_us", "t_avg_us", "t_stdev_us",
                                     "perftest_p99_us", "perftest_p99_9_us", "p50_us", "p90_us", "p99_us", "p99_9_us",
                                     "p99_99_us", "max_us"])
        #expect(object["halved"] as? Bool == true)
        let bw = JSONReport.bandwidth(BandwidthStatistics(messageSize: 65536, messages: 10, elapsedNanoseconds: 1000, peakBytesPerSecond: 0),
                                      operation: .write, qps: 2, bidirectional: true, path: "p")
        let bwObject = try #require(try JSONSerialization.jsonObject(with: Data(bw.utf8)) as? [String: Any])
        #expect(Set(bwObject.keys) == ["tool", "op", "bytes", "iterations", "qps", "bidirectional", "backend_path", "seconds",
                                       "bw_peak_mib_s", "bw_avg_mib_s", "bw_peak_gbit_s", "bw_avg_gbit_s", "msg_rate_mpps"])
    }

    @Test("histogram file is HdrHistogram's percentile distribution; SVG is complete")
    func histogramAndPlot() throws {
        let samples: [UInt64] = (1...10_000).map { UInt64($0 % 97 + 10) * 1000 }
        let stats = try #require(LatencyStatistics(samplesNanoseconds: samples, halve: true))
        let histogram = samples.withUnsafeBufferPointer { LatencyStatistics.histogram(of: $0, halve: true) }
        let text = HistogramFile.text(histogram)
        #expect(text.hasPrefix("       Value     Percentile TotalCount 1/(1-Percentile)"))
        #expect(text.contains("#[Mean    ="))
        #expect(HistogramFile.name("lat.hgrm", size: 64, sweep: true) == "lat.64.hgrm")
        #expect(HistogramFile.name("lat.hgrm", size: 64, sweep: false) == "lat.hgrm")
        let result = LatencyResult(size: 2, operation: .send, statistics: stats, histogram: histogram, truncated: false)
        let svg = SVGPlot.latency([result], title: "t")
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        #expect(svg.contains("99.9%"))
        #expect(svg.contains("(RTT/2)"))
        // A tail over four decades stays readable: the plot is left for a person to look at.
        var tailed: [UInt64] = (1...20_000).map { UInt64(20_000 + ($0 % 50) * 100) }
        tailed += [4_000_000, 8_000_000, 56_000_000]
        let tailedStats = try #require(LatencyStatistics(samplesNanoseconds: tailed, halve: true))
        let tailedHistogram = tailed.withUnsafeBufferPointer { LatencyStatistics.histogram(of: $0, halve: true) }
        let tailedSVG = SVGPlot.latency([LatencyResult(size: 2, operation: .send, statistics: tailedStats, histogram: tailedHistogram, truncated: false)],
                                        title: "rdma-pingpong: send latency by percentile (test data)")
        #expect(tailedSVG.contains(">10000<") || tailedSVG.contains(">1e+04<"))
        try? tailedSVG.write(toFile: NSTemporaryDirectory() + "rdmaperf-latency-test.svg", atomically: true, encoding: .utf8)
        let bw = SVGPlot.bandwidth([BandwidthStatistics(messageSize: 2, messages: 1, elapsedNanoseconds: 1, peakBytesPerSecond: 0),
                                    BandwidthStatistics(messageSize: 65536, messages: 1, elapsedNanoseconds: 1, peakBytesPerSecond: 0)],
                                   gigabits: true, title: "bw")
        #expect(bw.contains("64K") && bw.contains("Gb/s"))
    }
}
