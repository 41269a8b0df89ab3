import RDMA

/// perftest's out-of-band TCP exchange (no rdma_cm), reproduced from its documented
/// message formats so that rdma-pingpong's SEND and WRITE latency can run against
/// `ib_send_lat` and `ib_write_lat` (either side). What is exchanged, in order (the client writes first each time, the
/// server reads first):
///
/// 1. version: 16 bytes, NUL-padded text. We send `"6.10"`: perftest accepts ≥ 5.70, and
///    below 6.28 it skips its binary `perftest_parameters_negotiate` struct exchange, which
///    we do not reproduce. So the two sides do not compare -s/-n: give the same on both.
/// 2. system data: cycle-buffer size and cache-line size, 4-byte big-endian each.
/// 3. MTU: 2 bytes, the `enum ibv_mtu` code as decimal text ("3" = 1024); both use the min.
/// 4. key lines, 108 bytes each: `%04x:%04x:%06x:%06x:%08x:%016llx:` + 16 GID bytes as
///    `%02x:` + `%08x:` + NUL — LID, outstanding reads, QPN, PSN, rkey, vaddr, GID, SRQN.
///    `ib_send_lat` (1 QP, one size) exchanges one before connecting, then four more as
///    barriers: after connecting, to print the peer, before the run, and at the close;
///    `ib_write_lat` two before connecting and two after (see `PerftestLatency.keyExchanges`).
///
/// ```swift
/// let key = PerftestKey(lid: 0, outstandingReads: 1, queuePairNumber: 0x11, psn: 0xabc,
///                       rkey: 0x1234, virtualAddress: 0x7f00_0000_1000, gid: gid)
/// let text = key.message          // 108 bytes, what ib_send_lat writes
/// ```
public struct PerftestKey: Equatable, Sendable {
    public var lid: UInt16
    public var outstandingReads: UInt16
    public var queuePairNumber: UInt32
    public var psn: UInt32
    public var rkey: UInt32
    public var virtualAddress: UInt64
    public var gid: GID
    public var sharedReceiveQueueNumber: UInt32

    public static let messageSize = 108

    public init(lid: UInt16, outstandingReads: UInt16, queuePairNumber: UInt32, psn: UInt32, rkey: UInt32,
                virtualAddress: UInt64, gid: GID, sharedReceiveQueueNumber: UInt32 = 0) {
        self.lid = lid
        self.outstandingReads = outstandingReads
        self.queuePairNumber = queuePairNumber
        self.psn = psn
        self.rkey = rkey
        self.virtualAddress = virtualAddress
        self.gid = gid
        self.sharedReceiveQueueNumber = sharedReceiveQueueNumber
    }

    static func hex(_ value: some BinaryInteger, _ width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// The 108 bytes perftest's `KEY_PRINT_FMT_GID` produces (with its trailing NUL).
    public var message: [UInt8] {
        var text = "\(Self.hex(lid, 4)):\(Self.hex(outstandingReads, 4)):\(Self.hex(queuePairNumber, 6)):\(Self.hex(psn, 6)):"
        text += "\(Self.hex(rkey, 8)):\(Self.hex(virtualAddress, 16)):"
        for byte in gid.byteArray { text += "\(Self.hex(byte, 2)):" }
        text += "\(Self.hex(sharedReceiveQueueNumber, 8)):"
        var bytes = Array(text.utf8)
        bytes.append(0)
        return bytes
    }

    /// Parses a key line; nil when it is not one.
    public init?(message: [UInt8]) {
        let text = String(decoding: message.prefix { $0 != 0 }, as: UTF8.self)
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count >= 23,
              let lid = UInt16(fields[0], radix: 16), let reads = UInt16(fields[1], radix: 16),
              let qpn = UInt32(fields[2], radix: 16), let psn = UInt32(fields[3], radix: 16),
              let rkey = UInt32(fields[4], radix: 16), let vaddr = UInt64(fields[5], radix: 16) else { return nil }
        var gidBytes: [UInt8] = []
        for index in 6..<22 {
            guard let byte = UInt8(fields[index], radix: 16) else { return nil }
            gidBytes.append(byte)
        }
        guard let gid = GID(byteArray: gidBytes), let srqn = UInt32(fields[22], radix: 16) else { return nil }
        self.init(lid: lid, outstandingReads: reads, queuePairNumber: qpn, psn: psn, rkey: rkey, virtualAddress: vaddr,
                  gid: gid, sharedReceiveQueueNumber: srqn)
    }
}

/// The perftest exchange steps on one TCP connection, or with `-R` on the comm queue pair
/// (`PerftestConnectionManagerLink`).
public struct PerftestExchange {
    public static let version = "6.10"
    let control: any PerftestChannel
    let isClient: Bool
    let timeout: Double

