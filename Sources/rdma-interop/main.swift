// rdma-interop: one RC peer of an interoperability matrix. Run it on two backends — the
// userspace engine (`--soft ADDR`) and a verbs device such as kernel rxe (`-d rxe0`) — and
// each side in turn is the requester of every case while the other verifies every byte:
// SEND, SEND with immediate, WRITE, WRITE with immediate, READ at 1 B, MTU−1, MTU, MTU+1 and
// 1 MiB; CAS and FAA; at path MTU 1024 and 4096; then a WRITE with a wrong rkey, which must
// complete with REM_ACCESS_ERR; then UD SENDs of 1 and 1,000 B each way through an address
// handle (the receiver checks the GRH flag, 40 + n bytes, the source QPN and the payload). The server listens on TCP, the client connects; every wait is
// bounded. Prints one PASS/FAIL line per case and direction; exits 1 if any failed.
//
//   rdma-interop -d rxe0 --name rxe --listen 18600                   # inside the lab guest
//   rdma-interop --soft 10.239.0.1 --name engine --connect 10.239.0.2:18600
//   rdma-interop --soft 10.239.0.1 --name engine --faults 0.02:0.01 --connect …   # 2 % of the
//       engine's packets dropped, 1 % corrupted after the ICRC: the peer must recover both
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RDMA

struct Arguments {
    var device: String?, soft: String?, name = "peer", listen: UInt16?, connect: String?
    var faults = SoftFaultInjection.none
    init() {
        var it = CommandLine.arguments.dropFirst().makeIterator()
        while let flag = it.next() {
            let value = it.next() ?? ""
            switch flag {
            case "-d": device = value
            case "--soft": soft = value
            case "--name": name = value
            case "--listen": listen = UInt16(value)
            case "--connect": connect = value
            case "--faults":
                let parts = value.split(separator: ":").compactMap { Double($0) }
                guard parts.count == 2, parts.allSatisfy({ (0...0.5).contains($0) }) else { fail("--faults wants DROP:CORRUPT, each 0…0.5, got \(value)") }
                faults = SoftFaultInjection(seed: 7, drop: parts[0], corrupt: parts[1])
            default: fail("unknown option \(flag) (see the comment at the top of main.swift)")
            }
        }
        if (device == nil) == (soft == nil) || (listen == nil) == (connect == nil) {
            fail("usage: rdma-interop (-d DEVICE | --soft ADDRESS) --name NAME (--listen PORT | --connect HOST:PORT)")
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("rdma-interop: \(message)\n".utf8))
    exit(2)
}

/// A line-oriented TCP control channel; every read waits at most `seconds`.
final class Control {
    let fd: Int32
    var pending = [UInt8]()
    init(listen port: UInt16) {
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var on: Int32 = 1
        setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &on, 4)
        var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: port.bigEndian, sin_addr: in_addr(s_addr: 0), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, Glibc.listen(server, 1) == 0 else { fail("cannot listen on TCP port \(port): errno \(errno)") }
        var waiter = pollfd(fd: server, events: Int16(POLLIN), revents: 0)
        guard poll(&waiter, 1, 180_000) == 1 else { fail("no peer connected to TCP port \(port) within 180 s") }
        fd = accept(server, nil, nil)
        close(server)
    }
    init(connect target: String) {
        let parts = target.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { fail("--connect wants HOST:PORT, got \(target)") }
        var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: port.bigEndian, sin_addr: in_addr(s_addr: 0), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        inet_pton(AF_INET, String(parts[0]), &address.sin_addr)
        for _ in 0..<180 {
            let candidate = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(candidate, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if connected == 0 { fd = candidate; return }
            close(candidate)
            sleep(1)
        }
        fail("cannot reach \(target) within 180 s")
    }
    func send(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { fail("control channel: write failed") }
    }
    func receive(seconds: Int32 = 60) -> String {
        while true {
            if let newline = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeFirst(newline + 1)
                return line
            }
            var waiter = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&waiter, 1, seconds * 1000) == 1 else { fail("control channel: nothing from the peer within \(seconds) s") }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = read(fd, &chunk, chunk.count)
            guard count > 0, pending.count < 1 << 20 else { fail("control channel: the peer closed it") }
            pending += chunk[..<count]
        }
    }
}

