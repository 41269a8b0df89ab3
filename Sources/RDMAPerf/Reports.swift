import Foundation
import Histogram

/// perftest's table formats, byte for byte (from perftest_parameters.h), plus ours.
public enum PerftestFormat {
    public static let resultLine = "---------------------------------------------------------------------------------------"
    public static let latencyHeader = " #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    t_stdev[usec]   99% percentile[usec]   99.9% percentile[usec] "
    public static let bandwidthHeaderMiB = " #bytes     #iterations    BW peak[MiB/sec]    BW average[MiB/sec]   MsgRate[Mpps]"
    public static let bandwidthHeaderGbits = " #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]"
    /// Our HDR columns, printed under perftest's table.
    public static let tailHeader = " #bytes    p50[usec]    p90[usec]    p99[usec]    p99.9[usec]   p99.99[usec]    max[usec]   (HDR histogram, all samples)"

    /// perftest's `REPORT_FMT_LAT` row.
    public static func latencyRow(size: Int, iterations: Int, _ s: LatencyStatistics) -> String {
        String(format: " %-7lu %lu          %-7.2f        %-7.2f      %-7.2f  \t       %-7.2f     \t%-7.2f\t\t%-7.2f \t\t%-7.2f",
               UInt(size), UInt(iterations), s.minMicroseconds, s.maxMicroseconds, s.typicalMicroseconds,
               s.averageMicroseconds, s.stdevMicroseconds, s.percentile99Microseconds, s.percentile99_9Microseconds)
    }

    public static func tailRow(size: Int, _ s: LatencyStatistics) -> String {
        String(format: " %-7lu   %-9.2f    %-9.2f    %-9.2f    %-9.2f     %-9.2f      %-9.2f",
               UInt(size), s.p50Microseconds, s.p90Microseconds, s.p99Microseconds, s.p99_9Microseconds,
               s.p99_99Microseconds, s.hdrMaxMicroseconds)
    }

    /// perftest's `REPORT_FMT` row.
    public static func bandwidthRow(_ s: BandwidthStatistics, gigabits: Bool) -> String {
        String(format: " %-7lu    %-10lu       %-7.2f            %-7.2f\t\t     %-7.6f",
               UInt(s.messageSize), UInt(s.messages),
               BandwidthStatistics.format(s.peakBytesPerSecond, gigabits: gigabits),
               BandwidthStatistics.format(s.averageBytesPerSecond, gigabits: gigabits), s.messageRateMpps)
    }

    /// The note under a latency table saying what a sample is.
    public static func latencyNote(_ operation: LatencyOperation) -> String {
        operation.isPingPong
            ? "# \(operation) ping-pong: every figure is RTT/2 (one-way, as perftest reports), clock CLOCK_MONOTONIC_RAW; perftest columns drop the top 2 samples"
            : "# \(operation): every figure is one full request/response (not halved), clock CLOCK_MONOTONIC_RAW; perftest columns drop the top 2 samples"
    }
}

/// JSON lines: one object per size, keys sorted and stable.
///
/// Latency (`rdma-pingpong --json FILE`), all times in µs:
/// `tool, op, bytes, iterations, halved, backend_path, t_min_us, t_max_us, t_typical_us,
/// t_avg_us, t_stdev_us, perftest_p99_us, perftest_p99_9_us` (perftest's rules) and
/// `p50_us, p90_us, p99_us, p99_9_us, p99_99_us, max_us` (HDR, all samples), `truncated`.
///
/// Bandwidth (`rdma-throughput --json FILE`): `tool, op, bytes, iterations, qps,
/// bidirectional, backend_path, seconds, bw_peak_mib_s, bw_avg_mib_s, bw_peak_gbit_s,
/// bw_avg_gbit_s, msg_rate_mpps`, and `verified_bytes` with --verify.
/// Both: `completion_event_wakeups` with -e (waits on the completion channel an event ended).
///
/// ```swift
/// let line = JSONReport.latency(result, path: opened.path)   // {"bytes":2,"halved":true,…}
/// ```
public enum JSONReport {
    public static func latency(_ result: LatencyResult, path: String) -> String {
        let s = result.statistics
        var object: [String: Any] = [
            "tool": "rdma-pingpong", "op": result.operation.rawValue, "bytes": result.size,
            "iterations": s.sampleCount, "halved": s.halved, "backend_path": path, "truncated": result.truncated,
            "t_min_us": round2(s.minMicroseconds), "t_max_us": round2(s.maxMicroseconds),
            "t_typical_us": round2(s.typicalMicroseconds), "t_avg_us": round2(s.averageMicroseconds),
            "t_stdev_us": round2(s.stdevMicroseconds), "perftest_p99_us": round2(s.percentile99Microseconds),
            "perftest_p99_9_us": round2(s.percentile99_9Microseconds),
            "p50_us": round2(s.p50Microseconds), "p90_us": round2(s.p90Microseconds), "p99_us": round2(s.p99Microseconds),
            "p99_9_us": round2(s.p99_9Microseconds), "p99_99_us": round2(s.p99_99Microseconds), "max_us": round2(s.hdrMaxMicroseconds),
        ]
        if let verified = result.verifiedBytes { object["verified_bytes"] = verified }
        if let wakeups = result.completionEventWakeups { object["completion_event_wakeups"] = wakeups }
        return encode(object)
    }