    /// One exchange step: the client writes then reads, the server reads then writes.
    func swap(_ mine: [UInt8], count: Int, what: String) throws(PerfError) -> [UInt8] {
        if isClient {
            try control.sendRaw(mine)
            return try control.receiveRaw(count: count, timeout: timeout, waitingFor: what)
        }
        let theirs = try control.receiveRaw(count: count, timeout: timeout, waitingFor: what)
        try control.sendRaw(mine)
        return theirs
    }

    /// Versions, system data and MTU; returns the peer's version and the path MTU to use.
    /// A server's `admission` is marked perftest once the version string is one.
    func preamble(localMTU: PathMTU, admission: ServerLoop.Admission = .init()) throws(PerfError) -> (version: String, mtu: PathMTU) {
        var version = Array(Self.version.utf8)
        version += [UInt8](repeating: 0, count: 16 - version.count)
        let theirVersion = try swap(version, count: 16, what: "perftest's version")
        let versionText = String(decoding: theirVersion.prefix { $0 != 0 }, as: UTF8.self)
        guard let number = Double(versionText.prefix { $0.isNumber || $0 == "." }), number >= 5.70 else {
            let shown = String(versionText.unicodeScalars.prefix(16).map { $0.isASCII && $0.value >= 32 ? Character($0) : "." })
            if isClient {
                throw .peer("the server's version \"\(shown)\" is not perftest ≥ 5.70", hint: "is the server rdma-pingpong/rdma-throughput? then drop --perftest")
            }
            throw .refused("version", "the client sent \"\(shown)\": neither our JSON exchange nor perftest ≥ 5.70's version string")
        }
        admission.perftest = true
        func bigEndian(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
        _ = try swap(bigEndian(4096), count: 4, what: "perftest's cycle-buffer size")
        _ = try swap(bigEndian(64), count: 4, what: "perftest's cache-line size")
        let code: Int
        switch localMTU {
        case .mtu256: code = 1
        case .mtu512: code = 2
        case .mtu1024: code = 3
        case .mtu2048: code = 4
        case .mtu4096: code = 5
        }
        let theirMTU = try swap([UInt8(48 + code), 0], count: 2, what: "perftest's MTU")
        let theirCode = Int(String(decoding: theirMTU.prefix { $0 != 0 }, as: UTF8.self)) ?? code
        let mtu = PathMTU(bytes: 128 << min(max(1, theirCode), 5)).map { min($0, localMTU) } ?? localMTU
        return (versionText, mtu)
    }

    /// The sizes a run over `datagrams` (UD) moves, as perftest's parser makes them: `-a`
    /// stops at the path MTU; one size above it becomes the MTU (said in `log`).
    static func datagramSizes(_ sizes: [Int], datagrams: Bool, mtu: PathMTU, log: (String) -> Void) -> [Int] {
        guard datagrams else { return sizes }
        if sizes.count > 1 { return sizes.filter { $0 <= mtu.bytes } }
        guard let size = sizes.first, size > mtu.bytes else { return sizes }
        log("-c UD: a datagram must fit the path MTU: \(size) B becomes \(mtu.bytes) B, as perftest makes it")
        return [mtu.bytes]
    }

    /// True with `-R`: the CM connects the test QP (`connectThroughConnectionManager`).
    var usesConnectionManager: Bool { control is PerftestConnectionManagerLink }

    /// With `-R`, what perftest's `create_rdma_cm_connection` does before its key
    /// exchanges: a key exchange as a barrier, the CM connection of the test QP (to RTS),
    /// and another barrier. Nothing over TCP.
    func connectThroughConnectionManager(_ pair: QueuePair, mine: PerftestKey) throws(PerfError) {
        guard let link = control as? PerftestConnectionManagerLink else { return }
        _ = try keys(mine)
        try link.connectTestQueuePair(pair)
        _ = try keys(mine)
    }

    /// A bandwidth test's QPs set up the perftest way: a key line per QP each way (ours
    /// advertising the landing half of `queues`' buffer), then each QP connected to the
    /// peer's — over TCP, or through the CM with `-R` (one QP). perftest does not exchange
    /// its -q: a peer with fewer QPs sends QP 0's line again where we expect another QP's.
    func connect(_ queues: QueueSet, opened: OpenedDevice, mtu: PathMTU, qpTimeout: UInt8) throws(PerfError) -> (mine: [PerftestKey], theirs: [PerftestKey]) {
        let local = try queues.endpoints(port: opened.port, gidIndex: opened.gidIndex)
        let mine = local.map { endpoint in
            PerftestKey(lid: endpoint.lid, outstandingReads: 1, queuePairNumber: endpoint.queuePairNumber,
                        psn: endpoint.packetSequenceNumber, rkey: queues.memory.rkey,
                        virtualAddress: queues.memory.address + UInt64(queues.slot), gid: endpoint.gid)
        }
        try connectThroughConnectionManager(queues.queuePairs[0], mine: mine[0])
        var theirs: [PerftestKey] = []
        for key in mine {
            let their = try keys(key)
            if theirs.contains(where: { $0.queuePairNumber == their.queuePairNumber }) {
                throw .peer("perftest's peer sent QP 0x\(PerftestKey.hex(their.queuePairNumber, 6))'s key line again where we expected its QP \(theirs.count): it has \(theirs.count) QP(s), we have \(mine.count)",
                            hint: "give the same -q on both sides")
            }
            theirs.append(their)
        }
        if !usesConnectionManager {
            let remote = theirs.map { key in
                Endpoint(queuePairNumber: key.queuePairNumber, packetSequenceNumber: key.psn, gid: key.gid, lid: key.lid, mtu: mtu)
            }
            try queues.connect(local: local, remote: remote, port: opened.port, gidIndex: opened.gidIndex, mtu: mtu.rawValue, timeout: qpTimeout)
            if queues.kind == .unreliableDatagram { try queues.aim(at: remote, port: opened.port, gidIndex: opened.gidIndex) }
        }
        return (mine, theirs)
    }

    /// perftest's remote-QP prints after connecting: QP i's key line each way, for each
    /// QP. A peer with more QPs than ours sends a new QP's key here.
    func printSteps(mine: [PerftestKey], theirs: [PerftestKey]) throws(PerfError) {
        for (index, key) in mine.enumerated() {
            let their = try keys(key)
            guard their.queuePairNumber == theirs[index].queuePairNumber else {
                throw .peer("perftest's peer printed QP 0x\(PerftestKey.hex(their.queuePairNumber, 6)) where we expected its QP \(index) (0x\(PerftestKey.hex(theirs[index].queuePairNumber, 6))): it has more QPs than our \(mine.count)",
                            hint: "give the same -q on both sides")
            }
        }
    }

    func keys(_ mine: PerftestKey) throws(PerfError) -> PerftestKey {
        if control.binaryKeys {
            let bytes = try swap(mine.binary(gidIndex: 0), count: PerftestKey.binarySize, what: "perftest's key")
            guard let theirs = PerftestKey(binary: bytes) else {
                throw .peer("perftest's binary key is out of range (\(bytes.prefix(16).map { String($0, radix: 16) }.joined(separator: " ")) …)")
            }
            return theirs
        }
        let bytes = try swap(mine.message, count: PerftestKey.messageSize, what: "perftest's key line")
        guard let theirs = PerftestKey(message: bytes) else {
            throw .peer("cannot parse perftest's key line \"\(String(decoding: bytes.prefix(60), as: UTF8.self))…\"",
                        hint: "use the peer without -R and without data validation")
        }
        return theirs
    }
}

/// SEND and WRITE latency against perftest's `ib_send_lat` / `ib_write_lat`, either role.
public enum PerftestLatency {
    /// How many 108-byte key lines perftest exchanges before and after it connects its
    /// QP, and whether it exchanges one more at the close. `ib_send_lat`: the keys, then
    /// (connected) a barrier, the remote-QP print and a "receives posted" barrier, and a
    /// close. `ib_write_lat` (6.06, the lab's): the keys twice, then (connected) the
    /// remote-QP print and a barrier after RTR; no close (it just exits — we still offer
    /// one and take EOF as the end).
    /// `ib_read_lat` and `ib_atomic_lat`: the keys twice, then (connected) the remote-QP
    /// print and a barrier after RTR, like `ib_write_lat`; then each side's close (a key
    /// line and "done") — the server's at once, the client's after its run.
    public static func keyExchanges(for operation: LatencyOperation) -> (beforeConnect: Int, afterConnect: Int) {
        operation == .send ? (1, 3) : (2, 2)
    }