enum Operation: String, CaseIterable { case send, sendImmediate = "send-imm", write, writeImmediate = "write-imm", read, compareAndSwap = "cas", fetchAndAdd = "faa" }
struct Case { var operation: Operation; var size: Int; var index: Int }

func cases(mtu: Int) -> [Case] {
    var list = [Case]()
    for size in [1, mtu - 1, mtu, mtu + 1, 1 << 20] {
        for operation in [Operation.send, .sendImmediate, .write, .writeImmediate, .read] { list.append(Case(operation: operation, size: size, index: list.count)) }
    }
    list.append(Case(operation: .compareAndSwap, size: 8, index: list.count))
    list.append(Case(operation: .fetchAndAdd, size: 8, index: list.count))
    return list
}

func pattern(_ index: Int, _ offset: Int) -> UInt8 { UInt8(truncatingIfNeeded: offset &* 31 &+ index &* 7 &+ 1) }
let target = 2 << 20, atomicTarget = 3 << 20, regionLength = 4 << 20

/// One RC queue pair and the region both directions use.
final class Peer {
    let queue: CompletionQueue, pair: QueuePair, region: MemoryRegion
    init(_ domain: ProtectionDomain, _ context: Context, kind: QueuePairKind = .reliableConnected) throws {
        queue = try CompletionQueue(context: context, minimumEntries: 64)
        pair = try QueuePair(protectionDomain: domain, kind: kind, sendCompletionQueue: queue, receiveCompletionQueue: queue)
        region = try MemoryRegion(protectionDomain: domain, length: regionLength, access: .allRemote)
    }
    func close() {
        try? pair.close()
        try? queue.close()
        try? region.close()
    }
    var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: UInt(region.address)), count: region.length) }
    func one(_ what: String) throws -> WorkCompletion {
        let got = try queue.waitForCompletions(count: 1, timeout: .seconds(20))
        guard let completion = got.first else { throw InteropError("no completion for \(what) within 20 s") }
        return completion
    }
}
struct InteropError: Error, CustomStringConvertible { var description: String; init(_ text: String) { description = text } }

/// The requester's half of one case; nil when it passed.
func request(_ c: Case, on peer: Peer, remote: RemoteMemory, control: Control) -> String? {
    control.send("CASE \(c.index)")
    guard control.receive() == "READY \(c.index)" else { return "the peer did not get ready" }
    let bytes = peer.bytes
    for i in 0..<c.size { bytes[i] = c.operation == .read ? 0 : pattern(c.index, i) }
    let remoteTarget = RemoteMemory(address: remote.address + UInt64(target), rkey: remote.rkey, length: UInt32(c.size))
    let remoteAtomic = RemoteMemory(address: remote.address + UInt64(atomicTarget), rkey: remote.rkey, length: 8)
    let operation: SendOperation = switch c.operation {
    case .send: .send
    case .sendImmediate: .sendWithImmediate(UInt32(0xA000 + c.index))
    case .write: .write(remoteTarget)
    case .writeImmediate: .writeWithImmediate(remoteTarget, immediate: UInt32(0xB000 + c.index))
    case .read: .read(remoteTarget)
    case .compareAndSwap: .compareAndSwap(remoteAtomic, compare: 0x1111, swap: 0x2222)
    case .fetchAndAdd: .fetchAndAdd(remoteAtomic, add: 5)
    }
    do {
        try peer.pair.post(SendWorkRequest(id: UInt64(c.index), operation: operation), scatterGather: peer.region.scatterGather(length: c.size))
        let completion = try peer.one("\(c.operation.rawValue) \(c.size) B")
        guard completion.status == .success else { return "completion status \(completion.status)" }
    } catch { return "\(error)" }
    switch c.operation {
    case .read:
        if let bad = (0..<c.size).first(where: { bytes[$0] != pattern(c.index, $0) }) { return "READ data differs at byte \(bad)" }
    case .compareAndSwap:
        if bytes.load(as: UInt64.self) != 0x1111 { return "CAS returned \(bytes.load(as: UInt64.self)), expected 0x1111" }
    case .fetchAndAdd:
        if bytes.load(as: UInt64.self) != 0x2222 { return "FAA returned \(bytes.load(as: UInt64.self)), expected 0x2222" }
    default: break
    }
    control.send("CHECK \(c.index)")
    let verdict = control.receive()
    return verdict == "OK \(c.index)" ? nil : verdict
}

