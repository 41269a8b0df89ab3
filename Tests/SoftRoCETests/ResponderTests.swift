#if canImport(Glibc)
import Glibc
#endif
import RoCEWire
import Testing
@testable import SoftRoCE

/// The responder role, driven packet by packet: the scripted peer is the requester.
@Suite("SoftRoCE responder (scripted peer)")
struct ResponderTests {
    func write(_ test: ScriptedPeer, psn: PacketSequenceNumber, byte: UInt8, round: Bool = true) {
        test.request(.rcRDMAWriteOnly, psn: psn, rdma: RETH(virtualAddress: test.address, remoteKey: test.region.rkey, dmaLength: 4),
                     payload: [byte, byte, byte, byte], round: round)
    }

    /// A duplicate WRITE is acknowledged again, not executed again; a PSN ahead of the expected
    /// one draws one NAK-sequence per gap.
    @Test func duplicatesAreReacknowledgedAndGapsNAKedOnce() throws {
        let test = try ScriptedPeer()
        write(test, psn: test.receivePSN, byte: 1)
        #expect(test.sent().map(\.psn) == [test.receivePSN])
        write(test, psn: test.receivePSN, byte: 2)
        #expect(test.memory[0] == 1, "a duplicate must not execute again")
        let reacknowledged = test.sent()
        #expect(reacknowledged.map(\.opcode) == [.rcAcknowledge])
        #expect(reacknowledged.first?.psn == test.receivePSN)
        write(test, psn: test.receivePSN + 5, byte: 3)
        write(test, psn: test.receivePSN + 6, byte: 3)
        let naks = test.sent()
        #expect(naks.count == 1)
        #expect(naks.first?.headers.acknowledge?.syndrome == .nak(.psnSequenceError))
        #expect(naks.first?.psn == test.receivePSN + 1)
        #expect(test.memory[0] == 1)
        let counters = test.device.snapshotCounters()
        #expect(counters.duplicateRequest == 1)
        #expect(counters.outOfSequenceRequest == 2)
    }

    /// A retransmitted atomic is answered from the cache, not executed twice.
    @Test func aDuplicateAtomicIsAnsweredFromTheCache() throws {
        let test = try ScriptedPeer()
        test.memory.storeBytes(of: UInt64(40), toByteOffset: 0, as: UInt64.self)
        let add = AtomicETH(virtualAddress: test.address, remoteKey: test.region.rkey, swapOrAdd: 2, compare: 0)
        test.request(.rcFetchAdd, psn: test.receivePSN, atomic: add)
        test.request(.rcFetchAdd, psn: test.receivePSN, atomic: add)
        let answers = test.sent()
        #expect(answers.map(\.opcode) == [.rcAtomicAcknowledge, .rcAtomicAcknowledge])
        #expect(answers.map { $0.headers.atomicAcknowledge?.originalRemoteData } == [40, 40])
        #expect(test.memory.load(fromByteOffset: 0, as: UInt64.self) == 42)
    }

    /// ACK coalescing: ten AckReq packets in one receive batch earn one ACK, for the last PSN.
    @Test func oneAcknowledgementPerBatch() throws {
        let test = try ScriptedPeer()
        for k in 0..<10 { write(test, psn: test.receivePSN + k, byte: UInt8(k), round: false) }
        test.device.progress()
        let acknowledgements = test.sent()
        #expect(acknowledgements.map(\.opcode) == [.rcAcknowledge])
        #expect(acknowledgements.first?.psn == test.receivePSN + 9)
        #expect(test.memory[0] == 9)
    }

    /// A poll that hands its caller a completion defers the ACK the batch earned: the caller's
    /// reply leaves first and the ACK right behind it; a poll that finds nothing acknowledges
    /// at once.
    @Test func aReplyLeavesAheadOfTheAcknowledgement() throws {
        let test = try ScriptedPeer()
        try test.postReceive(id: 1, test.element(0, 64))
        test.request(.rcSendOnly, psn: test.receivePSN, payload: [7, 7], round: false)
        let buffer = UnsafeMutableBufferPointer<SoftCompletion>.allocate(capacity: 4)
        defer { buffer.deallocate() }
        #expect(test.device.poll(test.cq, into: buffer) == 1)
        #expect(test.sent().isEmpty, "the ACK waits for the caller's next entry")
        try test.post(SoftSendRequest(id: 2), test.element(128, 2))
        #expect(test.sent().map(\.opcode) == [.rcSendOnly, .rcAcknowledge])
        // Nothing for the caller: the ACK goes out in the same poll.
        try test.postReceive(id: 3, test.element(256, 64))
        test.request(.rcSendOnly, psn: test.receivePSN + 1, payload: [8], round: false)
        let empty = test.device.createCompletionQueue(capacity: 4, channel: nil)
        #expect(test.device.poll(empty, into: buffer) == 0)
        #expect(test.sent().map(\.opcode) == [.rcAcknowledge])
    }

    /// What the device sends without a further call from the caller (its flusher thread):
    /// waits until something was sent, at most 5 s.
    func packetsTheFlusherSends(_ test: ScriptedPeer) -> [CapturedPacket] {
        var sent: [CapturedPacket] = []
        let limit = EngineClock.monotonicNanoseconds() + 5_000_000_000
        while sent.isEmpty && EngineClock.monotonicNanoseconds() < limit {
            usleep(1_000)
            sent = test.device.locked { test.sent() }
        }
        return sent
    }

