import Foundation

/// A line chart as a standalone SVG document: axes with round-number ticks, grid, labelled
/// horizontal reference lines, and a legend. Written by hand so that the plots need nothing
/// but a browser to read.
///
/// ```swift
/// let chart = SVGLineChart(
///     title: "Queue depth", xLabel: "time (ms)", yLabel: "KB",
///     series: [.init(name: "S1->R", x: [0, 1, 2], y: [0, 120, 80])],
///     referenceLines: [.init(label: "Kmin", y: 100)]
/// )
/// let svg = chart.render()
/// ```
public struct SVGLineChart: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var x: [Double]
        /// NaN leaves a gap.
        public var y: [Double]
        public var dashed: Bool
        public init(name: String, x: [Double], y: [Double], dashed: Bool = false) {
            self.name = name
            self.x = x
            self.y = y
            self.dashed = dashed
        }
    }

    public struct ReferenceLine: Sendable {
        public var label: String
        public var y: Double
        public init(label: String, y: Double) {
            self.label = label
            self.y = y
        }
    }

    public var title: String
    public var subtitle: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var referenceLines: [ReferenceLine]
    /// Nil: from the data (and the reference lines).
    public var yMaximum: Double?
    public var width = 960.0
    public var height = 540.0

    public init(
        title: String, subtitle: String = "", xLabel: String, yLabel: String,
        series: [Series], referenceLines: [ReferenceLine] = [], yMaximum: Double? = nil
    ) {
        self.title = title
        self.subtitle = subtitle
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.referenceLines = referenceLines
        self.yMaximum = yMaximum
    }

    /// Tableau's 10 and their light partners: distinguishable, and still readable when a
    /// chart has 16 flows.
    static let palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
        "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
    ]
    private static let maximumLegendEntries = 20
    /// Points per series beyond which it is thinned to the minimum and maximum of each bucket.
    private static let maximumBuckets = 1200

    public func render() -> String {
        let left = 80.0, right = 210.0, top = subtitle.isEmpty ? 50.0 : 66.0, bottom = 60.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let xs = series.flatMap(\.x).filter(\.isFinite)
        let xMin = xs.min() ?? 0
        let xMax = max(xs.max() ?? 1, xMin + 1e-9)
        let dataMax = (series.flatMap(\.y) + referenceLines.map(\.y)).filter(\.isFinite).max() ?? 1
        let yTicks = Self.ticks(upTo: yMaximum ?? max(dataMax * 1.05, 1e-9))
        let yMax = yMaximum ?? yTicks.last!
        let xTicks = Self.ticks(from: xMin, upTo: xMax)
        func px(_ x: Double) -> Double { left + (x - xMin) / (xMax - xMin) * plotWidth }
        func py(_ y: Double) -> Double { top + plotHeight - min(max(y, 0), yMax) / yMax * plotHeight }

        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(left)" y="24" font-size="16" font-weight="bold">\(Self.escape(title))</text>\n
        """
        if !subtitle.isEmpty { svg += "<text x=\"\(left)\" y=\"44\" fill=\"#555\">\(Self.escape(subtitle))</text>\n" }
        for tick in yTicks where tick <= yMax {
            let y = Self.format(py(tick))
            svg += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(Self.format(left + plotWidth))\" y2=\"\(y)\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(left - 8)\" y=\"\(y)\" text-anchor=\"end\" dominant-baseline=\"middle\">\(Self.label(tick))</text>\n"
        }
        for tick in xTicks where tick >= xMin && tick <= xMax {
            let x = Self.format(px(tick))
            svg += "<line x1=\"\(x)\" y1=\"\(top)\" x2=\"\(x)\" y2=\"\(Self.format(top + plotHeight))\" stroke=\"#f0f0f0\"/>\n"
            svg += "<text x=\"\(x)\" y=\"\(Self.format(top + plotHeight + 18))\" text-anchor=\"middle\">\(Self.label(tick))</text>\n"
        }
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(Self.format(plotWidth))\" height=\"\(Self.format(plotHeight))\" fill=\"none\" stroke=\"#333\"/>\n"
        svg += "<text x=\"\(Self.format(left + plotWidth / 2))\" y=\"\(Self.format(height - 16))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
        let yLabelY = Self.format(top + plotHeight / 2)
        svg += "<text x=\"20\" y=\"\(yLabelY)\" text-anchor=\"middle\" transform=\"rotate(-90 20 \(yLabelY))\">\(Self.escape(yLabel))</text>\n"

        // Labels sit just above their line, pushed up where two lines are too close to label
        // both in place (upwards, because the bottom of the plot is the axis).
        var highestLabel = Double.infinity
        for line in referenceLines.filter({ $0.y <= yMax }).sorted(by: { $0.y < $1.y }) {
            let y = Self.format(py(line.y))
            let labelY = min(py(line.y) - 4, highestLabel - 14)
            highestLabel = labelY
            svg += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(Self.format(left + plotWidth))\" y2=\"\(y)\" stroke=\"#000\" stroke-width=\"1\" stroke-dasharray=\"2,4\"/>\n"
            svg += "<text x=\"\(Self.format(left + plotWidth - 4))\" y=\"\(Self.format(labelY))\" text-anchor=\"end\" fill=\"#000\">\(Self.escape(line.label))</text>\n"
        }

        for (index, entry) in series.enumerated() {
            let color = Self.palette[index % Self.palette.count]
            let dash = entry.dashed ? " stroke-dasharray=\"6,3\"" : ""
            for run in Self.thinnedRuns(x: entry.x, y: entry.y) where !run.isEmpty {
                let points = run.map { "\(Self.format(px($0.x))),\(Self.format(py($0.y)))" }.joined(separator: " ")
                svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.4\"\(dash) points=\"\(points)\"/>\n"
            }
        }

        let legendX = left + plotWidth + 16
        let shown = series.count > Self.maximumLegendEntries ? Self.maximumLegendEntries - 1 : series.count
        for (index, entry) in series.prefix(shown).enumerated() {
            let y = top + 8 + Double(index) * 20
            let color = Self.palette[index % Self.palette.count]
            let dash = entry.dashed ? " stroke-dasharray=\"6,3\"" : ""
            svg += "<line x1=\"\(Self.format(legendX))\" y1=\"\(Self.format(y))\" x2=\"\(Self.format(legendX + 24))\" y2=\"\(Self.format(y))\" stroke=\"\(color)\" stroke-width=\"2.5\"\(dash)/>\n"
            svg += "<text x=\"\(Self.format(legendX + 30))\" y=\"\(Self.format(y))\" dominant-baseline=\"middle\">\(Self.escape(entry.name))</text>\n"
        }
        if shown < series.count {
            let y = top + 8 + Double(shown) * 20
            svg += "<text x=\"\(Self.format(legendX))\" y=\"\(Self.format(y))\" dominant-baseline=\"middle\">… and \(series.count - shown) more</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    /// Splits at NaN, and keeps each bucket's minimum and maximum in time order when a run
    /// has more points than the chart has room for.
    static func thinnedRuns(x: [Double], y: [Double]) -> [[(x: Double, y: Double)]] {
        let count = min(x.count, y.count)
        let bucketSize = max(1, (count + maximumBuckets - 1) / maximumBuckets)
        var runs: [[(x: Double, y: Double)]] = [[]]
        var bucketStart = 0
        while bucketStart < count {
            let bucketEnd = min(count, bucketStart + bucketSize)
            var low: Int?
            var high: Int?
            var gap = false
            for index in bucketStart..<bucketEnd {
                guard y[index].isFinite else { gap = true; continue }
                if low == nil || y[index] < y[low!] { low = index }
                if high == nil || y[index] > y[high!] { high = index }
            }
            if gap && !runs[runs.count - 1].isEmpty { runs.append([]) }
            if let low, let high {
                for index in Set([low, high]).sorted() { runs[runs.count - 1].append((x[index], y[index])) }
            }
            bucketStart = bucketEnd
        }
        return runs
    }

    /// About five round steps (1, 2 or 5 times a power of ten) from zero up to at least `maximum`.
    static func ticks(from minimum: Double = 0, upTo maximum: Double) -> [Double] {
        let span = max(maximum - minimum, 1e-12)
        let rough = span / 5
        let magnitude = pow(10, floor(log10(rough)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
        let first = ceil(minimum / step - 1e-9) * step
        var ticks: [Double] = []
        var tick = first
        while tick < maximum + step * 0.999 {
            ticks.append(tick)
            if tick >= maximum - 1e-9 * step { break }
            tick += step
        }
        return ticks
    }

    static func label(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e7 { return String(Int(value)) }
        return String(format: "%g", (value * 1e6).rounded() / 1e6)
    }

    static func format(_ value: Double) -> String { String(format: "%.1f", value) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