/// The responder's half: prepare (receive posted, memory set), then verify what arrived.
func respond(_ c: Case, on peer: Peer, control: Control) {
    let bytes = peer.bytes
    switch c.operation {
    case .send, .sendImmediate, .writeImmediate:
        for i in 0..<c.size { bytes[target + i] = 0 }
        do { try peer.pair.postReceive(id: UInt64(c.index), scatterGather: peer.region.scatterGather(offset: target, length: (1 << 20) + 4096)) }
        catch { control.send("FAIL \(c.index) post receive: \(error)"); return }
    case .write: for i in 0..<c.size { bytes[target + i] = 0 }
    case .read: for i in 0..<c.size { bytes[target + i] = pattern(c.index, i) }
    case .compareAndSwap: bytes.storeBytes(of: UInt64(0x1111), toByteOffset: atomicTarget, as: UInt64.self)
    case .fetchAndAdd: break
    }
    control.send("READY \(c.index)")
    guard control.receive(seconds: 60) == "CHECK \(c.index)" else { return }
    var problem: String?
    if [.send, .sendImmediate, .writeImmediate].contains(c.operation) {
        do {
            let completion = try peer.one("the receive")
            let immediate: UInt32? = c.operation == .sendImmediate ? UInt32(0xA000 + c.index) : c.operation == .writeImmediate ? UInt32(0xB000 + c.index) : nil
            if completion.status != .success { problem = "receive status \(completion.status)" }
            else if Int(completion.byteLength) != c.size { problem = "receive length \(completion.byteLength), sent \(c.size)" }
            else if completion.immediateData != immediate { problem = "immediate \(String(describing: completion.immediateData)), expected \(String(describing: immediate))" }
        } catch { problem = "\(error)" }
    }
    if problem == nil, c.operation != .read, c.operation != .compareAndSwap, c.operation != .fetchAndAdd,
       let bad = (0..<c.size).first(where: { bytes[target + $0] != pattern(c.index, $0) }) {
        problem = "data differs at byte \(bad)"
    }
    if problem == nil, c.operation == .compareAndSwap, bytes.load(fromByteOffset: atomicTarget, as: UInt64.self) != 0x2222 { problem = "CAS did not swap" }
    if problem == nil, c.operation == .fetchAndAdd, bytes.load(fromByteOffset: atomicTarget, as: UInt64.self) != 0x2222 + 5 { problem = "FAA did not add" }
    control.send(problem.map { "FAIL \(c.index) \($0)" } ?? "OK \(c.index)")
}

