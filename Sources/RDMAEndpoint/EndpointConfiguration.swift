/// How large an endpoint's pools are, chosen before the handshake (they are registered and
/// the receive buffers posted when the endpoint is created).
///
/// ```swift
/// var configuration = EndpointConfiguration()
/// configuration.eagerLimit = 4096              // larger messages go by RDMA WRITE
/// configuration.rendezvousSlotSize = 8 << 20   // up to 8 MiB per message
/// let endpoint = try MessageEndpoint(queuePair: queuePair, configuration: configuration)
/// ```
public struct EndpointConfiguration: Sendable, Equatable {
    /// Receive buffers posted for the peer: its credits. Each holds a header and `eagerLimit` bytes.
    public var receiveSlots = 256
    /// Send buffers (the same size as receive buffers); a send waits for one to be free.
    public var sendSlots = 256
    /// The largest payload sent by SEND; above it a message goes by RDMA WRITE into the
    /// peer's rendezvous region (the smaller of both sides' limits applies).
    public var eagerLimit = 4096
    /// Slots for large messages, each way: how many may be in flight at once.
    public var rendezvousSlots = 2
    /// The largest message, in bytes (0 disables rendezvous: messages up to `eagerLimit`).
    public var rendezvousSlotSize = 1 << 20
    /// Calls that may be outstanding at once (a power of two).
    public var maxOutstandingCalls = 16_384
    /// In async mode, a connection with waiters and no traffic for this long is probed
    /// (an RDMA WRITE of the control block): a dead peer then fails every waiter.
    public var livenessProbeInterval: Duration = .milliseconds(100)
    /// In async mode, how long the driver thread keeps polling after the last completion
    /// before it parks (on the completion channel, when the queues have one). Zero parks
    /// at once: where cores are few a spinning driver takes the CPU the resumed tasks
    /// need (on 2 cores, 100 µs of spin made one outstanding call 2.5× slower); raise
    /// it where cores are to spare.
    public var idleSpin: Duration = .zero
    /// One call in this many is timed for the `_call_duration` timer (1: every call). A
    /// timed call reads the clock twice; where `clock_gettime` is a system call (a VM
    /// whose clocksource is hpet or acpi_pm — the lab's TCG VM) that is two system calls
    /// per call, a third of the endpoint's overhead over a raw ping-pong there.
    public var timedCallInterval = 16
    /// Label of the swift-log logger and prefix of the swift-metrics names.
    public var label = "rdma.endpoint"

    public init() {}

    func validate() throws(EndpointError) {
        guard (1...EndpointHandshake.maxReceiveSlots).contains(receiveSlots) else {
            throw .invalidConfiguration(field: "receiveSlots", detail: "\(receiveSlots) outside 1…\(EndpointHandshake.maxReceiveSlots)")
        }
        guard (1...65_535).contains(sendSlots) else {
            throw .invalidConfiguration(field: "sendSlots", detail: "\(sendSlots) outside 1…65535")
        }
        guard (1...EndpointHandshake.maxEagerLimit).contains(eagerLimit) else {
            throw .invalidConfiguration(field: "eagerLimit", detail: "\(eagerLimit) outside 1…\(EndpointHandshake.maxEagerLimit)")
        }
        guard (0...EndpointHandshake.maxRendezvousSlots).contains(rendezvousSlots) else {
            throw .invalidConfiguration(field: "rendezvousSlots", detail: "\(rendezvousSlots) outside 0…\(EndpointHandshake.maxRendezvousSlots)")
        }
        guard rendezvousSlots == 0 || (1...EndpointHandshake.maxRendezvousSlotSize).contains(rendezvousSlotSize),
              rendezvousSlots * rendezvousSlotSize <= Int(UInt32.max) else {
            throw .invalidConfiguration(field: "rendezvousSlotSize", detail: "\(rendezvousSlotSize) outside 1…\(EndpointHandshake.maxRendezvousSlotSize) or the region exceeds 4 GiB")
        }
        guard idleSpin >= .zero, idleSpin <= .seconds(1) else {
            throw .invalidConfiguration(field: "idleSpin", detail: "\(idleSpin) outside 0…1 s")
        }
        guard (1...65_536).contains(timedCallInterval) else {
            throw .invalidConfiguration(field: "timedCallInterval", detail: "\(timedCallInterval) outside 1…65536")
        }
        guard maxOutstandingCalls >= 1, maxOutstandingCalls <= 1 << 20, maxOutstandingCalls & (maxOutstandingCalls - 1) == 0 else {
            throw .invalidConfiguration(field: "maxOutstandingCalls", detail: "\(maxOutstandingCalls) is not a power of two in 1…\(1 << 20)")
        }
    }
}
