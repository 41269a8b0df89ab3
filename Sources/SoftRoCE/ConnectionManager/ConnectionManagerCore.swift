#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import RoCEWire

/// The connection manager's state, owned by its `SoftDevice` and only touched under the
/// device's lock: connections by id (= our communication ID), listeners, the event queue and
/// the eventfd that is readable while events wait.
final class ConnectionManagerCore {
    let configuration: SoftConnectionManagerConfiguration
    /// The read end of a non-blocking pipe holding one byte exactly while `events` is not
    /// empty (glibc's eventfd is not visible to Swift; a pipe polls the same).
    let eventDescriptor: Int32
    private let signalDescriptor: Int32
    private var signalled = false
    private(set) var events: [SoftConnectionEvent] = []
    private var eventHead = 0
    var connections: [UInt32: ConnectionRecord] = [:]
    var listeners: [UInt32: ListenerRecord] = [:]
    /// The earliest `deadline` of any connection (`.max`: none), so a round checks one number.
    private(set) var nextDeadline: UInt64 = .max
    let caGUID: UInt64
    private var random: UInt64
    private var nextIdentifier: UInt32
    private var nextPort: UInt16 = 0
    /// The PSN of the next MAD sent from QP 1.
    var generalServicesPSN: PacketSequenceNumber = 0
    private var closed = false

    init(configuration: SoftConnectionManagerConfiguration, address: SoftAddress, seed: UInt64) throws(SoftRoCEError) {
        self.configuration = configuration
        (eventDescriptor, signalDescriptor) = try SoftCompletionChannel.makePipe(for: "the connection manager's events")
        random = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed
        // A node GUID per address: stable across runs, distinct per device, never 0.
        let value = address.ipv6Value
        caGUID = 0x0253_4F46_0000_0000 ^ value.high ^ value.low.byteSwapped ^ value.low
        nextIdentifier = 1
        nextIdentifier = UInt32(truncatingIfNeeded: nextRandom())
        nextPort = UInt16(truncatingIfNeeded: nextRandom() % 16384) + 49152
    }

    func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(eventDescriptor)
        _ = Glibc.close(signalDescriptor)
        connections.removeAll()
        listeners.removeAll()
        events.removeAll()
        eventHead = 0
    }

    func nextRandom() -> UInt64 {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return random
    }

    /// A fresh id (also our communication ID): never 0, never one in use.
    func allocateIdentifier() -> UInt32 {
        repeat { nextIdentifier &+= 1 } while nextIdentifier == 0 || connections[nextIdentifier] != nil || listeners[nextIdentifier] != nil
        return nextIdentifier
    }

    /// An rdma_cm source port for an active connection (49152–65535, like an ephemeral port).
    func allocatePort() -> UInt16 {
        nextPort = nextPort >= 65535 ? 49152 : nextPort + 1
        return nextPort
    }

    func post(_ event: SoftConnectionEvent) {
        guard !closed else { return }
        if eventHead > 64 && eventHead * 2 > events.count {
            events.removeFirst(eventHead)
            eventHead = 0
        }
        events.append(event)
        if !signalled {
            var one: UInt8 = 1
            signalled = write(signalDescriptor, &one, 1) == 1
        }
    }

    func takeEvent() -> SoftConnectionEvent? {
        guard eventHead < events.count else { return nil }
        let event = events[eventHead]
        eventHead += 1
        if eventHead == events.count {
            events.removeAll(keepingCapacity: true)
            eventHead = 0
            var byte: UInt8 = 0
            if signalled && read(eventDescriptor, &byte, 1) == 1 { signalled = false }   // drained: no longer readable
        }
        return event
    }

    var pendingEvents: Int { events.count - eventHead }

    func recomputeDeadline() {
        nextDeadline = connections.values.lazy.map { $0.deadline == 0 ? UInt64.max : $0.deadline }.min() ?? .max
    }

    func arm(_ connection: ConnectionRecord, at deadline: UInt64) {
        connection.deadline = max(deadline, 1)
        if connection.deadline < nextDeadline { nextDeadline = connection.deadline }
    }

    /// A connection whose peer is `(peer, remoteCommunicationID)`: how duplicates and
    /// answers are matched when our own ID is not in the message.
    func connection(peer: SoftAddress, remoteCommunicationID: UInt32, remoteCAGUID: UInt64) -> ConnectionRecord? {
        connections.values.first { $0.peer == peer && $0.remoteCommunicationID == remoteCommunicationID && $0.remoteCAGUID == remoteCAGUID }
    }

    var responseNanoseconds: UInt64 { configuration.responseNanoseconds }
    var timewaitNanoseconds: UInt64 { configuration.timewaitNanoseconds ?? configuration.responseNanoseconds }
}
