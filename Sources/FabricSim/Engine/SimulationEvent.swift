/// What travels on a link: a data packet of a flow or a CNP going back to its sender.
/// Small and trivially copyable, so queues and events hold it inline.
struct Packet {
    enum Kind: UInt8 { case data, cnp }

    var flow: Int32
    var sizeBytes: Int32
    /// The port of the current switch the packet came in through, for PFC accounting.
    var ingressPort: Int32 = -1
    /// Index, in the flow's forward (data) or reverse (CNP) port list, of the next egress.
    var hop: UInt16
    var kind: Kind
    var congestionExperienced = false

    /// A copy a switch flooded because it did not know the destination's port: only the
    /// destination host accepts it (a routed switch port and other NICs discard it). Marked
    /// by `hop` (a copy goes no further), which keeps the packet at 16 bytes.
    var flooded: Bool {
        get { hop == .max }
        set { if newValue { hop = .max } }
    }
}

/// One thing that happens at one instant. Ports and flows are indices into the simulator's
/// arrays, so an event is a plain value — no allocation per event.
enum SimulationEvent {
    /// The port finished serialising its current packet and may start the next.
    case transmitComplete(port: Int32)
    /// The last bit of `packet` reached the node that owns `port` (the port it came in by).
    case arrival(port: Int32, packet: Packet)
    /// A paced host port may have a flow allowed to send again.
    case hostWakeup(port: Int32)
    /// A PAUSE (`pause == true`) or RESUME reached `port`, the upstream sender it stops.
    case priorityFlowControl(port: Int32, pause: Bool)
    /// The DCQCN rate-increase timer of `flow` may have expired.
    case reactionPointTimer(flow: Int32)
    /// The switch PFC watchdog looks at `port`'s queue one detection window after a PAUSE
    /// stopped it.
    case watchdogCheck(port: Int32)
    /// One restoration window after a RESUME reached a queue the watchdog is dropping for.
    case watchdogRestore(port: Int32)
    case flowStart(flow: Int32)
    case flowStop(flow: Int32)
    case sample
}

/// An event with its time and a sequence number that orders events of the same instant
/// first-scheduled-first, which keeps runs deterministic.
struct ScheduledEvent {
    var time: Int64
    var sequence: UInt64
    var event: SimulationEvent

    @inline(__always)
    func precedes(_ other: ScheduledEvent) -> Bool {
        time < other.time || (time == other.time && sequence < other.sequence)
    }
}
