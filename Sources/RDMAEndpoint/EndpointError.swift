import RDMA

/// Why an endpoint operation failed. A protocol violation by the peer names the field that
/// was wrong; after it (and after any completion error or a close) the connection is closed
/// and every waiter fails with the same error.
///
/// ```swift
/// do { _ = try await endpoint.call(request, timeout: .milliseconds(50)) }
/// catch .timedOut { retry() }
/// catch { log.error("connection lost: \(error)") }
/// ```
public enum EndpointError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The peer broke the protocol; the connection was closed. `field` names what was wrong.
    case protocolViolation(field: String, detail: String)
    /// The peer closed the connection (its `close()`), with its reason code.
    case peerClosed(reason: UInt32)
    /// A work request failed: the queue pair is in the error state (peer gone, network
    /// down, a key refused). `operation` is what the request was.
    case completionFailed(operation: String, status: WorkCompletion.Status)
    /// The connection manager reported the end of the connection: the peer disconnected
    /// (or its process died, and its kernel did), the device went away. The error names
    /// the rdma_cm event.
    case disconnected(RDMAError)
    /// This endpoint was closed locally.
    case closed
    /// The call got no response within its timeout.
    case timedOut
    /// The waiting task was cancelled.
    case cancelled
    /// The message is larger than both the eager threshold and the peer's rendezvous slots.
    case messageTooLarge(length: Int, limit: Int)
    /// A configuration or handshake value is outside the limits; `field` names it.
    case invalidConfiguration(field: String, detail: String)
    /// The RDMA layer refused a call (registration, posting).
    case rdma(RDMAError)

    public var description: String {
        switch self {
        case .protocolViolation(let field, let detail): "peer protocol violation in \(field): \(detail) — connection closed"
        case .peerClosed(let reason): "the peer closed the connection (reason \(reason))"
        case .completionFailed(let operation, let status):
            "\(operation) failed with \(status.verbsName) — \(status.explanation)"
        case .disconnected(let reason): "the connection ended: \(reason)"
        case .closed: "the endpoint is closed"
        case .timedOut: "no response within the call's timeout"
        case .cancelled: "the waiting task was cancelled"
        case .messageTooLarge(let length, let limit): "a \(length)-byte message exceeds the limit of \(limit) bytes (the peer's rendezvous slot size)"
        case .invalidConfiguration(let field, let detail): "invalid \(field): \(detail)"
        case .rdma(let error): "\(error)"
        }
    }

    /// True for the errors after which the connection is unusable.
    public var closesConnection: Bool {
        switch self {
        case .protocolViolation, .peerClosed, .completionFailed, .disconnected, .closed, .rdma: true
        case .timedOut, .cancelled, .messageTooLarge, .invalidConfiguration: false
        }
    }
}
