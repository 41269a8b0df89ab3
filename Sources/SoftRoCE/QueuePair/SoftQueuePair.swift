import Congestion
import RoCEWire

/// The engine's side of a queue pair: its attributes, its send queue and receive ring, and
/// one state struct per protocol role — `requester` (what to transmit next), `completer`
/// (what the peer acknowledged, timers, retries) and `responder` (what the peer sends us).
/// Each role's file owns its struct and the functions that drive it; all run under the
/// device's lock.
package final class SoftQueuePair: @unchecked Sendable {
    package let number: UInt32
    let queuePairNumber: QueuePairNumber
    package let type: SoftQueuePairType
    package let domain: UInt32
    let sendCompletionQueue: SoftCompletionQueue
    let receiveCompletionQueue: SoftCompletionQueue
    let sharedReceiveQueue: SoftSharedReceiveQueue?
    let signalAll: Bool
    /// The UDP source port of this QP's packets, as kernel rxe chooses it:
    /// 0xC000 + hash_32(QPN, 14) (the kernel's golden-ratio hash), so ECMP spreads QPs.
    let udpSourcePort: UInt16

    @exclusivity(unchecked) package internal(set) var state: SoftQueuePairState = .reset
    @exclusivity(unchecked) var access: SoftAccess = []
    @exclusivity(unchecked) var qkey: UInt32 = 0
    @exclusivity(unchecked) var mtu = 1024
    /// The connected peer (RC): where requests and responses go, and the only source an RC
    /// packet is accepted from.
    @exclusivity(unchecked) var peer: WireEndpoint?
    @exclusivity(unchecked) var destinationQueuePair: QueuePairNumber = .generalServices
    var minRNRTimer: UInt8 = 0
    var timeoutCode: UInt8 = 14
    var retryCount: UInt8 = 7
    var rnrRetry: UInt8 = 7

    let sendQueue: SendQueue
    let receiveRing: ReceiveRing
    /// The scatter list of `responder.activeReceive` (copied out of its ring).
    let activeReceiveElements: UnsafeMutablePointer<SoftScatterGather>

    /// In the device's `activeQueuePairs`: it has sends posted and not yet completed.
    @exclusivity(unchecked) var isActive = false

    @exclusivity(unchecked) var requester = RequesterState()
    @exclusivity(unchecked) var completer = CompleterState()
    @exclusivity(unchecked) var responder = ResponderState()
    /// DCQCN's reaction point pacing this QP's requests (nil: unpaced, the default).
    @exclusivity(unchecked) var pacer: RatePacer?
    /// DCQCN's notification point for CE marks on this QP's packets (made on the first mark).
    @exclusivity(unchecked) var notificationPoint: NotificationPoint?

    init(number: QueuePairNumber, type: SoftQueuePairType, domain: UInt32, sendQueue: SoftCompletionQueue,
         receiveQueue: SoftCompletionQueue, sharedReceiveQueue: SoftSharedReceiveQueue?, signalAll: Bool,
         sendCapacity: Int, receiveCapacity: Int, maxScatterGather: Int, maxInline: Int) {
        self.number = number.rawValue
        queuePairNumber = number
        self.type = type
        self.domain = domain
        sendCompletionQueue = sendQueue
        receiveCompletionQueue = receiveQueue
        self.sharedReceiveQueue = sharedReceiveQueue
        self.signalAll = signalAll
        udpSourcePort = 0xC000 | UInt16((number.rawValue &* 0x61C8_8647) >> 18)
        self.sendQueue = SendQueue(capacity: sendCapacity, maxScatterGather: maxScatterGather, maxInline: maxInline)
        receiveRing = ReceiveRing(capacity: receiveCapacity, maxScatterGather: maxScatterGather)
        let elements = max(receiveRing.maxScatterGather, sharedReceiveQueue?.ring.maxScatterGather ?? 1)
        activeReceiveElements = .allocate(capacity: elements)
        activeReceiveElements.initialize(repeating: SoftScatterGather(address: 0, length: 0, lkey: 0), count: elements)
    }

    deinit { activeReceiveElements.deallocate() }

    package var sendCapacity: Int { sendQueue.capacity }
    package var maxScatterGather: Int { sendQueue.maxScatterGather }
    package var maxInline: Int { sendQueue.maxInline }
    package var outstandingSends: Int { sendQueue.outstanding }
    /// The ring this QP's receives come from.
    var receiveSource: ReceiveRing { sharedReceiveQueue?.ring ?? receiveRing }
    var isSending: Bool { state == .readyToSend || state == .sendQueueDrained }
}