    public static func bandwidth(_ s: BandwidthStatistics, operation: BandwidthOperation, qps: Int, bidirectional: Bool, path: String) -> String {
        var object: [String: Any] = [
            "tool": "rdma-throughput", "op": operation.rawValue, "bytes": s.messageSize, "iterations": s.messages,
            "qps": qps, "bidirectional": bidirectional, "backend_path": path, "seconds": s.elapsedSeconds,
            "bw_peak_mib_s": round2(s.peakBytesPerSecond / 1_048_576), "bw_avg_mib_s": round2(s.averageBytesPerSecond / 1_048_576),
            "bw_peak_gbit_s": round4(s.peakBytesPerSecond * 8 / 1e9), "bw_avg_gbit_s": round4(s.averageBytesPerSecond * 8 / 1e9),
            "msg_rate_mpps": round4(s.messageRateMpps),
        ]
        if let verified = s.verifiedBytes { object["verified_bytes"] = verified }
        if let wakeups = s.completionEventWakeups { object["completion_event_wakeups"] = wakeups }
        if let spread = s.queuePairSpread {
            object["qp_bw_min_mib_s"] = round2(spread.minimumBytesPerSecond / 1_048_576)
            object["qp_bw_median_mib_s"] = round2(spread.medianBytesPerSecond / 1_048_576)
            object["qp_bw_max_mib_s"] = round2(spread.maximumBytesPerSecond / 1_048_576)
            object["qp_jain_index"] = round4(spread.jainIndex)
        }
        return encode(object)
    }

    static func round2(_ value: Double) -> Double { (value * 100).rounded() / 100 }
    static func round4(_ value: Double) -> Double { (value * 10_000).rounded() / 10_000 }

