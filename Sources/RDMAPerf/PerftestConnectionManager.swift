import Glibc
import RDMA

// perftest's `-R`, as its sources (perftest_communication.c, 6.06 = v4.5-0.17) do it:
// the out-of-band exchange ("comm") is not TCP but an RC queue pair connected through
// rdma_cm on the same port (`-p`, 18515), one SEND per message into the peer's single
// posted receive, in the same order as over TCP; the key lines become perftest's binary
// `struct pingpong_dest` (56 bytes, big-endian fields). Then the test QP is connected
// through rdma_cm too, to the same port (perftest's server listens again; ours keeps
// listening), before the first key exchange — the CM moves it to RTS, so nothing is
// connected by hand.

/// Where perftest's out-of-band messages travel: its TCP socket, or with `-R` the comm
/// queue pair (`PerftestConnectionManagerLink`).
public protocol PerftestChannel: AnyObject {
    func sendRaw(_ bytes: [UInt8]) throws(PerfError)
    func receiveRaw(count: Int, timeout: Double, waitingFor what: String) throws(PerfError) -> [UInt8]
    /// Key exchanges carry the binary `pingpong_dest` (rdma_cm) instead of text lines (TCP).
    var binaryKeys: Bool { get }
}

extension ControlConnection: PerftestChannel {
    public var binaryKeys: Bool { false }
}

extension PerftestKey {
    /// perftest's `struct pingpong_dest` as its `rdma_write_keys` sends it: lid, out_reads,
    /// qpn, psn, rkey (4 bytes each), 4 bytes of padding, vaddr (8), the GID (16), srqn
    /// and gid_index (4 each): 56 bytes, integers big-endian.
    public static let binarySize = 56