/// UD both ways: each side in turn sends two datagrams that the other verifies.
@MainActor func datagrams(domain: ProtectionDomain) throws -> Int {
    let peer = try Peer(domain, context, kind: .unreliableDatagram)
    defer { peer.close() }
    let local = try peer.pair.localEndpoint(gidIndex: gid, psn: 0x2000)
    try peer.pair.connect(to: local, local: local, options: ConnectionOptions(gidIndex: UInt8(gid)))
    control.send("UD " + String(decoding: try encoder.encode(local), as: UTF8.self))
    let line = control.receive()
    guard line.hasPrefix("UD ") else { fail("bad UD endpoint line from the peer") }
    let theirs = try decoder.decode(Endpoint.self, from: Data(line.dropFirst(3).utf8))
    let handle = try AddressHandle(protectionDomain: domain, addressVector: AddressVector(destinationGID: theirs.gid, sourceGIDIndex: UInt8(gid), port: 1))
    defer { try? handle.close() }
    var failed = 0
    for requesterIsServer in [false, true] {
        for (index, size) in [1, 1000].enumerated() {
            if requesterIsServer == isServer {
                control.send("UDCASE \(index)")
                guard control.receive() == "READY \(index)" else { fail("the peer's UD matrix is out of step") }
                for i in 0..<size { peer.bytes[i] = pattern(100 + index, i) }
                var problem: String?
                do {
                    let destination = DatagramDestination(addressHandle: handle, remoteQueuePairNumber: theirs.queuePairNumber, remoteQKey: 0x1111_1111)
                    try peer.pair.post(SendWorkRequest(id: UInt64(index), datagram: destination), scatterGather: peer.region.scatterGather(length: size))
                    let completion = try peer.one("the UD send")
                    if completion.status != .success { problem = "send status \(completion.status)" }
                } catch { problem = "\(error)" }
                control.send("CHECK \(index)")
                let verdict = control.receive()
                if problem == nil, verdict != "OK \(index)" { problem = verdict }
                if problem != nil { failed += 1 }
                print("\(problem == nil ? "PASS" : "FAIL") \(arguments.name) → \(peerName) UD send \(size) B\(problem.map { ": \($0)" } ?? "")")
            } else {
                guard control.receive() == "UDCASE \(index)" else { fail("the peer's UD matrix is out of step") }
                try peer.pair.postReceive(id: UInt64(index), scatterGather: peer.region.scatterGather(offset: target, length: 40 + 1024))
                control.send("READY \(index)")
                guard control.receive() == "CHECK \(index)" else { fail("the peer's UD matrix is out of step") }
                var problem: String?
                do {
                    let completion = try peer.one("the UD receive")
                    if completion.status != .success { problem = "receive status \(completion.status)" }
                    else if !completion.hasGlobalRouteHeader { problem = "no GRH flag" }
                    else if Int(completion.byteLength) != 40 + size { problem = "length \(completion.byteLength), expected \(40 + size)" }
                    else if completion.sourceQueuePairNumber != theirs.queuePairNumber { problem = "source QPN \(completion.sourceQueuePairNumber)" }
                    else if let bad = (0..<size).first(where: { peer.bytes[target + 40 + $0] != pattern(100 + index, $0) }) { problem = "data differs at byte \(bad)" }
                } catch { problem = "\(error)" }
                control.send(problem.map { "FAIL \(index) \($0)" } ?? "OK \(index)")
            }
        }
    }
    return failed
}

let arguments = Arguments()
let context: Context
do { context = try arguments.soft.map { try Context(soft: SoftDeviceConfiguration(address: $0, port: 4791, faults: arguments.faults)) } ?? Context(deviceNamed: arguments.device!) }
catch { fail("cannot open the device: \(error)") }
// The engine progresses only when driven: while this side waits on the control channel,
// a background thread answers the peer's packets (kernel rxe needs no such help).
context.startBackgroundProgress()
let gid = (try? context.preferredRoCEv2GID(port: 1))?.index ?? 0
let control = arguments.listen.map { Control(listen: $0) } ?? Control(connect: arguments.connect!)
control.send("NAME \(arguments.name)")
let peerName = String(control.receive().dropFirst(5))
let isServer = arguments.listen != nil
var failures = 0
let encoder = JSONEncoder(), decoder = JSONDecoder()

