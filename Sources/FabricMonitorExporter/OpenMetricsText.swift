/// The OpenMetrics 1.0.0 text exposition of what swift-prometheus renders in Prometheus' text
/// format 0.0.4. swift-prometheus 2.4 emits only 0.0.4; the two differ in few places:
/// - a counter family is named without `_total`, its samples with it;
/// - `# HELP` text also escapes `"` (as `\"`);
/// - the exposition ends with `# EOF`.
/// Gauges, histograms and summaries keep their lines; label escaping and numbers are the same.
/// Served when a scraper's Accept header prefers it, as Prometheus' does by default.
///
/// ```swift
/// let body = OpenMetricsText.convert(exporter.registry.emitToString())
/// // Content-Type: OpenMetricsText.contentType
/// ```
public enum OpenMetricsText {
    public static let contentType = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    static let mediaType = "application/openmetrics-text"

    /// Rewrites a whole 0.0.4 exposition. Family blocks come as swift-prometheus writes them:
    /// `# HELP`, then `# TYPE`, then the samples.
    public static func convert(_ prometheusText: String) -> String {
        var counterFamilies = Set<String>()
        for line in prometheusText.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let fields = line.split(separator: " ", maxSplits: 3)
            if fields.count == 4, fields[3] == "counter" { counterFamilies.insert(String(fields[2])) }
        }
        var output = ""
        output.reserveCapacity(prometheusText.utf8.count + 64)
        for line in prometheusText.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
                guard fields.count >= 3 else { continue }
                let name = String(fields[2])
                let family = counterFamilies.contains(name) ? counterFamilyName(name) : name
                var rest = fields.count == 4 ? String(fields[3]) : ""
                if line.hasPrefix("# HELP ") { rest = rest.replacingAll("\"", with: "\\\"") }
                output += "\(fields[0]) \(fields[1]) \(family)" + (rest.isEmpty ? "" : " \(rest)") + "\n"
            } else if line.hasPrefix("#") {
                continue   // other comments are not allowed in OpenMetrics
            } else {
                let nameEnd = line.firstIndex { $0 == "{" || $0 == " " } ?? line.endIndex
                let name = String(line[..<nameEnd])
                if counterFamilies.contains(name), !name.hasSuffix("_total") {
                    output += name + "_total" + line[nameEnd...] + "\n"
                } else {
                    output += line + "\n"
                }
            }
        }
        return output + "# EOF\n"
    }

    /// The family name of a counter whose samples are `name` (OpenMetrics: without `_total`).
    static func counterFamilyName(_ name: String) -> String {
        name.hasSuffix("_total") ? String(name.dropLast(6)) : name
    }

    /// Whether an Accept header asks for OpenMetrics at least as much as for the 0.0.4 text
    /// format (`text/plain`, `text/*`, `*/*`). Prometheus sends
    /// `application/openmetrics-text;version=1.0.0,…;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`.
    /// Any OpenMetrics version is answered with 1.0.0. No header: the text format.
    public static func isPreferred(byAccept accept: String) -> Bool {
        var openMetrics = 0.0, text = 0.0
        for range in accept.split(separator: ",").prefix(64) {
            let parts = range.split(separator: ";").map { $0.trimmingSpaces() }
            guard let type = parts.first?.lowercased() else { continue }
            var quality = 1.0
            for parameter in parts.dropFirst() {
                let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingSpaces() }
                guard pair.count == 2, pair[0].lowercased() == "q" else { continue }
                // A quality that is not a number in 0…1 disqualifies its range.
                if let value = Double(pair[1]), (0...1).contains(value) { quality = value } else { quality = 0 }
            }
            switch type {
            case mediaType: openMetrics = max(openMetrics, quality)
            case "text/plain", "text/*", "*/*": text = max(text, quality)
            default: break
            }
        }
        return openMetrics > 0 && openMetrics >= text
    }
}

private extension StringProtocol {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }

    func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self { if character == target { result += replacement } else { result.append(character) } }
        return result
    }
}