    /// perftest's binary for each operation.
    public static func tool(for operation: LatencyOperation) -> String {
        switch operation {
        case .send: "ib_send_lat"
        case .write: "ib_write_lat"
        case .read: "ib_read_lat"
        case .atomic: "ib_atomic_lat"
        }
    }

    /// The byte `ib_write_lat` stores in the last byte of its `n`-th write (1-based) and
    /// polls for in the last byte of its landing area: `(char)n`, wrapping 255 → 0 → 1.
    @inline(__always)
    public static func writeMarker(_ n: Int) -> UInt8 { UInt8(truncatingIfNeeded: n) }

    /// Runs each size in turn for `iterations` (perftest counts and has no warm-up: none
    /// here either) and returns our figures, one per size (none where the peer measures
    /// alone: READ/atomic with us as the target). `isClient`: we named the server.
    /// Several sizes are `ib_*_lat -a` (2 B … 8 MiB, the same `-n` for each): `ib_send_lat`
    /// posts its receives for the next size and swaps one more key line before it (its
    /// `ctx_set_recv_wqes` + `ctx_hand_shake`); `ib_write_lat` and `ib_read_lat` go
    /// straight on, their counts starting again at 1.
    /// `connection` `.unreliableDatagram` (`ib_send_lat -c UD`): the same exchange over UD
    /// QPs; each SEND is aimed at the peer's QP (`QueueSet.aim`), each receive has room for
    /// the 40-byte route header, and `-a` sweeps 2 B … the path MTU, as perftest's.
    public static func run(opened: OpenedDevice, control: any PerftestChannel, admission: ServerLoop.Admission = .init(),
                           isClient: Bool, operation: LatencyOperation = .send, connection: QueuePairKind = .reliableConnected,
                           sizes asked: [Int], iterations: Int, duration: Double? = nil,
                           inlineSize: Int?, qpTimeout: UInt8, timeout: Double, runTimeout: Double = 600, spin: Bool = false,
                           log: (String) -> Void) throws(PerfError) -> [LatencyResult] {
        let datagrams = connection == .unreliableDatagram
        guard !datagrams || operation == .send && !(control is PerftestConnectionManagerLink) else {
            throw .usage("-c UD over perftest's exchange: SEND latency, without -R")
        }
        try LatencySession.checkSizes(asked, opened: opened, operation: operation)
        let exchange = PerftestExchange(control: control, isClient: isClient, timeout: timeout)
        let (version, mtu) = try exchange.preamble(localMTU: opened.activeMTU, admission: admission)
        admission.admitted = true
        let sizes = PerftestExchange.datagramSizes(asked, datagrams: datagrams, mtu: mtu, log: log)
        guard let first = sizes.first, let largest = sizes.max() else { throw .usage("no message size to run") }
        let tool = tool(for: operation)
        if duration != nil, sizes.count > 1 {
            throw .usage("-D over \(tool)'s exchange: one size (perftest refuses -D with -a)")
        }
        let what = sizes.count == 1 ? "\(first) B" : "each size \(first) B … \(largest) B (-a)"
        let length = duration.map { "for \($0) s (-D) " } ?? "\(iterations) iterations "
        log("peer is perftest \(version) (\(tool)'s exchange; \(operation) latency\(datagrams ? " over UD" : ""), \(length)of \(what) — give the same -s or -a and -n or -D\(datagrams ? " and -c UD" : "") on both sides)")
        // As READ/atomic target we expose room for the largest size perftest's -a reaches,
        // so that our server needs neither its -s nor its -a (they are not exchanged).
        let target = !isClient && (operation == .read || operation == .atomic)
        let slot = LatencySession.slot(for: target ? sizes + [min(opened.maxMessageSize, PerftestBandwidth.targetRoom)]
                                             : datagrams ? sizes.map { $0 + QueueSet.routeHeaderRoom } : sizes)
        let queues = try QueueSet(context: opened.context, queuePairs: 1, slot: slot, sendDepth: 128, receiveDepth: 64, inlineSize: inlineSize,
                                  events: opened.completionEvents && operation != .write, kind: connection)
        defer { queues.close() }
        queues.memory.bytes.initializeMemory(as: UInt8.self, repeating: 0)
        let local = try queues.endpoints(port: opened.port, gidIndex: opened.gidIndex)[0]
        // The advertised address is our landing area: perftest writes there (WRITE) or
        // reads and adds there (READ, atomic: 64-byte aligned).
        let mine = PerftestKey(lid: local.lid, outstandingReads: 1, queuePairNumber: local.queuePairNumber,
                               psn: local.packetSequenceNumber, rkey: queues.memory.rkey,
                               virtualAddress: queues.memory.address + UInt64(slot), gid: local.gid)
        let steps = keyExchanges(for: operation)
        try exchange.connectThroughConnectionManager(queues.queuePairs[0], mine: mine)
        let theirs = try exchange.keys(mine)
        for _ in 1..<steps.beforeConnect { _ = try exchange.keys(mine) }
        let remote = Endpoint(queuePairNumber: theirs.queuePairNumber, packetSequenceNumber: theirs.psn, gid: theirs.gid,
                              lid: theirs.lid, mtu: mtu)
        if !exchange.usesConnectionManager {
            try queues.connect(local: [local], remote: [remote], port: opened.port, gidIndex: opened.gidIndex, mtu: mtu.rawValue, timeout: qpTimeout)
            if datagrams { try queues.aim(at: [remote], port: opened.port, gidIndex: opened.gidIndex) }
        }
        let pair = queues.queuePairs[0]
        for step in 0..<steps.afterConnect {
            if operation == .send, step == steps.afterConnect - 1 {
                for _ in 0..<queues.receiveDepth {
                    try rdma("posting receives") { () throws(RDMAError) in
                        try pair.postReceive(id: receiveTag, scatterGather: queues.memory.scatterGather(offset: slot, length: slot))
                    }
                }
            }
            _ = try exchange.keys(mine)
        }
        let pump = CompletionPump(queue: queues.completionQueue, progressTimeout: timeout, control: control as? ControlConnection)
        pump.watchControl = false
        pump.yieldWhenIdle = !spin
        let remoteMemory = RemoteMemory(address: theirs.virtualAddress, rkey: theirs.rkey, length: UInt32(clamping: largest))
        if !isClient, operation == .read || operation == .atomic {
            // READ/atomic target: perftest's client runs silently (every size of -a), then
            // closes. Its run length is not exchanged: the wait for its close is bounded
            // by `runTimeout`.
            opened.backgroundProgress(true)
            defer { opened.backgroundProgress(false) }
            _ = try PerftestExchange(control: control, isClient: false, timeout: max(timeout, runTimeout)).keys(mine)
            try? control.sendRaw(Array("done".utf8) + [0])
            return []
        }
        var results: [LatencyResult] = []
        for (index, size) in sizes.enumerated() {
            // ib_send_lat's per-size barrier (its receives for this size are posted); ours
            // stay posted, each as large as the largest size.
            if operation == .send, index > 0 { _ = try exchange.keys(mine) }
            if let result = try runSize(size, queues: queues, remote: remoteMemory, pump: pump, isClient: isClient, operation: operation,
                                        iterations: iterations, duration: duration, inlineSize: inlineSize, timeout: timeout) {
                results.append(result)
            }
        }
        // perftest's close (ib_send_lat, ib_read_lat, ib_atomic_lat; ib_write_lat just
        // exits: EOF ends the wait).
        _ = try? PerftestExchange(control: control, isClient: isClient, timeout: min(timeout, 5)).keys(mine)
        if operation == .read || operation == .atomic { try? control.sendRaw(Array("done".utf8) + [0]) }
        return results
    }

