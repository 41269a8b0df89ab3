// rdma-cm-interop: the userspace engine's IB connection manager against the kernel's
// rdma_cm peers (tools/cm-interop-rxe runs it on the host, the peers in the TAP lab guest).
// After the CM handshake it speaks rping's protocol (librdmacm/examples/rping.c): the
// client sends {addr, rkey, len} of its start buffer, the server RDMA READs it, answers "go
// ahead", the client sends its sink buffer, the server RDMA WRITEs the data back, "go
// ahead" again; the client checks every byte. Every wait is bounded.
//
//   rdma-cm-interop --soft 10.239.0.1 --rping-client 10.239.0.2:7174 --count 10    # vs `rping -s`
//   rdma-cm-interop --soft 10.239.0.1 --rping-server 7174 --count 10              # vs `rping -c`
//   rdma-cm-interop --soft 10.239.0.1 --connect-only 10.239.0.2:7174              # REQ/REP/RTU + DREQ/DREP
//   rdma-cm-interop --soft 10.239.0.1 --expect-reject 10.239.0.2:7999             # no listener → REJ 8
//   rdma-cm-interop --soft 10.239.0.1 --messages-client 10.239.0.2:7471 --count 1 --size 16   # vs rdma_server
//   rdma-cm-interop --soft 10.239.0.1 --messages-server 7174 --count 10 --size 100           # vs ucmatose -s
//       (after the handshake each side posts COUNT receives, sends COUNT SENDs of SIZE bytes and
//       waits for both: what ucmatose and rdma_server/rdma_client do; then the client disconnects)
//   rdma-cm-interop --soft 10.239.0.1 --idle 20     # the CM up with no listener: peers get REJ 8
//   rdma-cm-interop --soft 10.239.0.1 --api-client 10.239.0.2:7471 --size 16      # public API vs rdma_server
//   rdma-cm-interop --soft 10.239.0.1 --api-server 7471                           # public API vs rdma_client
// Prints PASS/FAIL lines and the engine's CM counters; exits 0 when all passed, 1 if not.
#if canImport(Glibc)
import Glibc
#endif
import RoCEWire
import SoftRoCE

struct Arguments {
    enum Mode {
        case rpingClient(SoftAddress, UInt16), rpingServer(UInt16), connectOnly(SoftAddress, UInt16), expectReject(SoftAddress, UInt16)
        case messagesClient(SoftAddress, UInt16), messagesServer(UInt16), idle(Double)
        case apiClient(String, UInt16), apiServer(UInt16)
    }
    var address = "", mode: Mode?, count = 10, size = 64, seconds = 60.0, capture: String?, udpPort: UInt16 = 4791

    init() {
        var it = CommandLine.arguments.dropFirst().makeIterator()
        func target(_ text: String) -> (SoftAddress, UInt16) {
            let parts = text.split(separator: ":")
            guard let address = SoftAddress(String(parts[0])) else { fail("not an IPv4 address: \(text)") }
            return (address, parts.count > 1 ? UInt16(parts[1]) ?? 7174 : 7174)
        }
        while let flag = it.next() {
            let value = it.next() ?? ""
            switch flag {
            case "--soft": address = value
            case "--rping-client": let (a, p) = target(value); mode = .rpingClient(a, p)
            case "--rping-server": mode = .rpingServer(UInt16(value) ?? 7174)
            case "--connect-only": let (a, p) = target(value); mode = .connectOnly(a, p)
            case "--expect-reject": let (a, p) = target(value); mode = .expectReject(a, p)
            case "--messages-client": let (a, p) = target(value); mode = .messagesClient(a, p)
            case "--messages-server": mode = .messagesServer(UInt16(value) ?? 7174)
            case "--idle": mode = .idle(Double(value) ?? 10)
            case "--api-client": let (a, p) = target(value); mode = .apiClient("\(a)", p)
            case "--api-server": mode = .apiServer(UInt16(value) ?? 7174)
            case "--count": count = Int(value) ?? count
            case "--size": size = min(max(Int(value) ?? size, 1), 4096)
            case "--timeout": seconds = Double(value) ?? seconds
            case "--capture": capture = value
            case "--udp-port": udpPort = UInt16(value) ?? udpPort   // RoCEv2's 4791 unless testing on loopback
            default: fail("unknown option \(flag) (see the comment at the top of main.swift)")
            }
        }
        guard !address.isEmpty, mode != nil else {
            fail("usage: rdma-cm-interop --soft ADDRESS (--rping-client|--messages-client|--api-client|--connect-only|--expect-reject HOST[:PORT] | --rping-server|--messages-server|--api-server PORT | --idle SECONDS) [--count N] [--size B] [--timeout S] [--capture PCAP] [--udp-port P]")
        }
    }
}

