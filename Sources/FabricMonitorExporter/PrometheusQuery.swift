import FabricMonitor
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Instant queries against a Prometheus server's HTTP API (`GET /api/v1/query`), for the
/// fleet view. The answer is returned as is; ``FleetView`` validates it.
///
/// ```swift
/// let body = try PrometheusQuery(baseURL: "http://127.0.0.1:9090").instant("rdma_monitor_pause_active")
/// let flags = try FleetView.pauseFlags(prometheusResponse: body)
/// ```
public struct PrometheusQuery: Sendable {
    public let baseURL: String
    /// The request's bound; the wait for an answer is bounded a little above it.
    public var timeoutSeconds: Double = 10

    public init(baseURL: String) { self.baseURL = baseURL }

    public func instant(_ expression: String) throws(MonitorError) -> Data {
        let base = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        var components = URLComponents(string: "\(base)/api/v1/query")
        components?.queryItems = [URLQueryItem(name: "query", value: expression)]
        guard let url = components?.url, url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw MonitorError("Prometheus URL \(baseURL)", "expected http://HOST:PORT")
        }
        var request = URLRequest(url: url)
        request.timeoutInterval = timeoutSeconds
        final class Outcome: @unchecked Sendable { var data: Data?; var error: String? }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, response, error in
            if let error {
                outcome.error = error.localizedDescription
            } else if let http = response as? HTTPURLResponse, http.statusCode != 200 {
                outcome.error = "HTTP \(http.statusCode)"
            } else {
                outcome.data = data
            }
            done.signal()
        }.resume()
        guard done.wait(timeout: .now() + timeoutSeconds + 5) == .success else {
            throw MonitorError("Prometheus at \(baseURL)", "no answer within \(Int(timeoutSeconds + 5)) s")
        }
        if let error = outcome.error { throw MonitorError("Prometheus at \(baseURL)", error) }
        return outcome.data ?? Data()
    }
}
