import FabricMonitor
@testable import FabricMonitorExporter
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Testing

func report(_ milliseconds: Int64, _ counters: [String: UInt64], previous: CounterSnapshot? = nil, gauges: [String: Double] = [:]) -> MonitorReport {
    let snapshot = CounterSnapshot(time: .milliseconds(milliseconds),
                                   ports: [PortCounters(key: PortKey(node: "h1", device: "mlx5_0", port: 1), kind: .rdma, counters: counters, gauges: gauges)])
    return MonitorReport(snapshot: snapshot, intervals: previous.map { PortInterval.between($0, snapshot) } ?? [],
                         stormEvents: [], stormingQueues: [], deadlocks: [])
}

/// The value of one series line in the text format.
func value(of series: String, in text: String) -> Double? {
    text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last!) }
}

/// An exporter fed two polls of one port's CNP, pause and storm counters, one second apart.
func exporterAfterTwoPolls() -> PrometheusExporter {
    let exporter = PrometheusExporter()
    let first = report(0, ["np_cnp_sent": 10, "tx_prio3_pause": 5, "tx_prio3_pause_duration": 0, "tx_pause_storm_error_events": 0])
    exporter.update(with: first)
    exporter.update(with: report(1000, ["np_cnp_sent": 30, "tx_prio3_pause": 9, "tx_prio3_pause_duration": 500_000, "tx_pause_storm_error_events": 1],
                                 previous: first.snapshot))
    return exporter
}

@Suite struct PrometheusExporterTests {
    @Test func rawCountersPauseFamiliesAndHealthUseExistingExporterNames() {
        let exporter = exporterAfterTwoPolls()
        let text = exporter.registry.emitToString()
        let labels = #"node="h1",device="mlx5_0",port="1""#
        #expect(text.contains("# TYPE rdma_np_cnp_sent_total counter"))
        #expect(value(of: "rdma_np_cnp_sent_total{\(labels)}", in: text) == 30)
        #expect(value(of: #"rdma_roce_pfc_pause_frames_total{\#(labels),direction="tx",priority="3"}"#, in: text) == 9)
        #expect(value(of: #"rdma_roce_pfc_pause_duration_total{\#(labels),direction="tx",priority="3"}"#, in: text) == 500_000)
        #expect(value(of: #"rdma_netdev_pause_storm_events_total{\#(labels),severity="error"}"#, in: text) == 1)
        #expect(value(of: "rdma_monitor_cnp_sent_per_second{\(labels)}", in: text) == 20)
        #expect(value(of: #"rdma_monitor_pause_ratio{\#(labels),direction="tx",priority="3"}"#, in: text) == 0.5)
        #expect(value(of: "rdma_monitor_polls_total", in: text) == 2)
        #expect(value(of: "rdma_monitor_pfc_deadlocks", in: text) == 0)
    }

    @Test func anExportedCounterNeverGoesBackwardsWhenTheDeviceResets() {
        let exporter = PrometheusExporter()
        let series = #"rdma_sent_pkts_total{node="h1",device="mlx5_0",port="1"}"#
        var previous: CounterSnapshot?
        var exported: [Double] = []
        for (time, raw) in [(0, 100), (1000, 150), (2000, 20), (3000, 25)] as [(Int64, UInt64)] {
            let next = report(time, ["sent_pkts": raw], previous: previous)
            exporter.update(with: next)
            previous = next.snapshot
            exported.append(value(of: series, in: exporter.registry.emitToString()) ?? -1)
        }
        #expect(exported == [100, 150, 170, 175])   // the reset adds the new value, as Prometheus' rate() expects
    }

    @Test func stormAndDeadlockGaugesClearWhenTheConditionEnds() {
        let exporter = PrometheusExporter()
        let queue = PFCStormWatchdog.Queue(port: PortKey(node: "S1", device: "Ethernet8"), priority: 3, role: .switchQueue)
        var storming = report(0, [:])
        storming.stormingQueues = [queue]
        exporter.update(with: storming)
        let series = #"rdma_monitor_pfc_storm{node="S1",device="Ethernet8",port="0",priority="3",role="switchQueue"}"#
        #expect(value(of: series, in: exporter.registry.emitToString()) == 1)
        exporter.update(with: report(100, [:]))
        #expect(value(of: series, in: exporter.registry.emitToString()) == 0)
    }

    @Test func metricNamesAreSanitised() {
        #expect(PrometheusExporter.metricName("rx_prio3_pause") == "rx_prio3_pause")
        #expect(PrometheusExporter.metricName("rx-vport.unicast bytes") == "rx_vport_unicast_bytes")
    }
}

