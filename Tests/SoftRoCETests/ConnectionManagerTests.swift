#if canImport(Glibc)
import Glibc
#endif
import RoCEWire
import Testing
@testable import SoftRoCE

/// A client device A (10.0.0.1) and a server device B (10.0.0.2), each with a connection
/// manager, on an in-memory network with a manual clock (or on loopback UDP), and helpers
/// to make QPs and run both engines until a condition holds — bounded in rounds.
final class ConnectionBench {
    let network: InMemoryNetwork?
    let clock: ManualClock?
    let client: SoftDevice
    let server: SoftDevice
    let clientManager: SoftConnectionManager
    let serverManager: SoftConnectionManager
    let clientAddress: SoftAddress
    let serverAddress: SoftAddress
    var clientEvents: [SoftConnectionEvent] = []
    var serverEvents: [SoftConnectionEvent] = []
    let memory: UnsafeMutableRawBufferPointer

    static var fastConfiguration: SoftConnectionManagerConfiguration {
        var configuration = SoftConnectionManagerConfiguration()
        configuration.responseTimeout = 12      // ≈ 16.8 ms of engine time per attempt
        configuration.maxRetries = 3
        configuration.seed = 7
        return configuration
    }

    init(udp: Bool = false, configuration: SoftConnectionManagerConfiguration = ConnectionBench.fastConfiguration) throws {
        if udp {
            network = nil
            clock = nil
            (client, server) = try loopbackDevices()
            clientAddress = .ipv4(0x7F00_0001)
            serverAddress = .ipv4(0x7F00_0002)
        } else {
            let network = InMemoryNetwork()
            let clock = ManualClock()
            self.network = network
            self.clock = clock
            clientAddress = .ipv4(0x0A00_0001)
            serverAddress = .ipv4(0x0A00_0002)
            client = SoftDevice(wire: network.attach(WireEndpoint(clientAddress, port: 4791)),
                                configuration: SoftDeviceConfiguration(address: "10.0.0.1"), clock: .manual(clock))
            server = SoftDevice(wire: network.attach(WireEndpoint(serverAddress, port: 4791)),
                                configuration: SoftDeviceConfiguration(address: "10.0.0.2"), clock: .manual(clock))
        }
        var serverConfiguration = configuration
        serverConfiguration.seed = configuration.seed.map { $0 &+ 99 }
        clientManager = try SoftConnectionManager(device: client, configuration: configuration)
        serverManager = try SoftConnectionManager(device: server, configuration: serverConfiguration)
        memory = .allocate(byteCount: 1 << 16, alignment: 4096)
        memory.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit {
        client.close()
        server.close()
        memory.deallocate()
    }

    struct Endpoint {
        let qp: SoftQueuePair
        let cq: SoftCompletionQueue
        let region: SoftMemoryRegion
        let domain: UInt32
    }

    func endpoint(on device: SoftDevice) throws -> Endpoint {
        let domain = device.allocateProtectionDomain()
        let region = try device.registerMemory(domain: domain, bytes: memory, access: [.localWrite, .remoteWrite, .remoteRead])
        let cq = device.createCompletionQueue(capacity: 256, channel: nil)
        let qp = try device.createQueuePair(domain: domain, type: .reliableConnected, sendQueue: cq, receiveQueue: cq, sharedReceiveQueue: nil,
                                            signalAll: true, sendCapacity: 64, receiveCapacity: 64, maxScatterGather: 1, maxInline: 64)
        return Endpoint(qp: qp, cq: cq, region: region, domain: domain)
    }

    func release(_ endpoint: Endpoint, on device: SoftDevice) {
        device.destroyQueuePair(endpoint.qp)
        device.destroyCompletionQueue(endpoint.cq)
        device.deregister(endpoint.region)
    }

    /// One round of both engines, then collect events; time moves on the manual clock
    /// (1 µs while datagrams are in flight, else a jump to the next timer). False when
    /// nothing can ever happen again (in memory).
    @discardableResult
    func round() -> Bool {
        client.progress()
        server.progress()
        while let event = clientManager.nextEvent() { clientEvents.append(event) }
        while let event = serverManager.nextEvent() { serverEvents.append(event) }
        guard let network, let clock else {
            var descriptor = pollfd(fd: client.baseWire.pollDescriptor ?? -1, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, 1)
            return true
        }
        if network.pending(for: client.baseWire.local) + network.pending(for: server.baseWire.local) > 0 {
            clock.advance(nanoseconds: 1000)
            return true
        }
        guard let next = [client.nextDeadline(), server.nextDeadline()].compactMap({ $0 }).min() else { return false }
        clock.nanoseconds = max(clock.nanoseconds + 1000, next)
        return true
    }

    /// Runs rounds until `condition` holds; false if it never does within `rounds`.
    func run(rounds: Int = 100_000, until condition: () -> Bool) -> Bool {
        for _ in 0..<rounds {
            if condition() { return true }
            if !round() { return condition() }
        }
        return condition()
    }

    func clientEvent(_ kind: SoftConnectionEventKind) -> SoftConnectionEvent? { clientEvents.first { $0.kind == kind } }
    func serverEvent(_ kind: SoftConnectionEventKind) -> SoftConnectionEvent? { serverEvents.first { $0.kind == kind } }

    /// Listens on 7174, connects, accepts: both sides ESTABLISHED. Returns (client id, server id).
    func establish(_ a: Endpoint, _ b: Endpoint, listener: UInt32? = nil, privateData: [UInt8] = [1, 2, 3]) throws -> (UInt32, UInt32) {
        if listener == nil { _ = try serverManager.listen(address: nil, port: 7174, backlog: 4) }
        clientEvents.removeAll()
        serverEvents.removeAll()
        let id = try clientManager.connect(queuePair: a.qp, to: serverAddress, port: 7174, privateData: privateData,
                                           parameters: SoftConnectionParameters(), timeout: .seconds(30))
        try #require(run { serverEvent(.connectRequest) != nil })
        let request = try #require(serverEvent(.connectRequest))
        try serverManager.accept(request.id, queuePair: b.qp, privateData: [9, 8], parameters: SoftConnectionParameters())
        try #require(run { clientEvent(.established) != nil && serverEvent(.established) != nil })
        return (id, request.id)
    }

    func sge(_ endpoint: Endpoint, _ offset: Int, _ length: Int) -> SoftScatterGather {
        SoftScatterGather(address: UInt64(UInt(bitPattern: memory.baseAddress!)) + UInt64(offset), length: UInt32(length), lkey: endpoint.region.lkey)
    }

    func completions(_ device: SoftDevice, _ cq: SoftCompletionQueue) -> [SoftCompletion] {
        let buffer = UnsafeMutableBufferPointer<SoftCompletion>.allocate(capacity: 64)
        defer { buffer.deallocate() }
        let count = device.poll(cq, into: buffer)
        return Array(buffer[0..<count])
    }

    /// Builds a UD SEND_ONLY to the server's QP 1 carrying `mad`, with a valid ICRC, from `source`.
    func injectToServer(_ mad: [UInt8], queueKey: UInt32 = ConnectionManagementDatagram.generalServicesQueueKey,
                        from source: WireEndpoint = WireEndpoint(.ipv4(0x0A00_0009), port: 4791)) {
        inject(mad, queueKey: queueKey, from: source, to: server.baseWire.local)
    }

    /// Builds a UD SEND_ONLY to QP 1 of `destination` carrying `mad`, with a valid ICRC.
    func inject(_ mad: [UInt8], queueKey: UInt32 = ConnectionManagementDatagram.generalServicesQueueKey,
                from source: WireEndpoint, to destination: WireEndpoint) {
        var headers = TransportHeaders(BaseTransportHeader(opcode: .udSendOnly, destinationQP: .generalServices, psn: 1))
        headers.datagram = DETH(queueKey: queueKey, sourceQP: .generalServices)
        var bytes = [UInt8](repeating: 0, count: RoCEPacket.serializedByteCount(headers: headers, payloadLength: mad.count))
        bytes.withUnsafeMutableBytes { buffer in
            let length = mad.withUnsafeBytes { try! RoCEPacket.serialize(headers: headers, payload: $0, into: buffer) }
            try! ICRC.seal(transportPacket: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]),
                           encapsulation: SoftDevice.encapsulation(from: source, to: destination))
        }
        network!.inject(bytes, from: source, to: destination)
    }
}