    /// A deferred ACK leaves within its bound even when the caller never calls again (it waits
    /// on a TCP socket, as perftest does after its last iteration): the flusher sends it, so
    /// the peer is not left retransmitting its last message (kernel rxe with retry_cnt 7
    /// retransmits forever). The wait is bounded at 5 s; the bound itself is 2 ms.
    @Test func aDeferredAcknowledgementLeavesWithoutAFurtherCall() throws {
        let test = try ScriptedPeer(monotonicClock: true)
        try test.postReceive(id: 1, test.element(0, 64))
        test.request(.rcSendOnly, psn: test.receivePSN, payload: [7], round: false)
        let buffer = UnsafeMutableBufferPointer<SoftCompletion>.allocate(capacity: 4)
        defer { buffer.deallocate() }
        #expect(test.device.poll(test.cq, into: buffer) == 1)
        #expect(test.device.locked { test.sent() }.isEmpty, "deferred behind the caller's reply")
        let sent = packetsTheFlusherSends(test)
        #expect(sent.map(\.opcode) == [.rcAcknowledge])
        #expect(sent.first?.psn == test.receivePSN)
        #expect(test.device.snapshotCounters().acknowledgementsFlushedByTimer == 1)
    }

    /// The flusher looks less often while the caller keeps entering the engine (a spinning
    /// caller is then not preempted every millisecond): a caller that polled busily for 20 ms
    /// after a deferral, then takes one more completion and stops, still gets that deferred
    /// ACK sent by the flusher.
    @Test func aDeferredAcknowledgementLeavesAfterTheCallerWasBusyAndStopped() throws {
        let test = try ScriptedPeer(monotonicClock: true)
        try test.postReceive(id: 1, test.element(0, 64))
        try test.postReceive(id: 2, test.element(64, 64))
        let buffer = UnsafeMutableBufferPointer<SoftCompletion>.allocate(capacity: 4)
        defer { buffer.deallocate() }
        test.request(.rcSendOnly, psn: test.receivePSN, payload: [7], round: false)
        #expect(test.device.poll(test.cq, into: buffer) == 1)
        let busyUntil = EngineClock.monotonicNanoseconds() + 20_000_000
        var polls = 0
        while EngineClock.monotonicNanoseconds() < busyUntil && polls < 100_000 {
            _ = test.device.poll(test.cq, into: buffer)
            polls += 1
            usleep(50)
        }
        _ = test.device.locked { test.sent() }   // the first ACK, sent by a busy poll
        test.request(.rcSendOnly, psn: test.receivePSN + 1, payload: [8], round: false)
        #expect(test.device.poll(test.cq, into: buffer) == 1)
        #expect(test.device.locked { test.sent() }.isEmpty, "deferred behind the caller's reply")
        let sent = packetsTheFlusherSends(test)
        #expect(sent.map(\.opcode) == [.rcAcknowledge])
        #expect(sent.first?.psn == test.receivePSN + 1)
    }

    /// A SEND with no receive posted draws an RNR NAK carrying the QP's minimum RNR timer,
    /// and is accepted once a receive is there.
    @Test func aSendWithoutAReceiveDrawsAnRNRNAK() throws {
        let test = try ScriptedPeer()
        test.request(.rcSendOnly, psn: test.receivePSN, payload: [1, 2, 3])
        let rnr = test.sent()
        #expect(rnr.first?.headers.acknowledge?.syndrome == .receiverNotReady(timer: 1))
        try test.postReceive(id: 4, test.element(0, 16))
        test.request(.rcSendOnly, psn: test.receivePSN, payload: [1, 2, 3])
        #expect(test.completions().map(\.byteLength) == [3])
        #expect(test.sent().map(\.opcode) == [.rcAcknowledge])
    }

    /// A WRITE whose packets do not add up to its RETH length is refused.
    @Test func aWriteShorterThanItsRETHIsRefused() throws {
        let test = try ScriptedPeer()
        test.request(.rcRDMAWriteOnly, psn: test.receivePSN, rdma: RETH(virtualAddress: test.address, remoteKey: test.region.rkey, dmaLength: 64),
                     payload: [9, 9])
        #expect(test.sent().first?.headers.acknowledge?.syndrome == .nak(.invalidRequest))
        #expect(test.device.snapshotCounters().invalidRequestNAKsSent == 1)
    }

    /// A message that does not fit its receive fails that receive (local length error) and
    /// NAKs the requester; nothing is written past the receive's buffer.
    @Test func aSendLongerThanItsReceiveFailsTheReceive() throws {
        let test = try ScriptedPeer()
        try test.postReceive(id: 5, test.element(0, 4))
        test.request(.rcSendOnly, psn: test.receivePSN, payload: [1, 2, 3, 4, 5, 6])
        #expect(test.completions().map(\.status) == [.localLengthError])
        #expect(test.sent().first?.headers.acknowledge?.syndrome == .nak(.invalidRequest))
        #expect(test.memory[4] == 0)
    }
}