do {
    let domain = try ProtectionDomain(context: context)
    for mtu in [1024, 4096] {
        // Three QPs per MTU: the matrix, and one spare each for the wrong-rkey case (an
        // access error moves both ends of a QP to ERROR).
        let peers = try (0..<3).map { _ in try Peer(domain, context) }
        for (index, peer) in peers.enumerated() {
            let local = try peer.pair.localEndpoint(gidIndex: gid, psn: UInt32(0x1000 + index))
            control.send("EP " + String(decoding: try encoder.encode(local), as: UTF8.self) + " " + String(decoding: try encoder.encode(peer.region.remoteDescriptor), as: UTF8.self))
        }
        var remotes = [RemoteMemory]()
        for (index, peer) in peers.enumerated() {
            let words = control.receive().split(separator: " ", maxSplits: 2)
            guard words.count == 3 else { fail("bad endpoint line from the peer") }
            let theirs = try decoder.decode(Endpoint.self, from: Data(words[1].utf8))
            remotes.append(try decoder.decode(RemoteMemory.self, from: Data(words[2].utf8)))
            let mine = try peer.pair.localEndpoint(gidIndex: gid, psn: UInt32(0x1000 + index))
            try peer.pair.connect(to: theirs, local: mine, options: ConnectionOptions(gidIndex: UInt8(gid), pathMTU: PathMTU(bytes: mtu)))
        }
        for requesterIsServer in [false, true] {
            let iRequest = requesterIsServer == isServer
            for c in cases(mtu: mtu) {
                if iRequest {
                    let problem = request(c, on: peers[0], remote: remotes[0], control: control)
                    if problem != nil { failures += 1 }
                    print("\(problem == nil ? "PASS" : "FAIL") \(arguments.name) → \(peerName) MTU \(mtu) \(c.operation.rawValue) \(c.size) B\(problem.map { ": \($0)" } ?? "")")
                } else {
                    guard control.receive() == "CASE \(c.index)" else { fail("the peer's matrix is out of step") }
                    respond(c, on: peers[0], control: control)
                }
            }
            // Wrong rkey: on the spare QP, the requester must see REM_ACCESS_ERR.
            let spare = requesterIsServer ? 2 : 1
            if iRequest {
                var wrong = remotes[spare]
                wrong.rkey ^= 0x8000_00FF
                var problem: String?
                do {
                    try peers[spare].pair.post(SendWorkRequest(id: 99, operation: .write(wrong)), scatterGather: peers[spare].region.scatterGather(length: 64))
                    let completion = try peers[spare].one("the wrong-rkey WRITE")
                    if completion.status != .remoteAccessError { problem = "status \(completion.status), expected REM_ACCESS_ERR" }
                } catch { problem = "\(error)" }
                if problem != nil { failures += 1 }
                print("\(problem == nil ? "PASS" : "FAIL") \(arguments.name) → \(peerName) MTU \(mtu) wrong rkey → REM_ACCESS_ERR\(problem.map { ": \($0)" } ?? "")")
                control.send("DONE")
            } else {
                _ = control.receive()
            }
        }
        peers.forEach { $0.close() }
    }
    // UD is unreliable by design: a lossy session checks RC recovery only.
    if arguments.faults == .none { failures += try datagrams(domain: domain) }
    if let counters = context.softCounters {
        // What the engine saw and did: rxe's peers of these counters are in its hw_counters.
        let wanted = ["sent_pkts", "rcvd_pkts", "duplicate_request", "out_of_seq_request", "rcvd_seq_err", "completer_retry_err",
                      "retry_exceeded_err", "soft_icrc_err", "soft_fault_drop", "soft_fault_corrupt", "soft_gso_sent", "soft_gso_rcvd"]
        print("ENGINE-COUNTERS " + counters.named.filter { wanted.contains($0.name) }.map { "\($0.name) \($0.value)" }.joined(separator: " "))
    }
    try domain.close()
    try context.close()
} catch { fail("\(error)") }
fflush(nil)   // every stream: the matrix lines must reach the pipe before exit
exit(failures == 0 ? 0 : 1)
