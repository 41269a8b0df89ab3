#if canImport(Glibc)
import Glibc
#endif
import RoCEWire
import Testing
@testable import SoftRoCE

/// Many QPs of one device share its in-flight budget instead of overrunning the peer's
/// receive buffer (the cause of `rdma-throughput -q 1024` ending in RETRY_EXC_ERR).
@Suite("SoftRoCE sharing between QPs (in memory, injected clock)")
struct SharingTests {
    /// 256 QPs each post a 60 KiB WRITE (15 MiB together, almost four times the budget, and
    /// 15-packet messages so that the budget cuts QPs mid-message): what the device puts on the
    /// wire before any ACK stays within `inFlightByteBudget`, and every WRITE then completes
    /// without a single retransmit timeout.
    @Test func manyQueuePairsStayWithinTheDevicesInFlightBudget() throws {
        let pair = try EnginePair()
        let network = try #require(pair.network)
        let queuePairs = 256, messageBytes = 60 << 10
        let senders = try Self.connectedQueuePairs(pair, count: queuePairs, mtu: 4096)
        // The region of B is 1 MiB: the QPs write 64 KiB slices of it in turn.
        for (index, qp) in senders.enumerated() {
            let request = SoftSendRequest(id: UInt64(index), opcode: .write,
                                          remoteAddress: pair.address(pair.memoryB, index % 16 * (64 << 10)), remoteKey: pair.regionB.rkey)
            let element = pair.sgeA(0, messageBytes)
            try withUnsafePointer(to: element) { try pair.deviceA.postSend(qp, request, UnsafeBufferPointer(start: $0, count: 1)) }
        }
        let onTheWire = network.pending(for: WireEndpoint(EnginePair.addressB, port: 4791)) * 4096
        #expect(onTheWire <= SoftDevice.inFlightByteBudget + 4096, "\(onTheWire) bytes sent before any ACK")
        #expect(onTheWire >= SoftDevice.inFlightByteBudget / 2, "the budget is shared, not starved")

        let completions = pair.completions(from: pair.cqA, count: queuePairs, seconds: 5)
        #expect(completions.count == queuePairs)
        #expect(completions.allSatisfy { $0.status == .success })
        let counters = pair.deviceA.snapshotCounters()
        #expect(counters.completerRetry == 0, "no QP waited for its retransmit timer")
        #expect(counters.retryExceeded == 0)
    }

    /// One QP's window: a 1 MiB WRITE puts `window` packets on the wire before any ACK (256,
    /// enough to keep a sender busy across the ACK round trip), but a 1 MiB READ only 4 of its
    /// 16-packet requests (the READ window, 64 packets): more could outrun the responder's memory
    /// of READs it may replay, and a lost response would then never be resent (RETRY_EXC_ERR at
    /// 1 % loss in `tools/soft-reliability` with the 256-packet window for READs too). Then both
    /// complete, byte-checked.
    @Test func aWriteFillsTheWindowAndAReadOnlyTheReadWindow() throws {
        let pair = try EnginePair()
        let network = try #require(pair.network)
        let size = 1 << 20
        for index in 0..<size { pair.memoryA[index] = UInt8(truncatingIfNeeded: index &* 5 &+ 3) }
        let write = SoftSendRequest(id: 1, opcode: .write, remoteAddress: pair.address(pair.memoryB, 0), remoteKey: pair.regionB.rkey)
        try pair.postA(write, pair.sgeA(0, size))
        for _ in 0..<8 { pair.deviceA.progress() }   // a round sends at most 64 packets; B does not run yet
        let destination = WireEndpoint(EnginePair.addressB, port: 4791)
        #expect(network.pending(for: destination) == SoftDevice.window, "WRITE packets before any ACK")
        #expect(pair.completions(from: pair.cqA, count: 1).first?.status == .success)
        #expect(memcmp(pair.memoryA.baseAddress!, pair.memoryB.baseAddress!, size) == 0)

        for index in 0..<size { pair.memoryB[index] = UInt8(truncatingIfNeeded: index &* 7 &+ 1) }
        let read = SoftSendRequest(id: 2, opcode: .read, remoteAddress: pair.address(pair.memoryB, 0), remoteKey: pair.regionB.rkey)
        try pair.postA(read, pair.sgeA(0, size))
        for _ in 0..<8 { pair.deviceA.progress() }
        #expect(network.pending(for: destination) == 4, "READ requests before any response (16 packets each)")
        #expect(pair.completions(from: pair.cqA, count: 1).first?.status == .success)
        #expect(memcmp(pair.memoryA.baseAddress!, pair.memoryB.baseAddress!, size) == 0)
    }