    /// One size of the ping-pong (SEND, WRITE; either role) or of the READ/atomic client;
    /// our figures, or nil where the peer measures (our SEND echo).
    /// `duration` (-D; SEND, READ, atomic): each side runs on its own clock, as perftest's do.
    static func runSize(_ size: Int, queues: QueueSet, remote: RemoteMemory, pump: CompletionPump, isClient: Bool,
                        operation: LatencyOperation, iterations: Int, duration: Double?, inlineSize: Int?, timeout: Double) throws(PerfError) -> LatencyResult? {
        let samples = SampleBuffer(capacity: duration == nil ? iterations : LatencyParameters.durationSampleCap)
        var truncated = false
        if operation == .write {
            // ib_write_lat's server writes first and its client answers: we take the
            // opposite part of whichever role we have, and time our own posts either way.
            try writePingPong(queues: queues, remote: remote, size: size, iterations: iterations, duration: duration, postsFirst: !isClient,
                              samples: samples, pump: pump)
        } else if isClient {
            // SEND ping-pong, or READ/atomic against perftest's passive server.
            var parameters = LatencyParameters(operation: operation, sizes: [size], iterations: duration == nil ? iterations : nil,
                                               duration: duration, warmup: 0, inlineSize: inlineSize, progressTimeout: timeout)
            parameters.dropLateReplies = duration != nil
            var progress = ProgressLine()
            var noCheck: PayloadCheck?
            truncated = try LatencyLoops.client(queues: queues, remote: remote, parameters: parameters, size: size,
                                                samples: samples, pump: pump, check: &noCheck, progress: &progress)
            progress.finish()
        } else {
            _ = try LatencyLoops.echo(queues: queues, remote: remote, operation: .send, size: size, pump: pump,
                                      limit: duration == nil ? iterations : nil, duration: duration)
            return nil
        }
        let halve = operation.isPingPong
        guard let statistics = LatencyStatistics(samples: samples.filled, halve: halve) else { return nil }
        return LatencyResult(size: size, operation: operation, statistics: statistics,
                             histogram: LatencyStatistics.histogram(of: samples.filled, halve: halve), truncated: truncated)
    }

