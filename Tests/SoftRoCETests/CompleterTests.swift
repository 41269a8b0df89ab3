import RoCEWire
import Testing
@testable import SoftRoCE

/// The requester and completer roles, driven packet by packet: the engine is the requester,
/// the scripted peer answers with crafted ACKs, NAKs, RNR NAKs and responses, and the
/// clock moves only when the test says.
@Suite("SoftRoCE requester and completer (scripted peer)")
struct CompleterTests {
    static let nakOutcomes: [(code: UInt8, status: SoftCompletionStatus)] = [
        (AETH.NAKCode.invalidRequest.rawValue, .remoteInvalidRequest),
        (AETH.NAKCode.remoteAccessError.rawValue, .remoteAccessError),
        (AETH.NAKCode.remoteOperationalError.rawValue, .remoteOperationError),
        (AETH.NAKCode.invalidRDRequest.rawValue, .remoteInvalidRequest),
    ]

    /// Every NAK code but sequence error ends the request with its status and flushes the rest.
    @Test(arguments: 0..<4)
    func eachNAKCodeFailsTheRequestAndFlushesTheRest(case index: Int) throws {
        let (code, status) = Self.nakOutcomes[index]
        let test = try ScriptedPeer()
        try test.post(SoftSendRequest(id: 1), test.element(0, 8))
        try test.post(SoftSendRequest(id: 2), test.element(0, 8))
        #expect(test.sent().map(\.psn) == [test.sendPSN, test.sendPSN + 1])
        test.acknowledge(test.sendPSN, .nak(AETH.NAKCode(rawValue: code)))
        #expect(test.completions().map(\.status) == [status, .flushed])
        #expect(test.device.state(of: test.qp) == .error)
    }

    /// A NAK-sequence acknowledges what precedes it and makes the requester resend from it.
    @Test func sequenceErrorNAKGoesBackToTheNamedPSN() throws {
        let test = try ScriptedPeer(mtu: 1024)
        var write = SoftSendRequest(id: 1, opcode: .write, remoteAddress: 0x1000, remoteKey: 0x77)
        write.signaled = true
        try test.post(write, test.element(0, 4096))
        let first = test.sent()
        #expect(first.map(\.opcode) == [.rcRDMAWriteFirst, .rcRDMAWriteMiddle, .rcRDMAWriteMiddle, .rcRDMAWriteLast])
        test.acknowledge(test.sendPSN + 2, .nak(.psnSequenceError))
        let resent = test.sent()
        #expect(resent.map(\.psn) == [test.sendPSN + 2, test.sendPSN + 3])
        #expect(resent.map(\.opcode) == [.rcRDMAWriteMiddle, .rcRDMAWriteLast])
        #expect(test.device.snapshotCounters().receivedSequenceError == 1)
        test.acknowledge(test.sendPSN + 3)
        #expect(test.completions().map(\.status) == [.success])
    }

    /// After an RNR NAK with timer code t, nothing is resent before IBTA table 45's time for t,
    /// and the request is resent at it — for all 32 codes.
    @Test(arguments: 0..<32)
    func receiverNotReadyWaitsItsTimer(code: Int) throws {
        let test = try ScriptedPeer()
        try test.post(SoftSendRequest(id: 1), test.element(0, 8))
        #expect(test.sent().count == 1)
        test.acknowledge(test.sendPSN, .receiverNotReady(timer: UInt8(code)))
        let wait = rnrTimerNanoseconds[code]
        test.wait(nanoseconds: wait - 1)
        #expect(test.sent().isEmpty, "resent before the RNR timer of code \(code)")
        test.wait(nanoseconds: 1)
        #expect(test.sent().map(\.psn) == [test.sendPSN])
        #expect(test.device.snapshotCounters().receivedRNRError == 1)
    }

    @Test func receiverNotReadyRetriesRunOut() throws {
        let test = try ScriptedPeer(rnrRetry: 2)
        try test.post(SoftSendRequest(id: 1), test.element(0, 8))
        for _ in 0..<3 {
            #expect(test.sent().count == 1)
            test.acknowledge(test.sendPSN, .receiverNotReady(timer: 1))
            test.wait(nanoseconds: rnrTimerNanoseconds[1])
        }
        #expect(test.completions().map(\.status) == [.receiverNotReadyRetryExceeded])
        #expect(test.device.snapshotCounters().rnrRetryExceeded == 1)
    }

    /// Timeouts: each resends from the first unacknowledged PSN; the (retry+1)-th fails the
    /// request; nothing is sent twice on purpose.
    @Test func timeoutsResendOnceEachUntilTheRetriesRunOut() throws {
        let test = try ScriptedPeer(timeout: 10, retryCount: 3)
        try test.post(SoftSendRequest(id: 1), test.element(0, 8))
        try test.post(SoftSendRequest(id: 2), test.element(0, 8))
        #expect(test.sent().count == 2)
        let timeout: UInt64 = 4096 << 10
        for retry in 0..<3 {
            test.wait(nanoseconds: timeout - 1)
            #expect(test.sent().isEmpty, "early retransmission before retry \(retry)")
            test.wait(nanoseconds: 1)
            #expect(test.sent().map(\.psn) == [test.sendPSN, test.sendPSN + 1], "retry \(retry)")
        }
        test.wait(nanoseconds: timeout)
        #expect(test.completions().map(\.status) == [.retryExceeded, .flushed])
        #expect(test.device.snapshotCounters().completerRetry == 4)
    }