    /// The responder replays a lost READ response or atomic ACK only for the last 16 READ and
    /// atomic requests it executed (`ReadRequestCache`, `AtomicReplyCache`; rxe's
    /// max_dest_rd_atomic resources). 48 one-packet READs (or fetch-and-adds) posted at once: at
    /// most 16 leave before a response comes back, and when every response of that burst is
    /// lost, each is replayed and everything completes, every atomic executed once. With all
    /// 48 in flight (the READ window is in packets; atomics had none but the QP's), the oldest
    /// 32 were never answered again: RETRY_EXC_ERR, as in perftest -D -b runs over a stalled peer.
    @Test(arguments: [SoftSendOpcode.read, .fetchAndAdd])
    func readAndAtomicRequestsInFlightStayWithinWhatTheResponderRemembers(opcode: SoftSendOpcode) throws {
        let pair = try EnginePair()
        let network = try #require(pair.network)
        let count = 48, limit = ReadRequestCache.capacity
        for index in 0..<(count * 64) { pair.memoryB[index] = UInt8(truncatingIfNeeded: index &* 3 &+ 1) }
        for index in 0..<count {
            let atomic = opcode == .fetchAndAdd
            let request = SoftSendRequest(id: UInt64(index), opcode: opcode, remoteAddress: pair.address(pair.memoryB, index * 64),
                                          remoteKey: pair.regionB.rkey, compareAdd: atomic ? 1 : 0)
            try pair.postA(request, pair.sgeA(index * 64, atomic ? 8 : 64))
        }
        for _ in 0..<4 { pair.deviceA.progress() }   // B does not run yet
        let toB = WireEndpoint(EnginePair.addressB, port: 4791), toA = WireEndpoint(EnginePair.addressA, port: 4791)
        #expect(network.pending(for: toB) == limit, "requests before any response")
        pair.deviceB.progress()
        #expect(network.take(for: toA).count == limit, "the burst's responses, all lost")

        let completions = pair.completions(from: pair.cqA, count: count)
        #expect(completions.count == count)
        #expect(completions.allSatisfy { $0.status == .success }, "\(completions.map(\.status))")
        #expect(completions.map(\.id) == (0..<UInt64(count)).map { $0 })
        #expect(pair.deviceA.snapshotCounters().retryExceeded == 0)
        #expect(pair.deviceB.snapshotCounters().refusedReadReplays == 0)
        for index in 0..<count {
            let base = index * 64
            if opcode == .read {
                #expect(Array(pair.memoryA[base..<base + 64]) == Array(pair.memoryB[base..<base + 64]), "READ \(index)")
            } else {
                let original = (0..<8).reduce(UInt64(0)) { $0 | UInt64(UInt8(truncatingIfNeeded: (base + $1) &* 3 &+ 1)) << (8 * $1) }
                #expect(pair.memoryB.load(fromByteOffset: base, as: UInt64.self) == original &+ 1, "atomic \(index) executed once")
                #expect(pair.memoryA.load(fromByteOffset: base, as: UInt64.self) == original, "atomic \(index)'s original value")
            }
        }
    }

