#if canImport(Glibc)
import Glibc
#endif
import CIBVerbs
import Synchronization
import Testing
@testable import RDMA

/// The rdma_cm API without a device: the event and reject-reason decoding, addresses,
/// argument checks, and the async layer driven by a scripted channel.
@Suite("Connection management")
struct ConnectionManagementTests {
    @Test func theSixteenEventsMatchLibrdmacm() {
        #expect(ConnectionEventKind.allCases.count == 16)
        for kind in ConnectionEventKind.allCases {
            let cType = rdma_cm_event_type(rawValue: kind.rawValue)
            #expect(ConnectionEventKind(verbs: cType) == kind)
            #expect(String(cString: rdma_event_str(cType)) == kind.cName)
        }
        #expect(ConnectionEventKind(verbs: RDMA_CM_EVENT_TIMEWAIT_EXIT) == .timewaitExit)
        #expect(ConnectionEventKind(verbs: RDMA_CM_EVENT_CONNECT_REQUEST) == .connectRequest)
        #expect(ConnectionEventKind(cValue: 16) == nil)
        #expect(ConnectionEventKind.rejected.isFailure && ConnectionEventKind.unreachable.isFailure)
        #expect(!ConnectionEventKind.established.isFailure && !ConnectionEventKind.disconnected.isFailure)
    }