    public func binary(gidIndex: Int) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(Self.binarySize)
        func put<Value: FixedWidthInteger>(_ value: Value) { withUnsafeBytes(of: value.bigEndian) { bytes += $0 } }
        put(UInt32(lid)); put(UInt32(outstandingReads)); put(queuePairNumber); put(psn); put(rkey); put(UInt32(0))
        put(virtualAddress)
        bytes += gid.byteArray
        put(sharedReceiveQueueNumber); put(UInt32(truncatingIfNeeded: gidIndex))
        return bytes
    }

    /// Parses perftest's binary key; nil when shorter than 56 bytes or its fields are out
    /// of range (a 24-bit QPN/PSN, a 16-bit LID).
    public init?(binary bytes: [UInt8]) {
        guard bytes.count >= Self.binarySize else { return nil }
        func word(_ offset: Int) -> UInt32 { bytes[offset..<offset + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
        let vaddr = bytes[24..<32].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard word(0) <= 0xFFFF, word(4) <= 0xFFFF, word(8) <= 0xFF_FFFF, word(12) <= 0xFF_FFFF,
              let gid = GID(byteArray: bytes[32..<48]) else { return nil }
        self.init(lid: UInt16(word(0)), outstandingReads: UInt16(word(4)), queuePairNumber: word(8), psn: word(12),
                  rkey: word(16), virtualAddress: vaddr, gid: gid, sharedReceiveQueueNumber: word(48))
    }
}

/// perftest's `-R` link: the comm queue pair (the exchange) and the connection of the test
/// queue pair, both through rdma_cm on one port. Blocking, every wait bounded.
///
/// ```swift
/// let link = try PerftestConnectionManagerLink.connect(opened: opened, host: "10.0.0.1", port: 18515, timeout: 10)
/// defer { link.close() }
/// try link.connectTestQueuePair(queues.queuePairs[0])
/// ```
public final class PerftestConnectionManagerLink: PerftestChannel {
    let isClient: Bool
    /// The device's context: the soft engine's connection manager when it is a soft one.
    let context: Context
    let server: ConnectionAddress
    let timeout: Double
    /// Server: the listening identifier, kept for the test connection's request.
    let listener: ConnectionIdentifier?
    let listenChannel: ConnectionEventChannel?
    let commChannel: ConnectionEventChannel
    let comm: ConnectionIdentifier
    let domain: ProtectionDomain
    let sendQueue: CompletionQueue
    let receiveQueue: CompletionQueue
    /// [0, 4096): the one posted receive; [4096, 8192): what we send.
    let memory: MemoryRegion
    let commPair: QueuePair
    var testChannel: ConnectionEventChannel?
    var test: ConnectionIdentifier?
    public var binaryKeys: Bool { true }
    static let area = 4096

    private init(isClient: Bool, server: ConnectionAddress, timeout: Double, listener: ConnectionIdentifier?,
                 listenChannel: ConnectionEventChannel?, commChannel: ConnectionEventChannel, comm: ConnectionIdentifier,
                 opened: OpenedDevice) throws(RDMAError) {
        self.isClient = isClient
        context = opened.context
        self.server = server
        self.timeout = timeout
        self.listener = listener
        self.listenChannel = listenChannel
        self.commChannel = commChannel
        self.comm = comm
        domain = try ProtectionDomain(context: opened.context)
        sendQueue = try CompletionQueue(context: opened.context, minimumEntries: 4)
        receiveQueue = try CompletionQueue(context: opened.context, minimumEntries: 4)
        memory = try MemoryRegion(protectionDomain: domain, length: 2 * Self.area, access: [.localWrite])
        commPair = try comm.createQueuePair(protectionDomain: domain, sendCompletionQueue: sendQueue, receiveCompletionQueue: receiveQueue,
                                     capabilities: QueuePairCapabilities(maxSendWorkRequests: 4, maxReceiveWorkRequests: 4))
        try postReceive()
    }

    var milliseconds: Int32 { Int32(clamping: Int(timeout * 1000)) }

    /// perftest's client: resolves and connects the comm QP to `host`:`port`.
    public static func connect(opened: OpenedDevice, host: String, port: UInt16, timeout: Double) throws(PerfError) -> PerftestConnectionManagerLink {
        let server = try rdma("rdma_cm: the server address") { () throws(RDMAError) in try ConnectionAddress(host: host, port: port) }
        return try rdma("rdma_cm: connecting perftest's exchange to \(server)") { () throws(RDMAError) in
            let channel = try ConnectionEventChannel(context: opened.context)
            do throws(RDMAError) {
                let comm = try connectIdentifier(on: channel, to: server, timeout: timeout)
                let link = try PerftestConnectionManagerLink(isClient: true, server: server, timeout: timeout, listener: nil,
                                                             listenChannel: nil, commChannel: channel, comm: comm, opened: opened)
                try comm.connect(ConnectionParameters(responderResources: 1, initiatorDepth: 1))
                _ = try channel.waitForEvent(.established, timeoutMilliseconds: link.milliseconds, operation: "rdma_connect to \(server)")
                return link
            } catch {
                try? channel.close()
                throw error
            }
        }
    }

    /// Resolves address and route of a new identifier on `channel`, retrying while
    /// perftest's server is not listening yet is the caller's business.
    private static func connectIdentifier(on channel: ConnectionEventChannel, to server: ConnectionAddress, timeout: Double) throws(RDMAError) -> ConnectionIdentifier {
        let milliseconds = Int32(clamping: Int(min(timeout, 60) * 1000))
        let identifier = try ConnectionIdentifier(channel: channel)
        try identifier.resolveAddress(to: server, timeoutMilliseconds: milliseconds)
        _ = try channel.waitForEvent(.addressResolved, timeoutMilliseconds: milliseconds, operation: "rdma_resolve_addr \(server)")
        try identifier.resolveRoute(timeoutMilliseconds: milliseconds)
        _ = try channel.waitForEvent(.routeResolved, timeoutMilliseconds: milliseconds, operation: "rdma_resolve_route \(server)")
        return identifier
    }

    /// perftest's server: listens on `port` (all addresses, or `bind`), accepts the comm
    /// connection and keeps listening for the test connection.
    public static func accept(opened: OpenedDevice, port: UInt16, bind: String?, timeout: Double,
                              waitForClient: Double) throws(PerfError) -> PerftestConnectionManagerLink {
        let address = try rdma("rdma_cm: the listen address") { () throws(RDMAError) -> ConnectionAddress in
            guard let bind else { return .any(port: port) }
            return try ConnectionAddress(host: bind, port: port)
        }
        return try rdma("rdma_cm: accepting perftest's exchange on \(address)") { () throws(RDMAError) in
            let listenChannel = try ConnectionEventChannel(context: opened.context)
            do throws(RDMAError) {
                let listener = try ConnectionIdentifier(channel: listenChannel)
                try listener.bind(to: address)
                try listener.listen(backlog: 4)
                let request = try listenChannel.waitForEvent(.connectRequest, timeoutMilliseconds: Int32(clamping: Int(waitForClient * 1000)),
                                                             operation: "wait for a client on \(address)")
                let commChannel = try ConnectionEventChannel(context: opened.context)
                try request.identifier.migrate(to: commChannel)
                let link = try PerftestConnectionManagerLink(isClient: false, server: address, timeout: timeout, listener: listener,
                                                             listenChannel: listenChannel, commChannel: commChannel,
                                                             comm: request.identifier, opened: opened)
                try request.identifier.accept(ConnectionParameters(responderResources: 1, initiatorDepth: 1))
                _ = try commChannel.waitForEvent(.established, timeoutMilliseconds: link.milliseconds, operation: "rdma_accept")
                return link
            } catch {
                try? listenChannel.close()
                throw error
            }
        }
    }

    /// Connects the test queue pair through rdma_cm (it leaves RTS): the client to the
    /// same port, retrying while perftest's server is not listening again yet; the server
    /// accepts the next request on its listener. READ depths: `reads` each way.
    public func connectTestQueuePair(_ pair: QueuePair, reads: UInt8 = 16) throws(PerfError) {
        let parameters = ConnectionParameters(responderResources: reads, initiatorDepth: reads)
        try rdma("rdma_cm: connecting the test QP") { () throws(RDMAError) in
            let channel = try ConnectionEventChannel(context: context)
            testChannel = channel
            if isClient {
                let deadline = ContinuousClock.now + .seconds(timeout)
                while true {
                    let identifier = try Self.connectIdentifier(on: channel, to: server, timeout: timeout)
                    test = identifier
                    try identifier.attach(pair)
                    try identifier.connect(parameters)
                    do throws(RDMAError) {
                        _ = try channel.waitForEvent(.established, timeoutMilliseconds: milliseconds, operation: "rdma_connect (test QP) to \(server)")
                        return
                    } catch where error.kind == .rejected(.invalidServiceID) && ContinuousClock.now < deadline {
                        // perftest's server destroys its listener after the exchange's connection
                        // and listens again for this one: try again shortly.
                        try identifier.close()   // detaches the QP, which goes back to RESET
                        try pair.modify(QueuePairAttributes(targetState: .reset))
                        usleep(20_000)
                    }
                }
            } else {
                guard let listenChannel else { return }
                let request = try listenChannel.waitForEvent(.connectRequest, timeoutMilliseconds: milliseconds, operation: "wait for the test QP's request")
                try request.identifier.migrate(to: channel)
                test = request.identifier
                try request.identifier.attach(pair)
                try request.identifier.accept(parameters)
                _ = try channel.waitForEvent(.established, timeoutMilliseconds: milliseconds, operation: "rdma_accept (test QP)")
            }
        }
    }

    private func postReceive() throws(RDMAError) {
        try commPair.postReceive(id: 1, scatterGather: memory.scatterGather(offset: 0, length: Self.area))
    }

    public func sendRaw(_ bytes: [UInt8]) throws(PerfError) {
        guard bytes.count <= Self.area else { throw PerfError("rdma_cm exchange: a \(bytes.count)-byte message (at most \(Self.area))") }
        UnsafeMutableRawBufferPointer(rebasing: memory.bytes[Self.area..<Self.area + bytes.count]).copyBytes(from: bytes)
        try rdma("rdma_cm exchange: SEND") { () throws(RDMAError) in
            try commPair.post(SendWorkRequest(id: 2), scatterGather: memory.scatterGather(offset: Self.area, length: bytes.count))
        }
        _ = try completion(sendQueue, timeout: timeout, waitingFor: "the exchange's SEND to complete")
    }

    public func receiveRaw(count: Int, timeout: Double, waitingFor what: String) throws(PerfError) -> [UInt8] {
        let done = try completion(receiveQueue, timeout: timeout, waitingFor: what)
        guard Int(done.byteLength) >= count, count <= Self.area else {
            throw .peer("\(what): perftest sent \(done.byteLength) bytes, expected \(count)")
        }
        let bytes = Array(memory.bytes[0..<count])
        try rdma("rdma_cm exchange: re-posting the receive") { () throws(RDMAError) in try postReceive() }
        return bytes
    }

    private func completion(_ queue: CompletionQueue, timeout: Double, waitingFor what: String) throws(PerfError) -> WorkCompletion {
        let deadline = MonotonicClock.deadline(after: timeout)
        while true {
            if let done = try rdma("rdma_cm exchange: polling", { () throws(RDMAError) in try queue.pollOne() }) {
                guard done.status == .success else {
                    throw .peer("\(what): the exchange's QP failed (\(done.status))", hint: "perftest exited or disconnected")
                }
                return done
            }
            if MonotonicClock.nanoseconds() >= deadline { throw .peer("no \(what) within \(timeout) s") }
            if stopRequested() { throw PerfError("interrupted", exitCode: 130) }
            usleep(20)
        }
    }

    /// Disconnects both connections (perftest waits for its DISCONNECTED events) and
    /// closes everything. Idempotent.
    public func close() {
        for (identifier, channel) in [(test, testChannel), (comm, commChannel)] {
            guard let identifier, let channel, !identifier.isClosed else { continue }
            try? identifier.disconnect()
            _ = try? channel.waitForEvent(.disconnected, timeoutMilliseconds: 1000, operation: "rdma_disconnect")
            try? channel.close()
        }
        try? listenChannel?.close()
        try? memory.close()
        try? sendQueue.close()
        try? receiveQueue.close()
        try? domain.close()
    }
}
