// rdma-cm-lab: the peers and checks of tools/cm-lab (kernel rxe, verbs backend).
//
//   rdma-cm-lab rping server --port 7174                 # answers rdma-core's `rping -c`
//   rdma-cm-lab rping client 10.0.0.1 --count 5          # pings rdma-core's `rping -s`
//   rdma-cm-lab ucmatose server --port 7471              # answers `ucmatose -s …`
//   rdma-cm-lab ucmatose client 10.0.0.1                 # talks to `ucmatose`
//   rdma-cm-lab cycles 10.0.0.1 --count 1000             # connect/disconnect through our
//                                                        # own listener; fds, RSS, QPs, cm ids
//   rdma-cm-lab cycles 127.0.0.2 --soft 127.0.0.1        # the same on the soft engine
// rping's protocol (librdmacm/examples/rping.c): per ping the client SENDs the address,
// rkey and length of its start buffer (16 bytes, big-endian); the server RDMA READs it
// and SENDs "go ahead"; the client SENDs its landing buffer's; the server RDMA WRITEs the
// text back (up to its NUL) and SENDs "go ahead"; the client compares. Every wait is
// bounded; a disconnection in the middle of a ping fails the wait with its reason.
// ucmatose's (librdmacm/examples/cmatose.c): each side posts -C receives of -S bytes before
// connecting; the server SENDs -C messages first, the client receives them all and SENDs
// as many back; then the server disconnects.
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import RDMA

@main
struct RDMACMLab: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rdma-cm-lab", abstract: "rdma_cm lab peers and checks.",
                                                    subcommands: [RPing.self, UCMATose.self, Cycles.self])
}

struct LabFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: rping

struct RPing: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rping", abstract: "rdma-core's rping protocol, either role.")

    @Argument(help: "server or client") var role: String
    @Argument(help: "The server's address (client).") var host: String?
    @Option(help: "Port (rping's default 7174).") var port: UInt16 = 7174
    @Option(help: "Pings (client); 0 with the server: until the client disconnects.") var count = 5
    @Option(help: "Ping size in bytes (rping's -S; 16…65536).") var size = 64
    @Option(help: "Seconds each wait may take.") var timeout = 10

    func run() async throws {
        guard (16...65536).contains(size) else { throw ValidationError("--size must be 16…65536") }
        let limit = Duration.seconds(timeout)
        if role == "server" {
            let listener = try ConnectionListener(address: .any(port: port))
            defer { try? listener.close() }
            print("rping server listening on \(listener.localAddress.map(String.init(describing:)) ?? "?")")
            let request = try await listener.nextRequest(timeout: limit)
            let side = try RPingSide(identifier: request.identifier, size: size)
            defer { side.close() }
            try side.postReceive()
            let connection = try await request.accept(queuePair: side.queuePair, timeout: limit)
            defer { try? connection.close() }
            let started = ContinuousClock.now
            let pings = try await side.serve(connection: connection, timeout: limit)
            print("rping server: \(pings) pings served in \(ContinuousClock.now - started); \(connection.disconnection?.hint ?? "ended")")
        } else if role == "client", let host {
            var side: RPingSide?
            defer { side?.close() }
            let connection = try await Connection.connect(to: host, port: port, timeout: limit) { identifier in
                let made = try RPingSide(identifier: identifier, size: size)
                side = made
                try made.postReceive()
                return made.queuePair
            }
            defer { try? connection.close() }
            try await side!.ping(connection: connection, count: count, timeout: limit)
            try await connection.disconnect(timeout: limit)
            print("rping client: \(count) pings verified")
        } else {
            throw ValidationError("role is server or client ADDRESS")
        }
    }
}

/// One side of rping: separate send and receive queues, a 16-byte message buffer each
/// way, and the ping buffers (client: start + landing; server: one READ/WRITE buffer).
final class RPingSide {
    let context: Context
    let domain: ProtectionDomain
    let sendQueue: CompletionQueue
    let receiveQueue: CompletionQueue
    let messages: MemoryRegion     // [0, 16): received, [16, 32): sent
    let start: MemoryRegion        // client: read by the server; server: READ target, WRITE source
    let landing: MemoryRegion      // client: written by the server
    let queuePair: QueuePair
    let size: Int

