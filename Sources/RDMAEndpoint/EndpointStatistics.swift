/// What an endpoint asked of the device so far: work requests posted, completions polled,
/// control writes. Divided by `calls`, it shows what a call costs in verbs calls — the
/// counts `rdma-pingpong` needs per round trip are one send posted, one receive, one
/// completion polled.
///
/// ```swift
/// let statistics = endpoint.statistics
/// print(Double(statistics.completionsPolled) / Double(statistics.calls))
/// ```
public struct EndpointStatistics: Sendable, Equatable {
    /// Calls that completed (their response arrived).
    public var calls: UInt64 = 0
    public var messagesSent: UInt64 = 0
    public var messagesReceived: UInt64 = 0
    /// Send-queue work requests posted (`ibv_post_send` calls: each posts one): SENDs,
    /// rendezvous RDMA WRITEs, control-block WRITEs.
    public var sendRequestsPosted: UInt64 = 0
    /// Of those, the ones that asked for a completion (`IBV_SEND_SIGNALED`).
    public var sendRequestsSignalled: UInt64 = 0
    /// SENDs whose bytes went inside the work request (`IBV_SEND_INLINE`).
    public var inlineSends: UInt64 = 0
    /// Control-block RDMA WRITEs (credit grants, rendezvous releases, probes, close).
    public var controlWrites: UInt64 = 0
    /// Receive work requests posted, and the `ibv_post_recv` calls that posted them.
    public var receivesPosted: UInt64 = 0
    public var receivePostCalls: UInt64 = 0
    /// Completions taken from the completion queues, and the `ibv_poll_cq` calls made.
    public var completionsPolled: UInt64 = 0
    public var completionQueuePolls: UInt64 = 0

    public init() {}
}
