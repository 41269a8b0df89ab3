import Metrics

/// The endpoint's swift-metrics instruments, made once at creation (so recording allocates
/// nothing in the data path with a backend that does not allocate per record).
///
/// Names, with the configuration's label (default `rdma.endpoint`) as prefix:
/// `_calls` (completed calls), `_messages_sent`, `_messages_received`, `_bytes_sent`,
/// `_bytes_received`, `_credit_stalls` (sends that waited for credits or buffers),
/// `_call_duration` (a Timer: request to response, nanoseconds, of one call in
/// `EndpointConfiguration.timedCallInterval`), `_protocol_violations`.
struct EndpointMetrics {
    let calls: Counter
    let messagesSent: Counter
    let messagesReceived: Counter
    let bytesSent: Counter
    let bytesReceived: Counter
    let creditStalls: Counter
    let callDuration: Metrics.Timer
    let protocolViolations: Counter

    /// `factory` nil: the process's bootstrapped `MetricsSystem`.
    init(label: String, factory: (any MetricsFactory)?) {
        let factory = factory ?? MetricsSystem.factory
        calls = Counter(label: "\(label)_calls", factory: factory)
        messagesSent = Counter(label: "\(label)_messages_sent", factory: factory)
        messagesReceived = Counter(label: "\(label)_messages_received", factory: factory)
        bytesSent = Counter(label: "\(label)_bytes_sent", factory: factory)
        bytesReceived = Counter(label: "\(label)_bytes_received", factory: factory)
        creditStalls = Counter(label: "\(label)_credit_stalls", factory: factory)
        callDuration = Metrics.Timer(label: "\(label)_call_duration", factory: factory)
        protocolViolations = Counter(label: "\(label)_protocol_violations", factory: factory)
    }
}