    /// `ib_write_lat`'s ping-pong: each side WRITEs `size` bytes whose last byte is the
    /// running count (`writeMarker`) into the peer's landing area and waits for the
    /// peer's count in its own. `postsFirst`: we open (perftest's server role). A sample
    /// is the period between two of our posts (a round trip); the opener's last one ends
    /// at the final reply.
    /// `duration` (`ib_write_lat -D`): as many rounds as fit, each side on its own clock —
    /// a wait for the peer's next WRITE also ends when ours runs out, as perftest's
    /// `run_iter_lat_write` stops spinning when its alarm fires.
    static func writePingPong(queues: QueueSet, remote: RemoteMemory, size: Int, iterations: Int, duration: Double? = nil, postsFirst: Bool,
                              samples: SampleBuffer, pump: CompletionPump) throws(PerfError) {
        let pair = queues.queuePairs[0]
        let base = queues.memory
        let flags: SendFlags = size <= queues.maxInline ? [.signaled, .inline] : .signaled
        var request = SendWorkRequest(id: 0, operation: .write(remote.slice(offset: 0, length: UInt32(size))), flags: flags)
        let quietFlags = flags.subtracting(.signaled)
        let signalEvery = max(1, min(64, queues.sendDepth / 2))
        let element = base.scatterGather(offset: 0, length: size)
        let mine = base.bytes.baseAddress!
        let lastSent = mine + (size - 1)
        let lastLanded = mine + (queues.slot + size - 1)
        pump.activity = "waiting for ib_write_lat's next WRITE (size \(size))"
        let start = MonotonicClock.nanoseconds()
        pump.progressed(at: start)
        let end = duration.map { start &+ MonotonicClock.span(seconds: $0, cap: .max &- start) } ?? .max
        /// False when our -D ran out first.
        func waitFor(_ count: Int) throws(PerfError) -> Bool {
            let marker = writeMarker(count)
            var polls = 0
            while lastLanded.load(as: UInt8.self) != marker {
                _ = try pump.poll()
                polls &+= 1
                if polls & 63 == 0, end != .max, MonotonicClock.nanoseconds() >= end { return false }
            }
            pump.tick()
            return true
        }
        var previous: UInt64 = 0
        var sent = 0
        while sent < (duration == nil ? iterations : Int.max) {
            if !(postsFirst && sent == 0) { guard try waitFor(postsFirst ? sent : sent + 1) else { break } }
            lastSent.storeBytes(of: writeMarker(sent + 1), as: UInt8.self)
            request.flags = sent % signalEvery == signalEvery - 1 ? flags : quietFlags
            let now = MonotonicClock.nanoseconds()   // before the post: see LatencyLoops.client
            if now >= end { break }
            try rdma("posting the WRITE") { () throws(RDMAError) in try pair.post(request, scatterGather: element) }
            if sent > 0, samples.count < samples.storage.count {
                samples.storage[samples.count] = now &- previous
                samples.count += 1
            }
            previous = now
            sent += 1
            _ = try pump.poll()
        }
        if postsFirst, sent > 0, try waitFor(sent) {
            if samples.count < samples.storage.count {
                samples.storage[samples.count] = MonotonicClock.nanoseconds() &- previous
                samples.count += 1
            }
        }
        // Let the last signaled WRITEs complete before the QP goes away.
        let settled = MonotonicClock.nanoseconds() + 100_000_000
        while MonotonicClock.nanoseconds() < settled { if try pump.poll() == 0 { break } }
    }
}