    init(identifier: ConnectionIdentifier, size: Int) throws {
        self.size = size
        context = try Context(deviceNamed: identifier.deviceName ?? "")
        domain = try ProtectionDomain(context: context)
        sendQueue = try CompletionQueue(context: context, minimumEntries: 8)
        receiveQueue = try CompletionQueue(context: context, minimumEntries: 8)
        messages = try MemoryRegion(protectionDomain: domain, length: 32, access: [.localWrite])
        start = try MemoryRegion(protectionDomain: domain, length: size, access: [.localWrite, .remoteRead])
        landing = try MemoryRegion(protectionDomain: domain, length: size, access: [.localWrite, .remoteWrite])
        queuePair = try identifier.createQueuePair(protectionDomain: domain, sendCompletionQueue: sendQueue,
                                                   receiveCompletionQueue: receiveQueue)
    }

    func postReceive() throws {
        try queuePair.postReceive(id: 1, scatterGather: messages.scatterGather(offset: 0, length: 16))
    }

    /// SENDs 16 bytes: an advertisement of `region` (client) or "go ahead" (server).
    func send(advertising region: MemoryRegion?, connection: Connection, timeout: Duration, what: String) async throws {
        var info = [UInt8](repeating: 0, count: 16)
        if let region {
            let fields = (region.address, region.rkey, UInt32(region.length))
            for index in 0..<8 { info[index] = UInt8(truncatingIfNeeded: fields.0 >> (56 - 8 * index)) }
            for index in 0..<4 { info[8 + index] = UInt8(truncatingIfNeeded: fields.1 >> (24 - 8 * index)) }
            for index in 0..<4 { info[12 + index] = UInt8(truncatingIfNeeded: fields.2 >> (24 - 8 * index)) }
        }
        UnsafeMutableRawBufferPointer(rebasing: messages.bytes[16..<32]).copyBytes(from: info)
        try queuePair.post(SendWorkRequest(id: 2), scatterGather: messages.scatterGather(offset: 16, length: 16))
        _ = try await completion(sendQueue, connection: connection, timeout: timeout, what: what)
    }