@Suite("Connection manager (IB CM on QP 1)")
struct ConnectionManagerTests {
    static func sendAndCheck(_ bench: ConnectionBench, from a: ConnectionBench.Endpoint, on sender: SoftDevice,
                             to b: ConnectionBench.Endpoint, on receiver: SoftDevice) throws {
        let message: [UInt8] = Array("hello over the CM".utf8)
        bench.memory.baseAddress!.copyMemory(from: message, byteCount: message.count)
        try withUnsafePointer(to: bench.sge(b, 4096, 64)) { try receiver.postReceive(b.qp, id: 77, UnsafeBufferPointer(start: $0, count: 1)) }
        try withUnsafePointer(to: bench.sge(a, 0, message.count)) {
            try sender.postSend(a.qp, SoftSendRequest(id: 5), UnsafeBufferPointer(start: $0, count: 1))
        }
        var received: [SoftCompletion] = []
        var sent: [SoftCompletion] = []
        #expect(bench.run {
            received += bench.completions(receiver, b.cq)
            sent += bench.completions(sender, a.cq)
            return !received.isEmpty && !sent.isEmpty
        })
        #expect(received.first?.status == .success && received.first?.byteLength == UInt32(message.count))
        #expect(sent.first?.status == .success)
        #expect(Array(UnsafeRawBufferPointer(rebasing: bench.memory[4096..<4096 + message.count])) == message)
    }

    @Test("soft ↔ soft in memory: REQ → REP → RTU, private data both ways, a SEND, DREQ → DREP, timewait exit")
    func connectSendDisconnect() throws {
        let bench = try ConnectionBench()
        let a = try bench.endpoint(on: bench.client), b = try bench.endpoint(on: bench.server)
        let (clientID, serverID) = try bench.establish(a, b)
        let request = try #require(bench.serverEvent(.connectRequest))
        #expect(Array(request.privateData.prefix(3)) == [1, 2, 3] && request.privateData.count == 56)
        #expect(request.peer == bench.clientAddress)
        #expect(Array(bench.clientEvent(.established)!.privateData.prefix(2)) == [9, 8])
        #expect(bench.client.state(of: a.qp) == .readyToSend && bench.server.state(of: b.qp) == .readyToSend)
        try Self.sendAndCheck(bench, from: a, on: bench.client, to: b, on: bench.server)
        try Self.sendAndCheck(bench, from: b, on: bench.server, to: a, on: bench.client)

        try bench.clientManager.disconnect(clientID)
        #expect(bench.run { bench.clientEvent(.disconnected) != nil && bench.serverEvent(.disconnected) != nil })
        #expect(bench.client.state(of: a.qp) == .error && bench.server.state(of: b.qp) == .error)
        #expect(bench.run { bench.clientEvent(.timewaitExit) != nil && bench.serverEvent(.timewaitExit) != nil })
        bench.clientManager.destroy(clientID)
        bench.serverManager.destroy(serverID)
        #expect(bench.clientManager.recordCount.connections == 0 && bench.serverManager.recordCount.connections == 0)
        let counters = bench.server.snapshotCounters()
        #expect(counters.managementMalformed == 0 && counters.managementUnmatched == 0 && counters.managementReceived == 3)
    }

    @Test("PSNs as Linux's CM sets them: each side sends from the starting PSN the other's REQ/REP carried")
    func startingPSNDirection() throws {
        let bench = try ConnectionBench()
        let a = try bench.endpoint(on: bench.client), b = try bench.endpoint(on: bench.server)
        _ = try bench.establish(a, b)
        try Self.sendAndCheck(bench, from: a, on: bench.client, to: b, on: bench.server)
        try Self.sendAndCheck(bench, from: b, on: bench.server, to: a, on: bench.client)
        var requestPSN: UInt32?, replyPSN: UInt32?
        var firstSend: [WireEndpoint: UInt32] = [:]
        for datagram in bench.network!.log {
            datagram.bytes.withUnsafeBytes { bytes in
                guard let packet = try? RoCEPacket(parsing: bytes) else { return }
                if packet.headers.bth.destinationQP == .generalServices {
                    switch (try? ConnectionManagementDatagram(parsing: packet.payload(in: bytes)))?.message {
                    case .request(let request): requestPSN = request.startingPSN.rawValue
                    case .reply(let reply): replyPSN = reply.startingPSN.rawValue
                    default: break
                    }
                } else if packet.headers.bth.opcode == .rcSendOnly, firstSend[WireEndpoint(datagram.source.address, port: 0)] == nil {
                    firstSend[WireEndpoint(datagram.source.address, port: 0)] = packet.headers.bth.psn.rawValue
                }
            }
        }
        // cm.c: rq_psn is the REQ's starting PSN on the active side, the REP's on the passive one.
        #expect(firstSend[WireEndpoint(bench.clientAddress, port: 0)] == replyPSN)
        #expect(firstSend[WireEndpoint(bench.serverAddress, port: 0)] == requestPSN)
        #expect(requestPSN != nil && replyPSN != nil && requestPSN != replyPSN)
    }

    @Test("soft ↔ soft on loopback UDP (127.0.0.1 ↔ 127.0.0.2): connect, a SEND, disconnect")
    func loopbackUDP() throws {
        let bench = try ConnectionBench(udp: true)
        let a = try bench.endpoint(on: bench.client), b = try bench.endpoint(on: bench.server)
        let (clientID, _) = try bench.establish(a, b)
        try Self.sendAndCheck(bench, from: a, on: bench.client, to: b, on: bench.server)
        try bench.clientManager.disconnect(clientID)
        #expect(bench.run(rounds: 20_000) { bench.clientEvent(.disconnected) != nil && bench.serverEvent(.disconnected) != nil })
    }

    @Test("no listener on the port: REJ reason 8 (invalid service ID), the QP in error, no retry")
    func noListener() throws {
        let bench = try ConnectionBench()
        let a = try bench.endpoint(on: bench.client)
        let start = bench.clock!.nanoseconds
        _ = try bench.clientManager.connect(queuePair: a.qp, to: bench.serverAddress, port: 4000, privateData: [],
                                           parameters: SoftConnectionParameters(), timeout: nil)
        #expect(bench.run { bench.clientEvent(.rejected) != nil })
        let event = try #require(bench.clientEvent(.rejected))
        #expect(event.rejectReason == .invalidServiceID && event.status == 8)
        #expect(bench.clock!.nanoseconds - start < 1_000_000, "answered at once, not after a timeout")
        #expect(bench.client.state(of: a.qp) == .error)
        #expect(bench.client.snapshotCounters().managementRetransmits == 0)
        #expect(bench.clientManager.recordCount.connections == 0)
    }

    @Test("a device whose manager nobody opened still answers a REQ: REJ 8, as a kernel does")
    func rejectWithoutManager() throws {
        let network = InMemoryNetwork()
        let clock = ManualClock()
        let client = SoftDevice(wire: network.attach(WireEndpoint(.ipv4(0x0A00_0001), port: 4791)),
                                configuration: SoftDeviceConfiguration(address: "10.0.0.1"), clock: .manual(clock))
        let server = SoftDevice(wire: network.attach(WireEndpoint(.ipv4(0x0A00_0002), port: 4791)),
                                configuration: SoftDeviceConfiguration(address: "10.0.0.2"), clock: .manual(clock))
        defer { client.close(); server.close() }
        let manager = try SoftConnectionManager(device: client, configuration: ConnectionBench.fastConfiguration)
        let domain = client.allocateProtectionDomain()
        let cq = client.createCompletionQueue(capacity: 16, channel: nil)
        let qp = try client.createQueuePair(domain: domain, type: .reliableConnected, sendQueue: cq, receiveQueue: cq, sharedReceiveQueue: nil,
                                            signalAll: true, sendCapacity: 4, receiveCapacity: 4, maxScatterGather: 1, maxInline: 0)
        _ = try manager.connect(queuePair: qp, to: .ipv4(0x0A00_0002), port: 7174, privateData: [], parameters: SoftConnectionParameters(), timeout: nil)
        server.progress()
        client.progress()
        let event = try #require(manager.nextEvent())
        #expect(event.kind == .rejected && event.rejectReason == .invalidServiceID)
    }

    @Test("nobody answers: the REQ is resent maxRetries times, then UNREACHABLE -ETIMEDOUT in bounded engine time")
    func unreachable() throws {
        let bench = try ConnectionBench()
        let a = try bench.endpoint(on: bench.client)
        let start = bench.clock!.nanoseconds
        _ = try bench.clientManager.connect(queuePair: a.qp, to: .ipv4(0x0A00_0063), port: 7174, privateData: [],
                                           parameters: SoftConnectionParameters(), timeout: nil)
        #expect(bench.run { bench.clientEvent(.unreachable) != nil })
        #expect(bench.clientEvent(.unreachable)?.status == -ETIMEDOUT)
        let elapsed = bench.clock!.nanoseconds - start
        let attempt = ConnectionBench.fastConfiguration.responseNanoseconds
        #expect(elapsed >= 4 * attempt && elapsed < 5 * attempt)
        #expect(bench.client.snapshotCounters().managementRetransmits == 3)
        #expect(bench.client.snapshotCounters().managementTimeouts == 1)
    }

    @Test("a REQ lost on the wire is resent after the response timeout and connects")
    func lostRequestRetried() throws {
        let bench = try ConnectionBench()
        let a = try bench.endpoint(on: bench.client), b = try bench.endpoint(on: bench.server)
        _ = try bench.serverManager.listen(address: nil, port: 7174, backlog: 4)
        bench.client.setFaults(SoftFaultInjection(drop: 1))
        _ = try bench.clientManager.connect(queuePair: a.qp, to: bench.serverAddress, port: 7174, privateData: [],
                                           parameters: SoftConnectionParameters(), timeout: .seconds(30))
        bench.client.setFaults(.none)
        #expect(bench.client.snapshotCounters().injectedDrops == 1)
        #expect(bench.run { bench.serverEvent(.connectRequest) != nil })
        #expect(bench.client.snapshotCounters().managementRetransmits == 1)
        try bench.serverManager.accept(bench.serverEvent(.connectRequest)!.id, queuePair: b.qp, privateData: [], parameters: SoftConnectionParameters())
        #expect(bench.run { bench.clientEvent(.established) != nil && bench.serverEvent(.established) != nil })
    }

    @Test("a duplicate REQ: dropped while the request waits, answered with the same REP once accepted; one CONNECT_REQUEST")
    func duplicateRequest() throws {
        let bench = try ConnectionBench()
        let a = try bench.endpoint(on: bench.client), b = try bench.endpoint(on: bench.server)
        _ = try bench.serverManager.listen(address: nil, port: 7174, backlog: 4)
        _ = try bench.clientManager.connect(queuePair: a.qp, to: bench.serverAddress, port: 7174, privateData: [],
                                           parameters: SoftConnectionParameters(), timeout: nil)
        let request = try #require(bench.network!.log.last)
        // Rounds by hand, the clock still: no REQ is resent by timeout, every duplicate is ours.
        bench.server.progress()
        let connectRequest = try #require(bench.serverManager.nextEvent())
        #expect(connectRequest.kind == .connectRequest)
        bench.serverEvents.append(connectRequest)
        bench.network!.inject(request.bytes, from: request.source, to: request.destination)
        bench.server.progress()
        #expect(bench.server.snapshotCounters().managementDuplicates == 1)
        #expect(bench.server.snapshotCounters().managementSent == 0, "dropped while the request waits for accept")
        #expect(bench.serverManager.nextEvent() == nil)
        try bench.serverManager.accept(bench.serverEvent(.connectRequest)!.id, queuePair: b.qp, privateData: [], parameters: SoftConnectionParameters())
        let sentBefore = bench.server.snapshotCounters().managementSent
        bench.network!.inject(request.bytes, from: request.source, to: request.destination)
        bench.server.progress()
        #expect(bench.server.snapshotCounters().managementDuplicates == 2)
        #expect(bench.server.snapshotCounters().managementSent == sentBefore + 1, "the REP sent again")
        #expect(bench.run { bench.clientEvent(.established) != nil && bench.serverEvent(.established) != nil })
        #expect(bench.serverEvents.filter { $0.kind == .connectRequest }.count == 1)
    }

    @Test("an MRA for our REQ stretches the wait by its service timeout: no retransmission meanwhile, then connected")
    func messageReceiptAcknowledgement() throws {
        let bench = try ConnectionBench()
        let a = try bench.endpoint(on: bench.client), b = try bench.endpoint(on: bench.server)
        _ = try bench.serverManager.listen(address: nil, port: 7174, backlog: 4)
        let clientID = try bench.clientManager.connect(queuePair: a.qp, to: bench.serverAddress, port: 7174, privateData: [],
                                                       parameters: SoftConnectionParameters(), timeout: nil)
        bench.server.progress()
        let request = try #require(bench.serverManager.nextEvent())
        // The server's application is slow: an MRA asks the client to wait 4.096 µs · 2^20 ≈ 4.3 s more.
        let mra = try ConnectionManagementDatagram(transactionID: 1, message: .messageReceiptAcknowledgement(
            MessageReceiptAcknowledgement(localCommunicationID: request.id, remoteCommunicationID: clientID,
                                          acknowledgedMessage: .request, serviceTimeout: 20))).serialized()
        bench.inject(mra, from: WireEndpoint(bench.serverAddress, port: 4791), to: bench.client.baseWire.local)
        bench.client.progress()
        let attempt = ConnectionBench.fastConfiguration.responseNanoseconds
        bench.clock!.advance(nanoseconds: 3 * attempt)   // three REQ timeouts, well inside the MRA's wait
        bench.client.progress()
        #expect(bench.client.snapshotCounters().managementRetransmits == 0)
        try bench.serverManager.accept(request.id, queuePair: b.qp, privateData: [], parameters: SoftConnectionParameters())
        bench.serverEvents.append(request)
        #expect(bench.run { bench.clientEvent(.established) != nil && bench.serverEvent(.established) != nil })
        // An MRA for nothing we sent is counted and dropped.
        bench.inject(mra, from: WireEndpoint(bench.serverAddress, port: 4791), to: bench.client.baseWire.local)
        bench.client.progress()
        #expect(bench.client.snapshotCounters().managementUnmatched == 1)
    }

    @Test("a listener destroyed mid-handshake: its unanswered request is rejected (reason 28), the client is told")
    func listenerDestroyedMidHandshake() throws {
        let bench = try ConnectionBench()
        let a = try bench.endpoint(on: bench.client)
        let listener = try bench.serverManager.listen(address: nil, port: 7174, backlog: 4)
        _ = try bench.clientManager.connect(queuePair: a.qp, to: bench.serverAddress, port: 7174, privateData: [],
                                           parameters: SoftConnectionParameters(), timeout: nil)
        #expect(bench.run { bench.serverEvent(.connectRequest) != nil })
        bench.serverManager.destroy(listener)
        bench.serverManager.destroy(listener)   // idempotent
        #expect(bench.run { bench.clientEvent(.rejected) != nil })
        #expect(bench.clientEvent(.rejected)?.rejectReason == .consumerDefined)
        #expect(bench.serverManager.recordCount.connections == 0 && bench.serverManager.recordCount.listeners == 0)
        // And afterwards the port has no listener: REJ 8.
        let second = try bench.endpoint(on: bench.client)
        bench.clientEvents.removeAll()
        _ = try bench.clientManager.connect(queuePair: second.qp, to: bench.serverAddress, port: 7174, privateData: [],
                                           parameters: SoftConnectionParameters(), timeout: nil)
        #expect(bench.run { bench.clientEvent(.rejected) != nil })
        #expect(bench.clientEvent(.rejected)?.rejectReason == .invalidServiceID)
    }

    @Test("the peer disconnects while traffic runs: outstanding sends complete (flushed or done), DISCONNECTED arrives")
    func disconnectDuringTraffic() throws {
        let bench = try ConnectionBench()
        let a = try bench.endpoint(on: bench.client), b = try bench.endpoint(on: bench.server)
        let (_, serverID) = try bench.establish(a, b)
        for index in 0..<16 {
            try withUnsafePointer(to: bench.sge(b, 8192, 64)) { try bench.server.postReceive(b.qp, id: UInt64(index), UnsafeBufferPointer(start: $0, count: 1)) }
        }
        for index in 0..<32 {
            try withUnsafePointer(to: bench.sge(a, 0, 64)) {
                try bench.client.postSend(a.qp, SoftSendRequest(id: UInt64(index)), UnsafeBufferPointer(start: $0, count: 1))
            }
        }
        bench.round()
        try bench.serverManager.disconnect(serverID)
        var clientCompletions: [SoftCompletion] = []
        #expect(bench.run {
            clientCompletions += bench.completions(bench.client, a.cq)
            return bench.clientEvent(.disconnected) != nil && clientCompletions.count == 32
        })
        #expect(clientCompletions.contains { $0.status != .success }, "the sends the DREQ cut off failed")
        #expect(clientCompletions.allSatisfy { $0.status == .success || $0.status == .flushed || $0.status == .retryExceeded })
        #expect(bench.client.state(of: a.qp) == .error)
    }

    @Test("hostile MADs to QP 1 (truncated, wrong class, unknown attribute, cma_hdr version 1, wrong Q_Key) are dropped and counted")
    func hostileManagementDatagrams() throws {
        let bench = try ConnectionBench()
        _ = try bench.serverManager.listen(address: nil, port: 7174, backlog: 4)
        var request = ConnectRequest()
        request.localCommunicationID = 5
        request.serviceID = RDMAServiceID(port: 7174).rawValue
        request.localQueuePairNumber = 0x33
        request.privateData = RDMAConnectionManagerHeader(source: .ipv4(0x0A00_0009), sourcePort: 5, destination: .ipv4(0x0A00_0002)).bytes
        let good = try ConnectionManagementDatagram(transactionID: 1, message: .request(request)).serialized()
        var wrongClass = good; wrongClass[1] = 0x81
        var unknownAttribute = good; unknownAttribute[17] = 0x42
        var badMTU = good; badMTU[24 + 50] = 0x70
        var badVersion = good; badVersion[24 + 140] = 1
        bench.injectToServer(Array(good[0..<100]))
        bench.injectToServer(wrongClass)
        bench.injectToServer(unknownAttribute)
        bench.injectToServer(badMTU)
        bench.injectToServer(badVersion)
        bench.injectToServer(good, queueKey: 0x1234)
        bench.server.progress()
        let counters = bench.server.snapshotCounters()
        #expect(counters.managementMalformed == 5)
        #expect(counters.managementBadQueueKey == 1)
        #expect(counters.managementSent == 0, "nothing answered")
        #expect(bench.serverManager.nextEvent() == nil)
        // The same REQ, well formed: accepted as a request.
        bench.injectToServer(good)
        bench.server.progress()
        #expect(bench.serverManager.nextEvent()?.kind == .connectRequest)
        // Seeded garbage at QP 1: never a trap.
        var random: UInt64 = 0x1234_5678_9ABC_DEF1
        for _ in 0..<500 {
            var bytes = good
            for _ in 0..<6 {
                random ^= random << 13; random ^= random >> 7; random ^= random << 17
                bytes[Int(random % 256)] = UInt8(truncatingIfNeeded: random >> 24)
            }
            bench.injectToServer(bytes)
            bench.server.progress()
        }
    }

    @Test("1,000 connect/disconnect cycles: no growth in CM records, QPs or file descriptors")
    func thousandCycles() throws {
        let bench = try ConnectionBench()
        bench.network!.recording = false
        let listener = try bench.serverManager.listen(address: nil, port: 7174, backlog: 4)
        func openDescriptors() -> Int {
            guard let directory = opendir("/proc/self/fd") else { return -1 }
            defer { closedir(directory) }
            var count = 0
            while readdir(directory) != nil { count += 1 }
            return count
        }
        let descriptorsBefore = openDescriptors()
        let queuePairsBefore = bench.client.queuePairs.count + bench.server.queuePairs.count
        for cycle in 0..<1000 {
            let a = try bench.endpoint(on: bench.client), b = try bench.endpoint(on: bench.server)
            let (clientID, serverID) = try bench.establish(a, b, listener: listener)
            if cycle % 2 == 0 { try bench.clientManager.disconnect(clientID) } else { try bench.serverManager.disconnect(serverID) }
            try #require(bench.run { bench.clientEvent(.timewaitExit) != nil && bench.serverEvent(.timewaitExit) != nil })
            bench.clientManager.destroy(clientID)
            bench.serverManager.destroy(serverID)
            bench.release(a, on: bench.client)
            bench.release(b, on: bench.server)
        }
        #expect(bench.clientManager.recordCount.connections == 0 && bench.serverManager.recordCount.connections == 0)
        #expect(bench.serverManager.recordCount.listeners == 1)
        #expect(bench.client.queuePairs.count + bench.server.queuePairs.count == queuePairsBefore)
        // Other suites run in parallel and hold dozens of descriptors at a time (engines, pipes,
        // TCP exchanges), so the bound is loose; a leak per cycle would show as ≥ 1,000.
        #expect(openDescriptors() <= descriptorsBefore + 256)
    }
}