    @Test func rejectReasonsAreNamed() {
        #expect(ConnectionRejectReason(status: 8) == .invalidServiceID)
        #expect(ConnectionRejectReason.invalidServiceID.description == "INVALID_SERVICE_ID (8): no listener on that port")
        #expect(ConnectionRejectReason.consumerDefined.name == "CONSUMER_DEFINED")
        #expect(ConnectionRejectReason.staleConnection.name == "STALE_CONN")
        #expect(ConnectionRejectReason.vendorOptionNotSupported.rawValue == 35)
        for number in UInt16(1)...33 { #expect(ConnectionRejectReason(rawValue: number).name != nil, "reason \(number)") }
        #expect(ConnectionRejectReason(rawValue: 34).name == nil)
        #expect(ConnectionRejectReason(rawValue: 34).description == "reason 34 (not an IB CM reason)")
        #expect(ConnectionRejectReason(status: -110) == nil)
        #expect(ConnectionRejectReason(status: 0) == nil)
    }

    @Test func failureEventsBecomeErrorsNamingTheCause() throws {
        let rejected = try #require(ConnectionEvent.error(kind: .rejected, status: 8, privateData: [], operation: "connect"))
        #expect(rejected.kind == .rejected(.invalidServiceID))
        #expect(rejected.description == "connect: rejected by the peer: INVALID_SERVICE_ID (8): no listener on that port")
        let refused = try #require(ConnectionEvent.error(kind: .rejected, status: 28, privateData: Array("busy".utf8) + [0, 0], operation: "connect"))
        #expect(refused.hint == "the peer refused; its private data: \"busy\"")
        let unreachable = try #require(ConnectionEvent.error(kind: .unreachable, status: -ETIMEDOUT, privateData: [], operation: "connect"))
        #expect(unreachable.errno == ETIMEDOUT)
        #expect(unreachable.hint?.hasPrefix("RDMA_CM_EVENT_UNREACHABLE") == true)
        let address = try #require(ConnectionEvent.error(kind: .addressError, status: -ENETUNREACH, privateData: [], operation: "resolve"))
        #expect(address.errno == ENETUNREACH)
        let gone = try #require(ConnectionEvent.error(kind: .disconnected, status: 0, privateData: [], operation: "receive"))
        #expect(gone.errno == ECONNRESET)
        #expect(ConnectionEvent.error(kind: .established, status: 0, privateData: [], operation: "x") == nil)
        #expect(ConnectionEvent.error(kind: .timewaitExit, status: 0, privateData: [], operation: "x") == nil)
    }

    @Test func addressesParsePrintAndRoundTrip() throws {
        let v4 = try #require(ConnectionAddress("10.0.0.2", port: 7471))
        #expect(v4.family == .ipv4 && v4.bytes == [10, 0, 0, 2])
        #expect(v4.description == "10.0.0.2:7471")
        #expect(v4.gid == GID(ipv4: (10, 0, 0, 2)))
        let v6 = try #require(ConnectionAddress("fe80::1", port: 1))
        #expect(v6.description == "[fe80::1]:1" && v6.bytes.count == 16)
        #expect(ConnectionAddress("10.0.0.256", port: 1) == nil)
        #expect(ConnectionAddress("", port: 1) == nil)
        #expect(ConnectionAddress("rxe0", port: 1) == nil)
        #expect(ConnectionAddress.any(port: 9).description == "0.0.0.0:9")
        for address in [v4, v6] {
            let back = address.withSocketAddress { ConnectionAddress(socketAddress: UnsafePointer($0)) }
            #expect(back == address)
        }
        #expect(throws: RDMAError.self) { try ConnectionAddress(host: String(repeating: "a", count: 300), port: 1) }
    }

    @Test func badArgumentsAreRefusedBeforeAnyCall() async throws {
        let address = try #require(ConnectionAddress("127.0.0.1", port: 1))
        await #expect(throws: RDMAError(operation: "connect to 127.0.0.1:1", kind: .invalidArgument, hint: "timeout must be positive; got 0.0 seconds")) {
            _ = try await Connection.connect(to: address, timeout: .zero) { _ in throw CancellationError() }
        }
        let tooLong = ConnectionParameters(privateData: [UInt8](repeating: 1, count: 57))
        await #expect(throws: RDMAError(operation: "connect to 127.0.0.1:1", kind: .invalidArgument, hint: "privateData is 57 bytes; this message carries at most 56")) {
            _ = try await Connection.connect(to: address, parameters: tooLong) { _ in throw CancellationError() }
        }
        #expect(throws: RDMAError(operation: "rdma_connect", kind: .invalidArgument, hint: "retryCount is a 3-bit field (0…7); got 8")) {
            try ConnectionParameters(retryCount: 8).validate(privateDataLimit: 56, operation: "rdma_connect")
        }
        #expect(throws: RDMAError.self) { try ConnectionParameters(rnrRetryCount: 9).validate(privateDataLimit: 56, operation: "x") }
        #expect(PrivateDataLimit.connect == 56 && PrivateDataLimit.accept == 196 && PrivateDataLimit.reject == 148)
    }

    @Test func identifierStepsCheckTheirArguments() throws {
        let channel = ConnectionEventChannel(operations: ScriptedChannel())
        defer { try? channel.close() }
        let identifier = try ConnectionIdentifier(channel: channel)
        #expect(throws: RDMAError(operation: "rdma_listen", kind: .invalidArgument, hint: "backlog must be 1…4096; got 0")) {
            try identifier.listen(backlog: 0)
        }
        #expect(throws: RDMAError(operation: "rdma_resolve_addr", kind: .invalidArgument, hint: "timeoutMilliseconds must be 1…60000; got 0")) {
            try identifier.resolveAddress(to: ConnectionAddress("10.0.0.1", port: 1)!, timeoutMilliseconds: 0)
        }
        #expect(throws: RDMAError(operation: "rdma_resolve_addr", kind: .invalidArgument, hint: "the destination 0.0.0.0:1 is the wildcard address")) {
            try identifier.resolveAddress(to: .any(port: 1))
        }
        #expect(throws: RDMAError(operation: "rdma_reject", kind: .invalidArgument, hint: "privateData is 149 bytes; this message carries at most 148")) {
            try identifier.reject(privateData: [UInt8](repeating: 0, count: 149))
        }
        #expect(throws: RDMAError(operation: "rdma_accept", kind: .invalidArgument, hint: "privateData is 197 bytes; this message carries at most 196")) {
            try identifier.accept(ConnectionParameters(privateData: [UInt8](repeating: 0, count: 197)))
        }
        try identifier.close()
        try identifier.close()
        #expect(throws: RDMAError.closed("rdma_connect", "ConnectionIdentifier")) { try identifier.connect() }
    }

    @Test func closingTheChannelClosesItsIdentifiersFirst() throws {
        let script = ScriptedChannel()
        let channel = ConnectionEventChannel(operations: script)
        let first = try ConnectionIdentifier(channel: channel)
        let second = try ConnectionIdentifier(channel: channel)
        try channel.close()
        #expect(first.isClosed && second.isClosed && channel.isClosed)
        #expect(script.log.all == ["create", "create", "destroy id", "destroy id", "destroy channel"])
        try channel.close()
    }

    @Test func eventsReachTheirWaiterInOrder() async throws {
        let script = ScriptedChannel()
        let channel = ConnectionEventChannel(operations: script)
        let identifier = try ConnectionIdentifier(channel: channel)
        let watcher = try ConnectionEventWatcher(channel: channel, label: "test")
        defer { watcher.stop(); try? channel.close() }
        script.push(.addressResolved, for: identifier)
        script.push(.routeResolved, for: identifier)
        #expect(try await watcher.next(timeout: nil, operation: "test").kind == .addressResolved)
        #expect(try await watcher.next(timeout: nil, operation: "test").kind == .routeResolved)
        script.push(.rejected, status: 8, for: identifier)
        await #expect(throws: RDMAError(operation: "connect", kind: .rejected(.invalidServiceID))) {
            _ = try await Connection.expect(.established, from: watcher, until: .now + .seconds(3600), operation: "connect")
        }
    }

    @Test func aConnectionAnswersThePeersDisconnectAndRecordsWhy() async throws {
        let script = ScriptedChannel()
        let channel = ConnectionEventChannel(operations: script)
        let identifier = try ConnectionIdentifier(channel: channel)
        let ended = Disconnection()
        let watcher = try Connection.watch(channel, label: "test", recording: ended)
        defer { watcher.stop(); try? channel.close() }
        script.push(.disconnected, for: identifier)
        #expect(try await watcher.next(timeout: nil, operation: "test").kind == .disconnected)
        // Recorded and answered before any task looked at the event.
        #expect(ended.reason?.errno == ECONNRESET)
        #expect(script.log.all.contains("disconnect"))
    }

    @Test func closingAnIdentifierClosesTheQueuePairItCreatedAndDetachesOneItWasGiven() throws {
        let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
        defer { try? context.close() }
        let domain = try ProtectionDomain(context: context)
        let queue = try CompletionQueue(context: context, minimumEntries: 4)
        let channel = ConnectionEventChannel(operations: ScriptedChannel())
        defer { try? channel.close() }

        let given = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue, receiveCompletionQueue: queue)
        let first = try ConnectionIdentifier(channel: channel)
        try first.attach(given)
        #expect(given.connectionIdentifier === first && first.queuePair === given)
        #expect(throws: RDMAError(operation: "rdma_create_qp", kind: .invalidArgument, hint: "the identifier already has a queue pair")) {
            try first.attach(given)
        }
        try first.close()
        #expect(!given.isClosed && given.connectionIdentifier == nil)

        let second = try ConnectionIdentifier(channel: channel)
        let created = try second.createQueuePair(protectionDomain: domain, sendCompletionQueue: queue, receiveCompletionQueue: queue)
        try second.close()
        #expect(created.isClosed)

        let datagram = try ConnectionIdentifier(channel: channel, portSpace: .udp)
        #expect(throws: RDMAError(operation: "rdma_create_qp", kind: .invalidArgument, hint: "a RDMA_PS_UDP identifier needs a UD queue pair; got RC")) {
            try datagram.attach(given)
        }
        try given.close()
    }

    @Test func aCancelledWaitEndsAndAStoppedWatcherRefusesWaits() async throws {
        let channel = ConnectionEventChannel(operations: ScriptedChannel())
        let watcher = try ConnectionEventWatcher(channel: channel, label: "test")
        let waiting = Task { try await watcher.next(timeout: nil, operation: "test") }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { _ = try await waiting.value }
        watcher.stop()
        watcher.stop()
        await #expect(throws: RDMAError.closed("wait for rdma_cm event", "connection")) {
            _ = try await watcher.next(timeout: nil, operation: "test")
        }
        try channel.close()
    }
}