    /// The next 16-byte message (re-posting the receive): the advertised remote buffer.
    func receive(connection: Connection, timeout: Duration, what: String) async throws -> RemoteMemory {
        let done = try await completion(receiveQueue, connection: connection, timeout: timeout, what: what)
        guard done.byteLength == 16 else { throw LabFailure("\(what): a \(done.byteLength)-byte message, not rping's 16") }
        let bytes = Array(messages.bytes[0..<16])
        try postReceive()
        let address = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let rkey = bytes[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let length = bytes[12..<16].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return RemoteMemory(address: address, rkey: rkey, length: length)
    }

    /// Server: answer pings until the client disconnects between two of them.
    func serve(connection: Connection, timeout: Duration) async throws -> Int {
        var pings = 0
        while true {
            let source: RemoteMemory
            do {
                source = try await receive(connection: connection, timeout: timeout, what: "waiting for ping \(pings + 1)'s advertisement")
            } catch where connection.disconnection != nil {
                // rping's normal end (the client disconnects after its last ping), or the
                // client went away mid-run: either way the wait ends with the reason.
                print("rping server: waiting for ping \(pings + 1) ended: \(connection.disconnection!)")
                return pings
            }
            guard Int(source.length) <= size, source.length > 0 else {
                throw LabFailure("the client advertised \(source.length) bytes; our buffer is \(size) (give the same -S)")
            }
            try queuePair.post(SendWorkRequest(id: 3, operation: .read(source)), scatterGather: start.scatterGather(length: Int(source.length)))
            _ = try await completion(sendQueue, connection: connection, timeout: timeout, what: "RDMA READ of ping \(pings + 1)")
            try await send(advertising: nil, connection: connection, timeout: timeout, what: "go-ahead after the READ")
            let sink = try await receive(connection: connection, timeout: timeout, what: "waiting for ping \(pings + 1)'s landing buffer")
            let text = start.bytes.prefix(Int(source.length))
            let length = min((text.firstIndex(of: 0) ?? text.count - 1) + 1, Int(sink.length))
            try queuePair.post(SendWorkRequest(id: 4, operation: .write(sink)), scatterGather: start.scatterGather(length: length))
            _ = try await completion(sendQueue, connection: connection, timeout: timeout, what: "RDMA WRITE of ping \(pings + 1)")
            try await send(advertising: nil, connection: connection, timeout: timeout, what: "go-ahead after the WRITE")
            pings += 1
        }
    }

    /// Client: `count` pings, each verified byte for byte.
    func ping(connection: Connection, count: Int, timeout: Duration) async throws {
        for ping in 0..<count {
            let text = Array("rdma-ping-\(ping): ".utf8)
            var pattern = UInt8(65 + ping % 58)
            for index in 0..<size {
                if index < text.count { start.bytes[index] = text[index]; continue }
                start.bytes[index] = pattern
                pattern = pattern >= 122 ? 65 : pattern + 1
            }
            start.bytes[size - 1] = 0
            landing.bytes.initializeMemory(as: UInt8.self, repeating: 0)
            try await send(advertising: start, connection: connection, timeout: timeout, what: "ping \(ping)'s advertisement")
            _ = try await receive(connection: connection, timeout: timeout, what: "the server's go-ahead after its READ of ping \(ping)")
            try await send(advertising: landing, connection: connection, timeout: timeout, what: "ping \(ping)'s landing buffer")
            _ = try await receive(connection: connection, timeout: timeout, what: "the server's go-ahead after its WRITE of ping \(ping)")
            guard start.bytes.elementsEqual(landing.bytes) else { throw LabFailure("ping \(ping): data mismatch") }
        }
    }

    func close() {
        try? queuePair.close()
        try? context.close()
    }
}

/// One successful completion from `queue`, polled without blocking a thread (a short
/// sleep between empty polls) and bounded by `timeout`. A failed completion (the QP was
/// flushed) fails with why the connection ended.
func completion(_ queue: CompletionQueue, connection: Connection, timeout: Duration, what: String) async throws -> WorkCompletion {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let done = try queue.pollOne() {
            if done.status == .success { return done }
            let reason = try? await connection.waitForDisconnection(timeout: .seconds(2))
            throw LabFailure("\(what) failed: \(reason.map(String.init(describing:)) ?? "completion \(done)")")
        }
        try await Task.sleep(for: .microseconds(50))
    }
    throw LabFailure("\(what): nothing within \(timeout)")
}

// MARK: ucmatose

struct UCMATose: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ucmatose", abstract: "rdma-core's ucmatose protocol, either role.")

    @Argument(help: "server or client") var role: String
    @Argument(help: "The server's address (client).") var host: String?
    @Option(help: "Port (ucmatose's default 7471).") var port: UInt16 = 7471
    @Option(help: "Messages each way (ucmatose's -C, 1…1000).") var count = 10
    @Option(help: "Message size (ucmatose's -S, 1…65536).") var size = 100
    @Option(help: "Seconds each wait may take.") var timeout = 10

    func run() async throws {
        guard (1...1000).contains(count), (1...65536).contains(size) else { throw ValidationError("--count 1…1000, --size 1…65536") }
        let limit = Duration.seconds(timeout)
        var side: MessageSide?
        defer { side?.close() }
        let connection: Connection
        if role == "server" {
            let listener = try ConnectionListener(address: .any(port: port))
            defer { try? listener.close() }
            print("ucmatose server listening on \(listener.localAddress.map(String.init(describing:)) ?? "?")")
            let request = try await listener.nextRequest(timeout: limit)
            let made = try MessageSide(identifier: request.identifier, count: count, size: size)
            side = made
            connection = try await request.accept(queuePair: made.queuePair, timeout: limit)
        } else if role == "client", let host {
            connection = try await Connection.connect(to: host, port: port, timeout: limit) { identifier in
                let made = try MessageSide(identifier: identifier, count: count, size: size)
                side = made
                return made.queuePair
            }
        } else {
            throw ValidationError("role is server or client ADDRESS")
        }
        defer { try? connection.close() }
        if role == "server" {
            try await side!.send(connection: connection, timeout: limit)
            try await side!.receive(connection: connection, timeout: limit)
            try await connection.disconnect(timeout: limit)
        } else {
            try await side!.receive(connection: connection, timeout: limit)
            try await side!.send(connection: connection, timeout: limit)
            _ = try await connection.waitForDisconnection(timeout: limit)
        }
        print("ucmatose \(role): \(count) messages of \(size) B each way")
    }
}

