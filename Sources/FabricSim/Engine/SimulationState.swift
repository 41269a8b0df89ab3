import Congestion

/// One direction of a link as the simulator sees it: the transmitter at `node` and, for a
/// switch, the accounting of bytes that came in through the same link.
struct PortState {
    let node: Int32
    /// The port at the other end of the link: where this port's packets arrive, and the
    /// transmitter a PAUSE from this port stops.
    let peer: Int32
    let isSwitchPort: Bool
    let rateBitsPerSecond: Int64
    let propagationDelay: Int64

    /// Lossless data class, FIFO, stopped by PAUSE.
    var dataQueue = RingBuffer(filler: Packet(flow: 0, sizeBytes: 0, hop: 0, kind: .data))
    var dataQueueBytes = 0
    /// CNPs: strict priority over data and never paused.
    var controlQueue = RingBuffer(filler: Packet(flow: 0, sizeBytes: 0, hop: 0, kind: .cnp), capacity: 4)
    var transmitting = false
    var pausedByPeer = false
    var pausedSince: Int64 = 0
    var pausedTotal: Int64 = 0
    var pauseFramesReceived = 0
    /// Host ports: the pending pacing wake-up, `.max` when none.
    var wakeupAt = Int64.max
    var roundRobinNext = 0
    var egressQueue = QueueOccupancyHistogram()
    var dataBytesTransmitted: Int64 = 0
    var packetsMarked = 0

    /// Switch ports: bytes in this switch's buffers that arrived through this port.
    var ingressBytes = 0
    var ingressMaxBytes = 0
    /// A PAUSE is in force upstream (sent, no RESUME since).
    var pauseAsserted = false
    var pauseFramesSent = 0
    /// Lossless packets that came in through this port for a destination the switch has no
    /// MAC entry for, dropped because flooding them is off.
    var unknownDestinationDrops = 0

    /// Copies of packets this transmitter sent because its switch flooded them.
    var floodedCopiesSent = 0
    /// Switch PFC watchdog: this queue is in a storm and drops instead of waiting.
    var watchdogDropping = false
    var resumedSince: Int64 = 0
    var watchdogDetections = 0
    var watchdogRestorations = 0
    var watchdogDroppedPackets = 0
    var watchdogFirstDetection: Int64?
    var watchdogLastRestoration: Int64?

    init(node: Int32, peer: Int32, isSwitchPort: Bool, rateBitsPerSecond: Int64, propagationDelay: Int64) {
        self.node = node
        self.peer = peer
        self.isSwitchPort = isSwitchPort
        self.rateBitsPerSecond = rateBitsPerSecond
        self.propagationDelay = propagationDelay
    }

    /// Time on the wire of `bytes`, rounded up to the nanosecond.
    @inline(__always)
    func serializationTime(bytes: Int32) -> Int64 {
        (Int64(bytes) * 8_000_000_000 + rateBitsPerSecond - 1) / rateBitsPerSecond
    }
}

/// A flow's sender (reaction point, pacing) and receiver (notification point) state.
struct FlowState {
    let firstPort: Int32
    /// Offsets of this flow's egress ports in the simulator's flattened route arrays.
    let forwardOffset: Int
    let reverseOffset: Int
    let lineRateBitsPerSecond: Double
    var reactionPoint: ReactionPoint
    var notificationPoint: NotificationPoint
    /// Started, not stopped, and with bytes left to send.
    var sending = false
    var nextEligible: Int64 = 0
    /// When the last packet started and its size: the pacer recomputes the wait from them
    /// when the rate changes.
    var lastPacketStart: Int64 = 0
    var lastPacketBytes: Int32 = 0
    var remainingBytes: Int64
    var bytesSent: Int64 = 0
    var bytesReceived: Int64 = 0
    var bytesReceivedThisSample: Int64 = 0
    var completion: Int64?
    var cnpsReceived = 0
    /// The route position of the first switch that has no MAC entry for the destination
    /// (where `packet.hop` equals it, that switch floods or drops); -1: none.
    let unknownDestinationHop: Int
    /// When the pending reaction-point timer event fires; `.max` when none is pending.
    var timerEventAt = Int64.max
}