@Suite(.serialized) struct MetricsHTTPServerTests {
    func get(_ url: String, accept: String? = nil) throws -> (status: Int, contentType: String?, body: String) {
        final class Box: @unchecked Sendable { var result: (Int, String?, String)?; var error: (any Error)? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 5
        if let accept { request.setValue(accept, forHTTPHeaderField: "Accept") }
        URLSession.shared.dataTask(with: request) { data, response, error in
            let http = response as? HTTPURLResponse
            box.result = (http?.statusCode ?? -1, http?.value(forHTTPHeaderField: "Content-Type"), data.map { String(decoding: $0, as: UTF8.self) } ?? "")
            box.error = error
            done.signal()
        }.resume()
        #expect(done.wait(timeout: .now() + 10) == .success)
        if let error = box.error { throw error }
        return box.result!
    }

    @Test func servesTheTextFormatOverRealHTTPOnLoopback() throws {
        let exporter = PrometheusExporter()
        exporter.update(with: report(0, ["sent_pkts": 42]))
        let server = try MetricsHTTPServer.start(host: "127.0.0.1", port: 0, registry: exporter.registry)
        defer { server.close() }
        #expect(server.port > 0)
        let metrics = try get("http://127.0.0.1:\(server.port)/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.contentType == "text/plain; version=0.0.4; charset=utf-8")
        #expect(value(of: #"rdma_sent_pkts_total{node="h1",device="mlx5_0",port="1"}"#, in: metrics.body) == 42)
        #expect(try get("http://127.0.0.1:\(server.port)/nothing").status == 404)
    }

    /// Prometheus' own default scrape Accept header (2.42) gets OpenMetrics.
    @Test func servesOpenMetricsWhenTheScraperPrefersIt() throws {
        let exporter = PrometheusExporter()
        exporter.update(with: report(0, ["sent_pkts": 42]))
        let server = try MetricsHTTPServer.start(host: "127.0.0.1", port: 0, registry: exporter.registry)
        defer { server.close() }
        let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        let metrics = try get("http://127.0.0.1:\(server.port)/metrics", accept: accept)
        #expect(metrics.status == 200)
        #expect(metrics.contentType == "application/openmetrics-text; version=1.0.0; charset=utf-8")
        #expect(metrics.body.hasSuffix("\n# EOF\n"))
        #expect(metrics.body.contains("# TYPE rdma_sent_pkts counter\n"))
        #expect(value(of: #"rdma_sent_pkts_total{node="h1",device="mlx5_0",port="1"}"#, in: metrics.body) == 42)
        let plain = try get("http://127.0.0.1:\(server.port)/metrics", accept: "text/plain;version=0.0.4")
        #expect(plain.contentType == "text/plain; version=0.0.4; charset=utf-8")
        #expect(!plain.body.contains("# EOF"))
    }

    @Test func aPortInUseIsAClearError() throws {
        let first = try MetricsHTTPServer.start(host: "127.0.0.1", port: 0, registry: PrometheusExporter().registry)
        defer { first.close() }
        do {
            let second = try MetricsHTTPServer.start(host: "127.0.0.1", port: first.port, registry: PrometheusExporter().registry)
            second.close()
            Issue.record("a second server bound the same port")
        } catch {
            #expect(error.subject == "listen on 127.0.0.1:\(first.port)")
            #expect(error.problem.hasPrefix("the port is in use"))
        }
    }
}

@Suite struct OpenMetricsTextTests {
    @Test func countersLoseTotalInTheFamilyNameHelpEscapesQuotesAndTheTextEndsWithEOF() {
        let text = """
            # HELP rdma_sent_pkts_total Packets "sent" (a \\ b)
            # TYPE rdma_sent_pkts_total counter
            rdma_sent_pkts_total{node="h1",device="a\\"b"} 42
            # HELP requests Requests served
            # TYPE requests counter
            requests 7
            # HELP rdma_monitor_pfc_deadlocks PFC deadlock cycles in progress
            # TYPE rdma_monitor_pfc_deadlocks gauge
            rdma_monitor_pfc_deadlocks 0.0

            """
        #expect(OpenMetricsText.convert(text) == """
            # HELP rdma_sent_pkts Packets \\"sent\\" (a \\ b)
            # TYPE rdma_sent_pkts counter
            rdma_sent_pkts_total{node="h1",device="a\\"b"} 42
            # HELP requests Requests served
            # TYPE requests counter
            requests_total 7
            # HELP rdma_monitor_pfc_deadlocks PFC deadlock cycles in progress
            # TYPE rdma_monitor_pfc_deadlocks gauge
            rdma_monitor_pfc_deadlocks 0.0
            # EOF

            """)
        #expect(OpenMetricsText.convert("") == "# EOF\n")
    }

    /// Every family the exporter writes: counter families without `_total`, their samples
    /// with it, no family name used twice.
    @Test func theExportersWholeOutputFollowsTheCounterNamingRule() {
        let exporter = exporterAfterTwoPolls()
        let lines = OpenMetricsText.convert(exporter.registry.emitToString()).split(separator: "\n")
        var families: [String: String] = [:]
        var current: (name: String, type: String)?
        for line in lines where line != "# EOF" {
            let fields = line.split(separator: " ")
            if line.hasPrefix("# TYPE ") {
                #expect(families.updateValue(String(fields[3]), forKey: String(fields[2])) == nil, "family \(fields[2]) twice")
                current = (String(fields[2]), String(fields[3]))
                if fields[3] == "counter" { #expect(!fields[2].hasSuffix("_total")) }
            } else if !line.hasPrefix("#"), let current {
                let sample = String(fields[0].prefix { $0 != "{" })
                #expect(sample == (current.type == "counter" ? current.name + "_total" : current.name))
            }
        }
        #expect(families["rdma_np_cnp_sent"] == "counter")
        #expect(families["rdma_monitor_pfc_deadlocks"] == "gauge")
        #expect(lines.last == "# EOF")
    }

    @Test func negotiationFollowsTheAcceptHeadersQualities() {
        #expect(OpenMetricsText.isPreferred(byAccept: "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"))
        #expect(OpenMetricsText.isPreferred(byAccept: "application/openmetrics-text; version=0.0.1"))
        #expect(!OpenMetricsText.isPreferred(byAccept: ""))
        #expect(!OpenMetricsText.isPreferred(byAccept: "*/*"))
        #expect(!OpenMetricsText.isPreferred(byAccept: "text/plain;version=0.0.4"))
        #expect(!OpenMetricsText.isPreferred(byAccept: "application/openmetrics-text;q=0.4,text/plain;q=0.5"))
        #expect(!OpenMetricsText.isPreferred(byAccept: "application/openmetrics-text;q=0"))
        #expect(!OpenMetricsText.isPreferred(byAccept: "application/openmetrics-text;q=nan,text/plain"))
        #expect(OpenMetricsText.isPreferred(byAccept: "text/plain;q=0.2, application/OpenMetrics-Text ;q=0.3"))
    }
}

@Suite struct PrometheusQueryTests {
    @Test func refusesWhatIsNotAnHTTPServerAndNamesTheStatus() throws {
        #expect(throws: MonitorError("Prometheus URL ftp://127.0.0.1:1", "expected http://HOST:PORT")) {
            _ = try PrometheusQuery(baseURL: "ftp://127.0.0.1:1").instant("up")
        }
        // Our own metrics server answers 404 on Prometheus' API path.
        let server = try MetricsHTTPServer.start(host: "127.0.0.1", port: 0, registry: PrometheusExporter().registry)
        defer { server.close() }
        #expect(throws: MonitorError("Prometheus at http://127.0.0.1:\(server.port)/", "HTTP 404")) {
            _ = try PrometheusQuery(baseURL: "http://127.0.0.1:\(server.port)/").instant("rdma_monitor_pause_active")
        }
    }
}

@Suite struct AlertLogTests {
    final class Recorder: LogHandler, @unchecked Sendable {
        var messages: [(Logger.Level, String)] = []
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { messages.append((event.level, event.message.description)) }
    }

    @Test func aDeadlockIsReportedOnceWhenItAppearsAndOnceWhenItClears() {
        let recorder = Recorder()
        var alerts = AlertLog(logger: Logger(label: "test") { _ in recorder })
        let deadlock = Deadlock(priority: 3, buffers: [BufferReference(node: "S2", port: "S1", upstream: "S1", priority: 3)],
                                breakPoint: .init(node: "S2", fromNode: "S1", ingressPort: "S1", toNode: "S3", egressPort: "S3", priority: 3, reason: "test"),
                                componentSize: 3, listComplete: true)
        var stuck = report(0, [:])
        stuck.deadlocks = [deadlock]
        alerts.log(stuck)
        alerts.log(stuck)
        alerts.log(report(100, [:]))
        #expect(recorder.messages.map(\.0) == [.critical, .notice])
        #expect(recorder.messages.first?.1.hasPrefix("PFC deadlock, priority 3: S2/S1←S1 prio 3") == true)
    }
}