/// One side of ucmatose: `count` receives posted before connecting, `count` sends.
final class MessageSide {
    let context: Context
    let sendQueue: CompletionQueue
    let receiveQueue: CompletionQueue
    let memory: MemoryRegion
    let queuePair: QueuePair
    let count: Int

    init(identifier: ConnectionIdentifier, count: Int, size: Int) throws {
        self.count = count
        context = try Context(deviceNamed: identifier.deviceName ?? "")
        let domain = try ProtectionDomain(context: context)
        sendQueue = try CompletionQueue(context: context, minimumEntries: count)
        receiveQueue = try CompletionQueue(context: context, minimumEntries: count)
        memory = try MemoryRegion(protectionDomain: domain, length: size, access: [.localWrite])
        let depth = UInt32(count)
        queuePair = try identifier.createQueuePair(protectionDomain: domain, sendCompletionQueue: sendQueue, receiveCompletionQueue: receiveQueue,
                                                   capabilities: QueuePairCapabilities(maxSendWorkRequests: depth, maxReceiveWorkRequests: depth))
        for index in 0..<count { try queuePair.postReceive(id: UInt64(index), scatterGather: memory.scatterGather()) }
    }

    func send(connection: Connection, timeout: Duration) async throws {
        for index in 0..<count { try queuePair.post(SendWorkRequest(id: UInt64(index)), scatterGather: memory.scatterGather()) }
        for index in 0..<count { _ = try await completion(sendQueue, connection: connection, timeout: timeout, what: "send \(index + 1) of \(count)") }
    }

    func receive(connection: Connection, timeout: Duration) async throws {
        for index in 0..<count { _ = try await completion(receiveQueue, connection: connection, timeout: timeout, what: "receive \(index + 1) of \(count)") }
    }

    func close() {
        try? queuePair.close()
        try? context.close()
    }
}

// MARK: cycles