/// A channel whose events a test pushes: a pipe makes its descriptor readable, as the
/// kernel's does for librdmacm's.
final class ScriptedChannel: ConnectionChannelOperations, @unchecked Sendable {
    private let pipeEnds: (read: Int32, write: Int32)
    private let queued = Mutex<[ConnectionEventRecord]>([])
    let log = ScriptLog()

    init() {
        var ends: [Int32] = [0, 0]
        precondition(pipe(&ends) == 0)
        _ = fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK)
        pipeEnds = (ends[0], ends[1])
    }

    var kind: BackendKind { .verbs }
    var fileDescriptor: Int32 { pipeEnds.read }

    func createIdentifier(portSpace: ConnectionPortSpace) throws(RDMAError) -> any ConnectionIdentifierOperations {
        log.append("create")
        return ScriptedIdentifier(log: log)
    }

    func push(_ kind: ConnectionEventKind, status: Int32 = 0, for identifier: ConnectionIdentifier) {
        let operations = identifier.currentOperations!
        queued.withLock { $0.append(ConnectionEventRecord(kind: kind, status: status, identifier: operations, listener: nil,
                                                          privateData: [], parameters: nil, datagram: nil)) }
        var byte: UInt8 = 1
        _ = write(pipeEnds.write, &byte, 1)
    }

    func nextEvent() throws(RDMAError) -> ConnectionEventRecord? {
        var byte: UInt8 = 0
        guard read(pipeEnds.read, &byte, 1) == 1 else { return nil }
        return queued.withLock { $0.isEmpty ? nil : $0.removeFirst() }
    }

    func destroy() throws(RDMAError) {
        log.append("destroy channel")
        close(pipeEnds.read)
        close(pipeEnds.write)
    }
}

