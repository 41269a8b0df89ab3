#if canImport(Glibc)
import Glibc
#endif
import RoCEWire
import Testing
@testable import SoftRoCE

/// When the requester asks for an ACK (`asksForAcknowledgement`): a message whose completion
/// is wanted, half a send queue waiting, every 16th packet of a long message — and the tail
/// probe that asks once when packets that did not ask are left alone. The peer is scripted and
/// acknowledges only what asks, or a duplicate, as kernel rxe does.
@Suite("SoftRoCE AckReq by need and the tail probe")
struct AcknowledgementRequestTests {
    /// Unsignaled one-packet SENDs ask for no ACK; the signaled one after them does, and its
    /// ACK completes all four (one completion, the signaled one's).
    @Test func onlyTheSignaledMessageAsks() throws {
        let peer = try ScriptedPeer(depth: 16, signalAll: false)
        for id in 0..<3 { try peer.post(SoftSendRequest(id: UInt64(id), signaled: false), peer.element(0, 16)) }
        try peer.post(SoftSendRequest(id: 3), peer.element(0, 16))
        let packets = peer.sent()
        #expect(packets.map(\.headers.bth.ackRequest) == [false, false, false, true], "\(packets.map(\.headers.bth.ackRequest))")
        peer.acknowledge(packets[3].psn)
        #expect(peer.qp.sendQueue.outstanding == 0)
        #expect(peer.device.poll(peer.cq).map(\.id) == [3])
    }

    /// A long unsignaled message asks on its 16th packet (so that a burst cut mid-message is
    /// acknowledged), not on its last; a signaled one on its last too.
    @Test func aLongMessageAsksEvery16PacketsAndOnItsLastOnlyWhenSignaled() throws {
        let peer = try ScriptedPeer(mtu: 1024, depth: 16, signalAll: false)
        try peer.post(SoftSendRequest(id: 0, signaled: false), peer.element(0, 20 * 1024))
        let unsignaled = peer.sent()
        #expect(unsignaled.count == 20)
        #expect(unsignaled.indices.filter { unsignaled[$0].headers.bth.ackRequest } == [15])
        try peer.post(SoftSendRequest(id: 1), peer.element(0, 20 * 1024))
        let signaled = peer.sent()
        #expect(signaled.indices.filter { signaled[$0].headers.bth.ackRequest } == [15, 19])
    }

    /// With half the send queue waiting for acknowledgement a message asks, signaled or not,
    /// so that slots come back before the queue fills.
    @Test func halfASendQueueWaitingAsks() throws {
        let peer = try ScriptedPeer(depth: 16, signalAll: false)
        for id in 0..<8 { try peer.post(SoftSendRequest(id: UInt64(id), signaled: false), peer.element(0, 16)) }
        let packets = peer.sent()
        #expect(packets.indices.filter { packets[$0].headers.bth.ackRequest } == [7])
        peer.acknowledge(packets[7].psn)
        #expect(peer.qp.sendQueue.outstanding == 0)
    }

    /// Three unsignaled SENDs and nothing after them: nothing more leaves before the probe
    /// delay; then the last packet leaves once more, asking, the peer acknowledges the
    /// duplicate, and the queue drains with no retransmit timeout and no further packet.
    @Test func anUnaskedTailIsProbedOnceAndItsAcknowledgementDrainsTheQueue() throws {
        let peer = try ScriptedPeer(depth: 16, signalAll: false)
        for id in 0..<3 {
            peer.memory.baseAddress!.advanced(by: id * 16).initializeMemory(as: UInt8.self, repeating: UInt8(0xA0 + id), count: 16)
            try peer.post(SoftSendRequest(id: UInt64(id), signaled: false), peer.element(id * 16, 16))
        }
        let first = peer.sent()
        #expect(first.count == 3 && first.allSatisfy { !$0.headers.bth.ackRequest })
        peer.clock.advance(nanoseconds: SoftDevice.acknowledgementProbeDelay - 1000)
        peer.device.progress()
        #expect(peer.sent().isEmpty, "nothing before the probe delay")
        peer.clock.advance(nanoseconds: 1000)
        peer.device.progress()
        let probe = peer.sent()
        #expect(probe.count == 1 && probe.first?.psn == first[2].psn && probe.first?.headers.bth.ackRequest == true,
                "\(probe.map { ($0.psn, $0.headers.bth.ackRequest) })")
        #expect(probe.first?.payload == [UInt8](repeating: 0xA2, count: 16))
        peer.acknowledge(first[2].psn)
        #expect(peer.qp.sendQueue.outstanding == 0)
        let counters = peer.device.snapshotCounters()
        #expect(counters.acknowledgementProbes == 1 && counters.completerRetry == 0)
        // Long after: no retransmission, no second probe.
        peer.clock.advance(nanoseconds: 1_000_000_000)
        peer.device.progress()
        #expect(peer.sent().isEmpty)
    }

    /// Two engines over the in-memory wire, each message taken in by B in a round of its own:
    /// 63 unsignaled SENDs then a signaled one are all delivered in order, and B acknowledges
    /// when half the 64-deep queue waits: at message 31, and at message 63, the signaled one
    /// (2 ACKs; were 64). No retransmission, no probe.
    @Test func aStreamOfUnsignaledSendsIsAcknowledgedWhenHalfTheQueueWaits() throws {
        let pair = try EnginePair()
        for id in 0..<64 { try pair.receiveB(id: UInt64(id), pair.sgeB(id * 64, 64)) }
        for id in 0..<64 {
            pair.memoryA.storeBytes(of: UInt32(id), toByteOffset: id * 8, as: UInt32.self)
            try pair.postA(SoftSendRequest(id: UInt64(id), signaled: id == 63), pair.sgeA(id * 8, 4))
            pair.deviceB.progress()
            pair.deviceA.progress()
        }
        let received = pair.completions(from: pair.cqB, count: 64)
        #expect(received.map(\.id) == (0..<64).map(UInt64.init) && received.allSatisfy { $0.status == .success })
        for id in 0..<64 { #expect(pair.memoryB.load(fromByteOffset: id * 64, as: UInt32.self) == UInt32(id)) }
        #expect(pair.completions(from: pair.cqA, count: 1).map(\.id) == [63])
        #expect(pair.qpA.sendQueue.outstanding == 0)
        let a = pair.deviceA.snapshotCounters(), b = pair.deviceB.snapshotCounters()
        #expect(b.sentPackets == 2, "B sent \(b.sentPackets) ACKs for 64 messages")
        #expect(a.completerRetry == 0 && a.acknowledgementProbes == 0)
    }
}

extension SoftDevice {
    /// Drives the engine once and takes what `queue` holds (up to 16).
    func poll(_ queue: SoftCompletionQueue) -> [SoftCompletion] {
        let buffer = UnsafeMutableBufferPointer<SoftCompletion>.allocate(capacity: 16)
        defer { buffer.deallocate() }
        let taken = poll(queue, into: buffer)
        return Array(buffer[0..<taken])
    }
}