struct Cycles: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Connect and disconnect through our own listener; check for growth.")

    @Argument(help: "An address of the RDMA device to listen and connect on.") var address: String
    @Option(help: "Port.") var port: UInt16 = 7790
    @Option(help: "Cycles after the warm-up.") var count = 1000
    @Option(help: "Seconds each step may take.") var timeout = 10
    @Option(help: ArgumentHelp("Run on the soft engine instead: the client's own address (e.g. 127.0.0.1 with 127.0.0.2 as the server's).",
                               valueName: "client-address"))
    var soft: String?
    @Option(help: "Live heap blocks the second half may gain (with tools/malloc-count.c preloaded).")
    var liveBlocksLimit = 256

    func run() async throws {
        guard (1...100_000).contains(count) else { throw ValidationError("--count must be 1…100000") }
        guard liveBlocksLimit >= 0 else { throw ValidationError("--live-blocks-limit must be 0 or more") }
        guard let server = ConnectionAddress(address, port: port) else { throw ValidationError("\(address) is not a numeric address") }
        // On the soft engine, two devices (one per address) sharing a UDP port, as two hosts would.
        let serverSoft = try soft.map { _ in try Context(soft: SoftDeviceConfiguration(address: address, port: 0)) }
        defer { try? serverSoft?.close() }
        let clientSoft = try soft.map { client in try Context(soft: SoftDeviceConfiguration(address: client, port: serverSoft?.softUDPPort ?? 0)) }
        defer { try? clientSoft?.close() }
        let listener = try ConnectionListener(address: server, backlog: 16, context: serverSoft)
        defer { try? listener.close() }
        let device = try serverSoft ?? Context(deviceNamed: listener.identifier.deviceName ?? "")
        defer { if serverSoft == nil { try? device.close() } }
        let domain = try ProtectionDomain(context: device)
        let queue = try CompletionQueue(context: device, minimumEntries: 64)
        let clientDomain = try clientSoft.map { try ProtectionDomain(context: $0) } ?? domain
        let clientQueue = try clientSoft.map { try CompletionQueue(context: $0, minimumEntries: 64) } ?? queue
        defer {
            for completionQueue in [clientQueue, queue] { try? completionQueue.close() }
            for protectionDomain in [clientDomain, domain] { try? protectionDomain.close() }
        }
        let limit = Duration.seconds(timeout)

        let trace = getenv("CM_LAB_TRACE") != nil
        func step(_ text: String) { if trace { print("cycles: \(text)") } }
        func cycle() async throws {
            async let accepted: Connection = {
                let request = try await listener.nextRequest(timeout: limit)
                step("request")
                let pair = try request.identifier.createQueuePair(protectionDomain: domain, sendCompletionQueue: queue, receiveCompletionQueue: queue)
                let connection = try await request.accept(queuePair: pair, timeout: limit)
                step("accepted")
                return connection
            }()
            let client = try await Connection.connect(to: server, timeout: limit, context: clientSoft) { identifier in
                try identifier.createQueuePair(protectionDomain: clientDomain, sendCompletionQueue: clientQueue, receiveCompletionQueue: clientQueue)
            }
            step("connected")
            let serverSide = try await accepted
            try await client.disconnect(timeout: limit)
            step("client disconnected")
            _ = try await serverSide.waitForDisconnection(timeout: limit)
            step("server saw the disconnection")
            try client.close()
            try serverSide.close()
        }

        // Memory is judged on the second half: the first fills malloc's arenas, the runtime's
        // metadata caches and libdispatch's per-thread continuation caches; a leak keeps
        // growing through both. Under tools/malloc-count.c the live heap is judged too: it
        // does not move with arenas, so it catches what resident memory hides (the old
        // watcher's ~1 block per cycle: +577 blocks, while resident memory moved −20 KiB).
        for _ in 0..<100 { try await cycle() }
        let before = Usage.now()
        let started = ContinuousClock.now
        for _ in 0..<count / 2 { try await cycle() }
        let halfway = Usage.now()
        for done in count / 2..<count {
            try await cycle()
            if (done + 1) % 500 == 0 && done + 1 < count { print("cycles: at \(done + 1): \(Usage.now())") }
        }
        let elapsed = ContinuousClock.now - started
        let after = Usage.now()
        print("cycles: \(count) connect/accept/disconnect/close in \(elapsed)")
        print("cycles: before \(before)")
        print("cycles: halfway \(halfway)")
        print("cycles: after  \(after)")
        let grewKiB = after.residentKiB - halfway.residentKiB
        let grewBlocks = after.liveBlocks - halfway.liveBlocks
        let steady = after.descriptors == before.descriptors && after.queuePairs == before.queuePairs && after.identifiers == before.identifiers
        // Bounds above the noise of a steady process. The live heap is the exact check: +0…+2
        // blocks over the second half on verbs, ±1,100 over 2,000 cycles on the soft engine,
        // whose threads come and go with libdispatch's per-thread continuation caches
        // (`--live-blocks-limit`). Resident memory moves with malloc's arenas and thread
        // stacks: −576…+1,336 KiB over the second 500 with the live heap flat (+2 blocks), so
        // its bound only catches what the heap counter cannot see (mmapped queues, stacks).
        let residentLimitKiB = 4096
        let heapSteady = after.liveBlocks < 0 || grewBlocks < liveBlocksLimit
        let heapText = after.liveBlocks < 0 ? "live heap not measured" : "live heap \(grewBlocks >= 0 ? "+" : "")\(grewBlocks) blocks"
        print("cycles: \(steady && grewKiB < residentLimitKiB && heapSteady ? "steady" : "GROWTH") (resident memory \(grewKiB >= 0 ? "+" : "")\(grewKiB) KiB, \(heapText) over the second \(count - count / 2) cycles; resident \(after.residentKiB - before.residentKiB >= 0 ? "+" : "")\(after.residentKiB - before.residentKiB) KiB in all)")
        if !(steady && grewKiB < residentLimitKiB && heapSteady) { throw ExitCode(1) }
    }
}