final class ScriptedIdentifier: ConnectionIdentifierOperations, @unchecked Sendable {
    weak var owner: ConnectionIdentifier?
    let log: ScriptLog
    init(log: ScriptLog) { self.log = log }
    func bind(_ address: ConnectionAddress) throws(RDMAError) {}
    func listen(backlog: Int32) throws(RDMAError) {}
    func resolveAddress(source: ConnectionAddress?, destination: ConnectionAddress, timeoutMilliseconds: Int32) throws(RDMAError) {}
    func resolveRoute(timeoutMilliseconds: Int32) throws(RDMAError) {}
    func attach(queuePair: QueuePair) throws(RDMAError) {}
    func connect(_ parameters: ConnectionParameters) throws(RDMAError) {}
    func establish() throws(RDMAError) {}
    func accept(_ parameters: ConnectionParameters) throws(RDMAError) {}
    func reject(privateData: [UInt8]) throws(RDMAError) {}
    func disconnect() throws(RDMAError) { log.append("disconnect") }
    func migrate(to channel: any ConnectionChannelOperations) throws(RDMAError) {}
    var localAddress: ConnectionAddress? { nil }
    var peerAddress: ConnectionAddress? { nil }
    var deviceName: String? { nil }
    var portNumber: UInt8? { nil }
    func destroy() throws(RDMAError) { log.append("destroy id") }
}

final class ScriptLog: Sendable {
    private let entries = Mutex<[String]>([])
    func append(_ entry: String) { entries.withLock { $0.append(entry) } }
    var all: [String] { entries.withLock { $0 } }
}