func fail(_ message: String) -> Never {
    let line = Array("rdma-cm-interop: \(message)\n".utf8)
    _ = write(2, line, line.count)
    exit(2)
}

struct Failure: Error, CustomStringConvertible { var description: String }

/// The engine, its CM, one RC QP and the four rping buffers in one registered region.
final class Peer {
    let device: SoftDevice
    let manager: SoftConnectionManager
    let cq: SoftCompletionQueue
    let qp: SoftQueuePair
    let memory: UnsafeMutableRawBufferPointer
    let region: SoftMemoryRegion
    let size: Int
    let deadline: UInt64
    var events: [SoftConnectionEvent] = []
    var completions: [SoftCompletion] = []
    // Offsets in `memory`: receive 16 B, send 16 B, start buffer, sink (rdma) buffer.
    let receiveOffset = 0, sendOffset = 64, startOffset = 4096
    var sinkOffset: Int { startOffset + ((size + 4095) & ~4095) }

    init(_ arguments: Arguments) throws {
        var configuration = SoftDeviceConfiguration(address: arguments.address, port: arguments.udpPort)
        if let path = arguments.capture { configuration.capture = PacketCapture(path: path) }
        device = try SoftDevice(configuration: configuration)
        manager = try SoftConnectionManager(device: device)
        size = arguments.size
        memory = .allocate(byteCount: 4096 + 2 * ((size + 4095) & ~4095), alignment: 4096)
        memory.initializeMemory(as: UInt8.self, repeating: 0)
        let domain = device.allocateProtectionDomain()
        region = try device.registerMemory(domain: domain, bytes: memory, access: [.localWrite, .remoteRead, .remoteWrite])
        cq = device.createCompletionQueue(capacity: 64, channel: nil)
        qp = try device.createQueuePair(domain: domain, type: .reliableConnected, sendQueue: cq, receiveQueue: cq, sharedReceiveQueue: nil,
                                        signalAll: true, sendCapacity: 64, receiveCapacity: 64, maxScatterGather: 1, maxInline: 0)
        deadline = EngineClock.monotonicNanoseconds() + UInt64(arguments.seconds * 1e9)
    }

    func address(_ offset: Int) -> UInt64 { UInt64(UInt(bitPattern: memory.baseAddress!)) + UInt64(offset) }

    func element(_ offset: Int, _ length: Int) -> SoftScatterGather {
        SoftScatterGather(address: address(offset), length: UInt32(length), lkey: region.lkey)
    }

    func postReceive() throws {
        try withUnsafePointer(to: element(receiveOffset, 16)) { try device.postReceive(qp, id: 1, UnsafeBufferPointer(start: $0, count: 1)) }
    }

    func post(_ request: SoftSendRequest, _ element: SoftScatterGather) throws {
        try withUnsafePointer(to: element) { try device.postSend(qp, request, UnsafeBufferPointer(start: $0, count: 1)) }
    }

    /// rping's `struct rping_rdma_info`: buf (8), rkey (4), size (4), big-endian.
    func sendInfo(buffer offset: Int) throws {
        let info = memory.baseAddress! + sendOffset
        info.storeBytes(of: address(offset).bigEndian, as: UInt64.self)
        info.storeBytes(of: region.rkey.bigEndian, toByteOffset: 8, as: UInt32.self)
        info.storeBytes(of: UInt32(size).bigEndian, toByteOffset: 12, as: UInt32.self)
        try post(SoftSendRequest(id: 2), element(sendOffset, 16))
    }