    /// 1,000 QP pairs in one engine pair, each with a SEND, an 8 KiB WRITE and an 8 KiB READ:
    /// every request completes successfully, and once they have, a progress round visits no QP.
    @Test func aThousandQueuePairsEachCompleteAMixedWorkload() throws {
        let pair = try EnginePair()
        let queuePairs = 1_000, bytes = 8 << 10
        let senders = try Self.connectedQueuePairs(pair, count: queuePairs, mtu: 1024) { index, receiver in
            let receive = pair.sgeB(index % 64 * 16, 16)
            try withUnsafePointer(to: receive) { try pair.deviceB.postReceive(receiver, id: UInt64(index), UnsafeBufferPointer(start: $0, count: 1)) }
        }
        for (index, qp) in senders.enumerated() {
            let slice = index % 64 * bytes
            let requests = [
                (SoftSendRequest(id: UInt64(index) << 2, opcode: .send), pair.sgeA(0, 16)),
                (SoftSendRequest(id: UInt64(index) << 2 | 1, opcode: .write, remoteAddress: pair.address(pair.memoryB, slice),
                                 remoteKey: pair.regionB.rkey), pair.sgeA(0, bytes)),
                (SoftSendRequest(id: UInt64(index) << 2 | 2, opcode: .read, remoteAddress: pair.address(pair.memoryB, slice),
                                 remoteKey: pair.regionB.rkey), pair.sgeA(bytes + slice, bytes)),
            ]
            for (request, element) in requests {
                try withUnsafePointer(to: element) { try pair.deviceA.postSend(qp, request, UnsafeBufferPointer(start: $0, count: 1)) }
            }
        }
        let completions = pair.completions(from: pair.cqA, count: 3 * queuePairs, seconds: 30)
        #expect(completions.count == 3 * queuePairs)
        #expect(completions.allSatisfy { $0.status == .success })
        #expect(Set(completions.map(\.id)).count == 3 * queuePairs)
        pair.deviceA.progress()
        #expect(pair.deviceA.locked { pair.deviceA.activeQueuePairs.count } == 0, "idle QPs are off the round")
        #expect(pair.deviceA.snapshotCounters().retryExceeded == 0)
    }

    /// `count` RC QPs on A, each connected to its own QP on B (A's send PSN is its index);
    /// `prepare` gets each receiver before A sends. Returns A's QPs.
    static func connectedQueuePairs(_ pair: EnginePair, count: Int, mtu: Int,
                                    addresses: (SoftAddress, SoftAddress) = (EnginePair.addressA, EnginePair.addressB),
                                    prepare: (Int, SoftQueuePair) throws -> Void = { _, _ in }) throws -> [SoftQueuePair] {
        var senders = [SoftQueuePair]()
        for index in 0..<count {
            let a = try pair.deviceA.createQueuePair(domain: pair.domainA, type: .reliableConnected, sendQueue: pair.cqA, receiveQueue: pair.cqA,
                                                     sharedReceiveQueue: nil, signalAll: true, sendCapacity: 4, receiveCapacity: 4,
                                                     maxScatterGather: 1, maxInline: 0)
            let b = try pair.deviceB.createQueuePair(domain: pair.domainB, type: .reliableConnected, sendQueue: pair.cqB, receiveQueue: pair.cqB,
                                                     sharedReceiveQueue: nil, signalAll: true, sendCapacity: 4, receiveCapacity: 4,
                                                     maxScatterGather: 1, maxInline: 0)
            try connect(pair.deviceA, a, to: addresses.1, qpn: b.number, sendPSN: UInt32(index), receivePSN: 0x100,
                        mtu: mtu, timeout: 12, retry: 7, rnr: 7)
            try connect(pair.deviceB, b, to: addresses.0, qpn: a.number, sendPSN: 0x100, receivePSN: UInt32(index),
                        mtu: mtu, timeout: 12, retry: 7, rnr: 7)
            try prepare(index, b)
            senders.append(a)
        }
        return senders
    }
}