/// glibc's `malloc_trim` (in <malloc.h>, which the Glibc module does not bring in).
@_silgen_name("malloc_trim") func mallocTrim(_ pad: Int) -> Int32

typealias LiveCounter = @convention(c) () -> Int64
let liveBlocksCounter: LiveCounter? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_count_live_blocks").map { unsafeBitCast($0, to: LiveCounter.self) }
let liveBytesCounter: LiveCounter? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_count_live_bytes").map { unsafeBitCast($0, to: LiveCounter.self) }

/// What a leak would grow: this process's descriptors and resident memory, and the QPs
/// and rdma_cm ids the kernel holds for it (`rdma resource show qp|cm_id`).
struct Usage: CustomStringConvertible {
    var descriptors = 0, residentKiB = 0, queuePairs = -1, identifiers = -1
    /// Blocks and bytes malloc handed out and did not get back, from tools/malloc-count.c when
    /// it is preloaded (-1 otherwise): a leak grows these, while resident memory also moves
    /// with malloc's arenas and thread stacks.
    var liveBlocks = -1, liveKiB = -1
    /// Threads and memory mappings: libdispatch's workers and rxe's mmapped queues.
    var threads = 0, mappings = 0

    static func now() -> Usage {
        _ = mallocTrim(0)   // resident memory then counts what is in use, not what malloc keeps
        var usage = Usage()
        usage.descriptors = entries(in: "/proc/self/fd")
        if let file = fopen("/proc/self/statm", "r") {
            var size = 0, resident = 0
            withUnsafeMutablePointer(to: &size) { sizePointer in
                withUnsafeMutablePointer(to: &resident) { residentPointer in
                    _ = withVaList([sizePointer, residentPointer]) { vfscanf(file, "%ld %ld", $0) }
                }
            }
            fclose(file)
            usage.residentKiB = resident * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
        }
        if let blocks = liveBlocksCounter, let bytes = liveBytesCounter {
            usage.liveBlocks = Int(blocks())
            usage.liveKiB = Int(bytes()) / 1024
        }
        usage.threads = entries(in: "/proc/self/task")
        usage.mappings = lines(in: "/proc/self/maps")
        // This process's lines only ("… pid 1234 comm …"): other programs may run meanwhile.
        usage.queuePairs = countLines("rdma resource show qp")
        usage.identifiers = countLines("rdma resource show cm_id")
        return usage
    }

    /// Lines of `command`'s output that name this process's pid; -1 when it cannot run.
    private static func countLines(_ command: String) -> Int {
        guard let pipe = popen("\(command) 2>/dev/null", "r") else { return -1 }
        defer { pclose(pipe) }
        let mine = " pid \(getpid()) "
        var line = [CChar](repeating: 0, count: 1024)
        var count = 0
        while fgets(&line, Int32(line.count), pipe) != nil {
            if String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).contains(mine) { count += 1 }
        }
        return count
    }

    /// Entries of a /proc directory, "." and ".." left out; -1 when it cannot be read.
    private static func entries(in path: String) -> Int {
        guard let handle = opendir(path) else { return -1 }
        defer { closedir(handle) }
        var count = 0
        while let entry = readdir(handle) { if entry.pointee.d_name.0 != 46 { count += 1 } }   // 46: "."
        return count
    }

    /// Lines of a /proc file; -1 when it cannot be read.
    private static func lines(in path: String) -> Int {
        guard let file = fopen(path, "r") else { return -1 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 4096)
        var count = 0
        while fgets(&line, Int32(line.count), file) != nil { count += 1 }
        return count
    }

    var description: String {
        "descriptors \(descriptors), resident \(residentKiB) KiB, live heap \(liveBlocks < 0 ? "not measured" : "\(liveBlocks) blocks \(liveKiB) KiB"), threads \(threads), mappings \(mappings), QPs \(queuePairs), cm ids \(identifiers)"
    }
}