    /// Progress resets the retry budget: an ACK between timeouts starts the count again.
    @Test func anAcknowledgementRestoresTheRetryBudget() throws {
        let test = try ScriptedPeer(timeout: 10, retryCount: 1)
        try test.post(SoftSendRequest(id: 1), test.element(0, 8))
        try test.post(SoftSendRequest(id: 2), test.element(0, 8))
        _ = test.sent()
        test.wait(nanoseconds: 4096 << 10)    // retry 1 of 1
        _ = test.sent()
        test.acknowledge(test.sendPSN)        // progress: request 1 done
        test.wait(nanoseconds: 4096 << 10)    // would exceed without the reset
        #expect(test.sent().map(\.psn) == [test.sendPSN + 1])
        test.acknowledge(test.sendPSN + 1)
        #expect(test.completions().map(\.status) == [.success, .success])
    }

    /// A READ whose middle response is lost: the gap makes the requester ask again, the
    /// replayed responses are placed in order, the data arrives whole.
    @Test func aLostReadResponseIsAskedForAgain() throws {
        let test = try ScriptedPeer(mtu: 1024)
        try test.post(SoftSendRequest(id: 7, opcode: .read, remoteAddress: 0x9000, remoteKey: 0x42), test.element(0, 3000))
        let request = test.sent()
        #expect(request.map(\.opcode) == [.rcRDMAReadRequest])
        #expect(request.first?.headers.rdma?.dmaLength == 3000)
        func response(_ index: Int, _ opcode: Opcode) {
            var headers = TransportHeaders(BaseTransportHeader(opcode: opcode, destinationQP: test.qp.queuePairNumber, psn: test.sendPSN + index))
            if opcode != .rcRDMAReadResponseMiddle { headers.acknowledge = AETH(syndrome: .ack(), messageSequenceNumber: 1) }
            let length = index == 2 ? 3000 - 2048 : 1024
            test.deliver(headers, payload: (0..<length).map { UInt8(truncatingIfNeeded: index * 1024 + $0) })
        }
        response(0, .rcRDMAReadResponseFirst)
        response(2, .rcRDMAReadResponseLast)          // the middle one was lost
        let again = test.sent()
        #expect(again.map(\.opcode) == [.rcRDMAReadRequest])
        #expect(again.first?.psn == test.sendPSN, "a READ resumes on a request boundary")
        #expect(test.completions().isEmpty)
        response(0, .rcRDMAReadResponseFirst)          // a replay of what was placed: ignored
        response(1, .rcRDMAReadResponseMiddle)
        response(2, .rcRDMAReadResponseLast)
        #expect(test.completions().map(\.status) == [.success])
        #expect(Array(test.memory[0..<3000]) == (0..<3000).map { UInt8(truncatingIfNeeded: $0) })
    }

    /// An atomic ACK places the original value and completes the request.
    @Test func anAtomicAcknowledgementPlacesTheOriginalValue() throws {
        let test = try ScriptedPeer()
        try test.post(SoftSendRequest(id: 3, opcode: .fetchAndAdd, remoteAddress: 0x8000, remoteKey: 0x42, compareAdd: 1), test.element(64, 8))
        #expect(test.sent().map(\.opcode) == [.rcFetchAdd])
        var headers = TransportHeaders(BaseTransportHeader(opcode: .rcAtomicAcknowledge, destinationQP: test.qp.queuePairNumber, psn: test.sendPSN))
        headers.acknowledge = AETH(syndrome: .ack(), messageSequenceNumber: 1)
        headers.atomicAcknowledge = AtomicAckETH(originalRemoteData: 0x1122_3344_5566_7788)
        test.deliver(headers)
        #expect(test.completions().map(\.opcode) == [.fetchAndAdd])
        #expect(test.memory.load(fromByteOffset: 64, as: UInt64.self) == 0x1122_3344_5566_7788)
    }

    /// Responses naming no PSN in flight are counted and change nothing.
    @Test func aResponseForNoPSNInFlightIsIgnored() throws {
        let test = try ScriptedPeer()
        try test.post(SoftSendRequest(id: 1), test.element(0, 8))
        _ = test.sent()
        test.acknowledge(test.sendPSN + 50)
        test.acknowledge(test.sendPSN - 1, .nak(.remoteAccessError))
        #expect(test.completions().isEmpty)
        #expect(test.device.state(of: test.qp) == .readyToSend)
        #expect(test.device.snapshotCounters().staleResponses == 2)
    }

    /// PSNs wrap at 2^24 inside one message, and the ACK after the wrap completes it.
    @Test func sequenceNumbersWrapInsideAMessage() throws {
        let test = try ScriptedPeer(sendPSN: 0xFF_FFFE, mtu: 256)
        try test.post(SoftSendRequest(id: 1, opcode: .write, remoteAddress: 0x1000, remoteKey: 0x7), test.element(0, 1024))
        #expect(test.sent().map(\.psn.rawValue) == [0xFF_FFFE, 0xFF_FFFF, 0, 1])
        test.acknowledge(0)
        #expect(test.completions().isEmpty)
        test.acknowledge(1)
        #expect(test.completions().map(\.status) == [.success])
    }

    /// Moving a QP to ERROR flushes every outstanding send and posted receive.
    @Test func errorFlushesSendsAndReceives() throws {
        let test = try ScriptedPeer()
        for id in 1...3 { try test.post(SoftSendRequest(id: UInt64(id)), test.element(0, 8)) }
        try test.postReceive(id: 10, test.element(512, 64))
        try test.postReceive(id: 11, test.element(1024, 64))
        try test.device.modify(test.qp, SoftQueuePairAttributes(state: .error))
        let flushed = test.completions()
        #expect(flushed.map(\.id) == [1, 2, 3, 10, 11])
        #expect(flushed.allSatisfy { $0.status == .flushed })
    }
}