    static func encode(_ object: [String: Any]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// HdrHistogram's percentile-distribution text (what HistogramLogAnalyzer and the
/// hdrhistogram.github.io plotter read), values in µs.
public enum HistogramFile {
    public static func text(_ histogram: Histogram<UInt64>) -> String {
        var output = ""
        histogram.outputPercentileDistribution(to: &output, outputValueUnitScalingRatio: 1000, percentileTicksPerHalfDistance: 5)
        return output
    }

    /// FILE for one size; FILE with `.<bytes>` before the extension for a sweep.
    public static func name(_ base: String, size: Int, sweep: Bool) -> String {
        guard sweep else { return base }
        let url = URL(fileURLWithPath: base)
        let ext = url.pathExtension
        let stem = ext.isEmpty ? base : String(base.dropLast(ext.count + 1))
        return ext.isEmpty ? "\(stem).\(size)" : "\(stem).\(size).\(ext)"
    }
}

/// Hand-written SVG plots: latency by percentile (log-scaled tail axis), bandwidth by size.
public enum SVGPlot {
    struct Series { var label: String; var points: [(x: Double, y: Double)] }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    /// Latency (µs) against percentile; x is log10(1/(1−p)), labelled 0 %, 90 %, 99 % …
    public static func latency(_ results: [LatencyResult], title: String) -> String {
        var series: [Series] = []
        var maxTail = 1.0
        for result in results {
            var points: [(x: Double, y: Double)] = []
            for value in result.histogram.percentiles(ticksPerHalfDistance: 5) {
                let fraction = min(value.percentileLevelIteratedTo / 100, 0.999999)
                let x = log10(1 / (1 - fraction))
                points.append((x, Double(value.value) / 1000))
                maxTail = max(maxTail, x)
            }
            series.append(Series(label: "\(result.size) B", points: points))
        }
        let decades = max(2, Int(maxTail.rounded(.up)))
        let labels = (0...decades).map { decade -> (Double, String) in
            let percent = 100 * (1 - pow(10, -Double(decade)))
            let text = decade == 0 ? "0%" : String(format: "%g%%", (percent * 1000).rounded() / 1000)
            return (Double(decade), text)
        }
        let halvedNote = results.first.map { $0.statistics.halved ? " (RTT/2)" : " (request/response)" } ?? ""
        return chart(title: title, xLabel: "percentile (log scale: each step is ten times rarer)",
                     yLabel: "latency [µs, log scale]\(halvedNote)", series: series, xRange: (0, Double(decades)),
                     xTicks: labels, logY: true)
    }

    /// Average bandwidth against message size (log2 x).
    public static func bandwidth(_ stats: [BandwidthStatistics], gigabits: Bool, title: String) -> String {
        let unit = gigabits ? "Gb/s" : "MiB/s"
        let average = Series(label: "average", points: stats.map { (log2(Double($0.messageSize)), BandwidthStatistics.format($0.averageBytesPerSecond, gigabits: gigabits)) })
        let peak = Series(label: "peak", points: stats.map { (log2(Double($0.messageSize)), BandwidthStatistics.format($0.peakBytesPerSecond, gigabits: gigabits)) })
        let xs = stats.map { log2(Double($0.messageSize)) }
        let low = (xs.min() ?? 0).rounded(.down), high = max((xs.max() ?? 1).rounded(.up), low + 1)
        // Counted down from the largest size so the size people look at most is labelled.
        let ticks = stride(from: high, through: low, by: -max(1, ((high - low) / 12).rounded(.up))).map { x -> (Double, String) in
            let bytes = Int(pow(2, x))
            let text = bytes >= 1 << 20 ? "\(bytes >> 20)M" : bytes >= 1 << 10 ? "\(bytes >> 10)K" : "\(bytes)"
            return (x, text)
        }
        return chart(title: title, xLabel: "message size [bytes, log scale]", yLabel: "bandwidth [\(unit)]",
                     series: [average, peak], xRange: (low, high), xTicks: ticks, logY: false)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func chart(title: String, xLabel: String, yLabel: String, series: [Series], xRange: (Double, Double),
                      xTicks: [(Double, String)], logY: Bool) -> String {
        let width = 900.0, height = 560.0
        let left = 90.0, right = 170.0, top = 50.0, bottom = 70.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        // Latency tails span decades (10 µs typical, 10 ms stalls): a log y axis keeps both
        // readable; bandwidth stays linear.
        let values = series.flatMap { $0.points.map(\.y) }.filter { $0 > 0 }
        let maxY = logY ? pow(10, (log10(values.max() ?? 10)).rounded(.up)) : niceCeiling(values.max() ?? 1)
        let minY = logY ? pow(10, (log10(values.min() ?? 1)).rounded(.down)) : 0
        func px(_ x: Double) -> Double { left + (x - xRange.0) / max(1e-9, xRange.1 - xRange.0) * plotWidth }
        func py(_ y: Double) -> Double {
            if logY {
                let span = max(1e-9, log10(maxY) - log10(minY))
                return top + plotHeight - (log10(max(y, minY)) - log10(minY)) / span * plotHeight
            }
            return top + plotHeight - y / maxY * plotHeight
        }
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="13">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="28" text-anchor="middle" font-size="17" font-weight="bold">\(escape(title))</text>

        """
        let yTicks: [Double] = logY
            ? stride(from: log10(minY), through: log10(maxY) + 1e-9, by: 1).map { pow(10, $0) }
            : (0...5).map { maxY * Double($0) / 5 }
        for y in yTicks {
            svg += "<line x1=\"\(left)\" y1=\"\(py(y))\" x2=\"\(left + plotWidth)\" y2=\"\(py(y))\" stroke=\"#ddd\"/>\n"
            svg += "<text x=\"\(left - 8)\" y=\"\(py(y) + 4)\" text-anchor=\"end\">\(format(y))</text>\n"
        }
        for (x, label) in xTicks {
            svg += "<line x1=\"\(px(x))\" y1=\"\(top)\" x2=\"\(px(x))\" y2=\"\(top + plotHeight)\" stroke=\"#eee\"/>\n"
            svg += "<text x=\"\(px(x))\" y=\"\(top + plotHeight + 20)\" text-anchor=\"middle\">\(escape(label))</text>\n"
        }
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotWidth)\" height=\"\(plotHeight)\" fill=\"none\" stroke=\"#333\"/>\n"
        svg += "<text x=\"\(left + plotWidth / 2)\" y=\"\(height - 20)\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        svg += "<text transform=\"translate(22 \(top + plotHeight / 2)) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        for (index, entry) in series.enumerated() {
            let color = palette[index % palette.count]
            let path = entry.points.map { "\(String(format: "%.1f", px($0.x))),\(String(format: "%.1f", py($0.y)))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(path)\"/>\n"
            if entry.points.count <= 40 {
                for point in entry.points {
                    svg += "<circle cx=\"\(String(format: "%.1f", px(point.x)))\" cy=\"\(String(format: "%.1f", py(point.y)))\" r=\"3\" fill=\"\(color)\"/>\n"
                }
            }
            let legendY = top + 10 + Double(index) * 20
            svg += "<line x1=\"\(left + plotWidth + 15)\" y1=\"\(legendY)\" x2=\"\(left + plotWidth + 40)\" y2=\"\(legendY)\" stroke=\"\(color)\" stroke-width=\"3\"/>\n"
            svg += "<text x=\"\(left + plotWidth + 46)\" y=\"\(legendY + 4)\">\(escape(entry.label))</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let magnitude = pow(10, floor(log10(value)))
        for step in [1.0, 2, 2.5, 5, 10] where step * magnitude >= value { return step * magnitude }
        return 10 * magnitude
    }

    static func format(_ value: Double) -> String {
        value >= 100 ? String(format: "%.0f", value) : value >= 10 ? String(format: "%.1f", value) : String(format: "%.2f", value)
    }
}
