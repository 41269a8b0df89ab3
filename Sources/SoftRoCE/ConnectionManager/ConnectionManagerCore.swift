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
    /// Where events of ids made without a queue of their own go.
    let defaultQueue: SoftConnectionEventQueue
    /// Ids made by `createIdentifier` that neither listen nor connect yet (rdma_create_id).
    var idleIdentifiers: [UInt32: SoftConnectionEventQueue] = [:]
    var connections: [UInt32: ConnectionRecord] = [:]
    var listeners: [UInt32: ListenerRecord] = [:]
    /// The earliest `deadline` of any connection (`.max`: none), so a round checks one number.
    private(set) var nextDeadline: UInt64 = .max
    let caGUID: UInt64
    private var random: UInt64
    private var nextIdentifier: UInt32 = 0
    private var nextPort: UInt16 = 0
    /// The PSN of the next MAD sent from QP 1.
    var generalServicesPSN: PacketSequenceNumber = 0
    private var closed = false

    init(configuration: SoftConnectionManagerConfiguration, address: SoftAddress, seed: UInt64) throws(SoftRoCEError) {
        self.configuration = configuration
        defaultQueue = try SoftConnectionEventQueue()
        random = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed
        // A node GUID per address: stable across runs, distinct per device, never 0.
        let value = address.ipv6Value
        caGUID = 0x0253_4F46_0000_0000 ^ value.high ^ value.low.byteSwapped ^ value.low
        nextIdentifier = UInt32(truncatingIfNeeded: nextRandom())
        nextPort = UInt16(truncatingIfNeeded: nextRandom() % 16384) + 49152
    }

    func close() {
        guard !closed else { return }
        closed = true
        defaultQueue.close()
        connections.removeAll()
        listeners.removeAll()
        idleIdentifiers.removeAll()
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
            || idleIdentifiers[nextIdentifier] != nil
        return nextIdentifier
    }

    /// An rdma_cm source port for an active connection (49152–65535, like an ephemeral port).
    func allocatePort() -> UInt16 {
        nextPort = nextPort >= 65535 ? 49152 : nextPort + 1
        return nextPort
    }

    func post(_ event: SoftConnectionEvent, to queue: SoftConnectionEventQueue) {
        guard !closed else { return }
        queue.post(event)
    }

    /// The queue of `reserved` (an idle id, which stops being idle), or the default queue
    /// when the caller made no id first.
    func takeIdle(_ reserved: UInt32?, _ operation: String) throws(SoftRoCEError) -> SoftConnectionEventQueue {
        guard let reserved else { return defaultQueue }
        guard let queue = idleIdentifiers.removeValue(forKey: reserved) else {
            throw SoftRoCEError(operation, errno: EINVAL, "id \(reserved) is not an idle id (already listening, connecting or destroyed)")
        }
        return queue
    }

    /// The queue an id's events go to (nil for an unknown id).
    func queue(of id: UInt32) -> SoftConnectionEventQueue? {
        connections[id]?.events ?? listeners[id]?.events ?? idleIdentifiers[id]
    }

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