    func receivedInfo() -> (address: UInt64, rkey: UInt32, length: UInt32) {
        let info = UnsafeRawPointer(memory.baseAddress! + receiveOffset)
        return (UInt64(bigEndian: info.loadUnaligned(as: UInt64.self)), UInt32(bigEndian: info.loadUnaligned(fromByteOffset: 8, as: UInt32.self)),
                UInt32(bigEndian: info.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
    }

    /// Drives the engine until `condition` holds; throws at the deadline or on a failed completion.
    func wait(_ what: String, until condition: (Peer) -> Bool) throws {
        let buffer = UnsafeMutableBufferPointer<SoftCompletion>.allocate(capacity: 16)
        defer { buffer.deallocate() }
        while !condition(self) {
            guard EngineClock.monotonicNanoseconds() < deadline else { throw Failure(description: "timed out waiting for \(what)") }
            let count = device.poll(cq, into: buffer)
            for completion in buffer[0..<count] {
                guard completion.status == .success || completion.status == .flushed else {
                    throw Failure(description: "work completion \(completion.status) (opcode \(completion.opcode)) while waiting for \(what)")
                }
                if completion.status == .success { completions.append(completion) }
            }
            while let event = manager.nextEvent() {
                print("event \(event.kind) id \(event.id) peer \(event.peer.map { "\($0)" } ?? "-"):\(event.peerPort) status \(event.status)"
                      + (event.rejectReason.map { " reason \($0)" } ?? ""))
                events.append(event)
            }
            if count == 0 { var descriptor = pollfd(fd: manager.eventFileDescriptor, events: Int16(POLLIN), revents: 0); _ = poll(&descriptor, 1, 1) }
        }
    }

    func event(_ kind: SoftConnectionEventKind) -> SoftConnectionEvent? { events.first { $0.kind == kind } }

    func waitEvent(_ kind: SoftConnectionEventKind) throws -> SoftConnectionEvent {
        try wait("\(kind)") { $0.event(kind) != nil || $0.events.contains { [.rejected, .unreachable, .connectError].contains($0.kind) } }
        guard let event = event(kind) else { throw Failure(description: "expected \(kind), got \(events.map(\.kind))") }
        return event
    }

    /// Takes the oldest successful completion of `opcode`.
    func waitCompletion(_ opcode: SoftCompletionOpcode) throws -> SoftCompletion {
        try wait("a \(opcode) completion") { peer in peer.completions.contains { $0.opcode == opcode } || peer.event(.disconnected) != nil }
        guard let index = completions.firstIndex(where: { $0.opcode == opcode }) else { throw Failure(description: "disconnected while waiting for \(opcode)") }
        return completions.remove(at: index)
    }

    func fillStart(ping: Int) {
        let text = Array("rdma-ping-\(ping): ".utf8)
        var character = UInt8(65 + ping % 58)
        for index in 0..<size {
            memory[startOffset + index] = index < text.count ? text[index] : character
            if index >= text.count { character = character >= 122 ? 65 : character + 1 }
        }
        memory[startOffset + size - 1] = 0
    }
}

func rpingClient(_ peer: Peer, to address: SoftAddress, port: UInt16, count: Int) throws {
    let id = try peer.manager.connect(queuePair: peer.qp, to: address, port: port, privateData: [],
                                      parameters: SoftConnectionParameters(responderResources: 1, initiatorDepth: 1, retryCount: 7, rnrRetryCount: 7),
                                      timeout: .seconds(30))
    try peer.postReceive()
    _ = try peer.waitEvent(.established)
    print("PASS engine → rping server: connected (REQ, REP, RTU)")
    for ping in 0..<count {
        peer.fillStart(ping: ping)
        try peer.sendInfo(buffer: peer.startOffset)
        _ = try peer.waitCompletion(.receive)          // go ahead: the server read our start buffer
        try peer.postReceive()
        try peer.sendInfo(buffer: peer.sinkOffset)
        _ = try peer.waitCompletion(.receive)          // go ahead: the server wrote our sink buffer
        try peer.postReceive()
        let start = peer.memory[peer.startOffset..<peer.startOffset + peer.size]
        let sink = peer.memory[peer.sinkOffset..<peer.sinkOffset + peer.size]
        guard start.elementsEqual(sink) else { throw Failure(description: "ping \(ping): the data written back differs from the data read") }
        memset(peer.memory.baseAddress! + peer.sinkOffset, 0, peer.size)
    }
    print("PASS engine → rping server: \(count) pings of \(peer.size) B, every byte verified")
    try peer.manager.disconnect(id)
    _ = try peer.waitEvent(.disconnected)
    print("PASS engine → rping server: disconnected (DREQ, DREP)")
}

func rpingServer(_ peer: Peer, port: UInt16) throws {
    let listener = try peer.manager.listen(address: nil, port: port, backlog: 4)
    let request = try peer.waitEvent(.connectRequest)
    try peer.manager.accept(request.id, queuePair: peer.qp, privateData: [],
                            parameters: SoftConnectionParameters(responderResources: request.parameters?.initiatorDepth ?? 1,
                                                                 initiatorDepth: request.parameters?.responderResources ?? 1,
                                                                 retryCount: 7, rnrRetryCount: 7))
    try peer.postReceive()
    _ = try peer.waitEvent(.established)
    print("PASS rping client → engine: connected (REQ, REP, RTU)")
    var pings = 0
    while true {
        try peer.wait("the client's start buffer or its disconnect") { $0.completions.contains { $0.opcode == .receive } || $0.event(.disconnected) != nil }
        if peer.event(.disconnected) != nil && !peer.completions.contains(where: { $0.opcode == .receive }) { break }
        _ = try peer.waitCompletion(.receive)
        let source = peer.receivedInfo()
        try peer.postReceive()
        let length = min(Int(source.length), peer.size)
        try peer.post(SoftSendRequest(id: 3, opcode: .read, remoteAddress: source.address, remoteKey: source.rkey), peer.element(peer.sinkOffset, length))
        _ = try peer.waitCompletion(.rdmaRead)
        try peer.post(SoftSendRequest(id: 4), peer.element(peer.sendOffset, 16))          // go ahead
        _ = try peer.waitCompletion(.receive)
        let sink = peer.receivedInfo()
        try peer.postReceive()
        let text = peer.memory[peer.sinkOffset..<peer.sinkOffset + length]
        let written = (text.firstIndex(of: 0).map { $0 - peer.sinkOffset } ?? length - 1) + 1   // strlen + 1, as rping
        try peer.post(SoftSendRequest(id: 5, opcode: .write, remoteAddress: sink.address, remoteKey: sink.rkey), peer.element(peer.sinkOffset, written))
        _ = try peer.waitCompletion(.rdmaWrite)
        try peer.post(SoftSendRequest(id: 6), peer.element(peer.sendOffset, 16))          // go ahead
        pings += 1
    }
    print("PASS rping client → engine: \(pings) pings served (RDMA READ of the client's data, RDMA WRITE back)")
    print("PASS rping client → engine: the client's disconnect arrived (DREQ answered with DREP)")
    peer.manager.destroy(listener)
}

/// ucmatose's and rdma_client/rdma_server's exchange: COUNT SENDs each way of SIZE bytes.
func exchangeMessages(_ peer: Peer, count: Int, size: Int) throws {
    let length = min(size, 4096)
    for _ in 0..<count { try peer.post(SoftSendRequest(id: 9), peer.element(peer.startOffset, length)) }
    var sends = 0, receives = 0
    while sends < count || receives < count {
        let completion = try peer.waitCompletion(receives < count && sends >= count ? .receive : .send)
        if completion.opcode == .receive { receives += 1 } else { sends += 1 }
        while let index = peer.completions.firstIndex(where: { $0.opcode == .receive }), receives < count {
            peer.completions.remove(at: index)
            receives += 1
        }
    }
}

func postMessageReceives(_ peer: Peer, count: Int, size: Int) throws {
    for index in 0..<count {
        try withUnsafePointer(to: peer.element(peer.sinkOffset, min(max(size, 16), 4096))) {
            try peer.device.postReceive(peer.qp, id: UInt64(100 + index), UnsafeBufferPointer(start: $0, count: 1))
        }
    }
}

func messagesClient(_ peer: Peer, to address: SoftAddress, port: UInt16, count: Int) throws {
    let id = try peer.manager.connect(queuePair: peer.qp, to: address, port: port, privateData: [], parameters: SoftConnectionParameters(), timeout: .seconds(30))
    try postMessageReceives(peer, count: count, size: peer.size)
    _ = try peer.waitEvent(.established)
    print("PASS engine → \(address):\(port): connected (REQ, REP, RTU)")
    try exchangeMessages(peer, count: count, size: peer.size)
    print("PASS engine → \(address):\(port): \(count) SENDs of \(peer.size) B each way")
    try peer.manager.disconnect(id)
    _ = try peer.waitEvent(.disconnected)
    print("PASS engine → \(address):\(port): disconnected (DREQ, DREP)")
}

func messagesServer(_ peer: Peer, port: UInt16, count: Int) throws {
    let listener = try peer.manager.listen(address: nil, port: port, backlog: 4)
    let request = try peer.waitEvent(.connectRequest)
    try peer.manager.accept(request.id, queuePair: peer.qp, privateData: [], parameters: SoftConnectionParameters())
    try postMessageReceives(peer, count: count, size: peer.size)
    _ = try peer.waitEvent(.established)
    print("PASS \(request.peer.map { "\($0)" } ?? "?") → engine: connected (REQ, REP, RTU)")
    try exchangeMessages(peer, count: count, size: peer.size)
    print("PASS \(request.peer.map { "\($0)" } ?? "?") → engine: \(count) SENDs of \(peer.size) B each way")
    // ucmatose's server disconnects and its client waits for that; rdma_client disconnects
    // itself: disconnect unless the client already did, then wait for DISCONNECTED.
    if peer.event(.disconnected) == nil { try? peer.manager.disconnect(request.id) }
    _ = try peer.waitEvent(.disconnected)
    print("PASS \(request.peer.map { "\($0)" } ?? "?") → engine: disconnected (DREQ, DREP)")
    peer.manager.destroy(listener)
}

func idle(_ peer: Peer, seconds: Double) throws {
    let end = EngineClock.monotonicNanoseconds() + UInt64(seconds * 1e9)
    try? peer.wait("\(seconds) s to pass") { _ in EngineClock.monotonicNanoseconds() >= end }
    let counters = peer.device.snapshotCounters()
    print("PASS idle \(seconds) s with no listener: \(counters.managementReceived) CM MADs received, \(counters.managementSent) sent (REJs)")
}

func connectOnly(_ peer: Peer, to address: SoftAddress, port: UInt16) throws {
    let id = try peer.manager.connect(queuePair: peer.qp, to: address, port: port, privateData: Array("hello".utf8),
                                      parameters: SoftConnectionParameters(), timeout: .seconds(30))
    _ = try peer.waitEvent(.established)
    print("PASS engine → \(address):\(port): connected (REQ, REP, RTU)")
    try peer.manager.disconnect(id)
    _ = try peer.waitEvent(.disconnected)
    print("PASS engine → \(address):\(port): disconnected (DREQ, DREP)")
}

func expectReject(_ peer: Peer, to address: SoftAddress, port: UInt16) throws {
    _ = try peer.manager.connect(queuePair: peer.qp, to: address, port: port, privateData: [], parameters: SoftConnectionParameters(), timeout: .seconds(30))
    try peer.wait("REJ") { $0.event(.rejected) != nil || $0.event(.unreachable) != nil || $0.event(.established) != nil }
    guard let reject = peer.event(.rejected), reject.rejectReason == .invalidServiceID else {
        throw Failure(description: "expected REJ reason 8, got \(peer.events.map { "\($0.kind) \($0.rejectReason.map { "\($0)" } ?? "")" })")
    }
    print("PASS engine → \(address):\(port) (no listener): REJ reason \(reject.rejectReason!)")
}

let arguments = Arguments()
var failed = false
switch arguments.mode! {
case .apiClient(let host, let port):
    do { try await publicAPIClient(arguments, host: host, port: port) } catch { print("FAIL \(error)"); failed = true }
    exit(failed ? 1 : 0)
case .apiServer(let port):
    do { try await publicAPIServer(arguments, port: port) } catch { print("FAIL \(error)"); failed = true }
    exit(failed ? 1 : 0)
default:
    break
}
do {
    let peer = try Peer(arguments)
    defer {
        let wanted = Set(["soft_cm_mads_rcvd", "soft_cm_mads_sent", "soft_cm_bad_mad", "soft_cm_bad_qkey", "soft_cm_unmatched",
                          "soft_cm_duplicate", "soft_cm_retransmit", "soft_cm_timeout", "soft_icrc_err", "soft_malformed", "rcvd_pkts", "sent_pkts"])
        print("ENGINE-COUNTERS " + peer.device.snapshotCounters().named.filter { wanted.contains($0.name) }.map { "\($0.name) \($0.value)" }.joined(separator: " "))
        peer.device.close()
    }
    do {
        switch arguments.mode! {
        case .rpingClient(let address, let port): try rpingClient(peer, to: address, port: port, count: arguments.count)
        case .rpingServer(let port): try rpingServer(peer, port: port)
        case .connectOnly(let address, let port): try connectOnly(peer, to: address, port: port)
        case .expectReject(let address, let port): try expectReject(peer, to: address, port: port)
        case .messagesClient(let address, let port): try messagesClient(peer, to: address, port: port, count: arguments.count)
        case .messagesServer(let port): try messagesServer(peer, port: port, count: arguments.count)
        case .idle(let seconds): try idle(peer, seconds: seconds)
        case .apiClient, .apiServer: break
        }
    } catch {
        print("FAIL \(error)")
        failed = true
    }
} catch {
    print("FAIL cannot open the engine on \(arguments.address): \(error)")
    failed = true
}
exit(failed ? 1 : 0)
