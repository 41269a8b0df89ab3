import RDMA
import Testing
@testable import RDMAEndpoint

/// What a call costs in verbs calls (the endpoint's own counts, on either backend), and
/// that selective signalling never strands a send.
@Suite("Message endpoint verbs cost", .serialized)
struct VerbsCostTests {
    /// One call at a time in poll mode, answered in the same thread: `count` calls.
    private func pingPong(_ pair: EndpointPair, count: Int, payload: [UInt8]) throws {
        let client = pair.client, server = pair.server
        for _ in 0..<count {
            let id = try #require(try payload.withUnsafeBytes { try client.trySendRequest($0) })
            var answered = false, rounds = 0
            while rounds < 1_000_000 {
                rounds += 1
                try server.poll()
                if !answered, let request = try server.tryReceive() {
                    answered = try request.withUnsafeBytes { try server.trySendResponse(to: request.callID, $0) }
                }
                try client.poll()
                if let response = try client.takeResponse(id) {
                    #expect(response.count == payload.count)
                    break
                }
            }
            #expect(rounds < 1_000_000)
        }
    }

    /// Per call, once warm: one SEND each way, a completion for one send in 8 or fewer
    /// (was every send: two completions per call on each side), about one completion
    /// polled per message received, no control write.
    @Test func aPollModeCallCostsOneSendOneReceiveAndFewCompletions() throws {
        let pair = try EndpointPair(mode: .poll)
        try pingPong(pair, count: 100, payload: [1, 2])
        let clientBefore = pair.client.statistics, serverBefore = pair.server.statistics
        let calls = 512
        try pingPong(pair, count: calls, payload: [1, 2])
        for (side, before) in [(pair.client, clientBefore), (pair.server, serverBefore)] {
            let after = side.statistics
            let posted = after.sendRequestsPosted - before.sendRequestsPosted
            let signalled = after.sendRequestsSignalled - before.sendRequestsSignalled
            let completions = after.completionsPolled - before.completionsPolled
            #expect(posted == UInt64(calls), "one SEND per call, no control write")
            #expect(signalled * 8 <= posted, "\(signalled) of \(posted) sends signalled")
            #expect(completions <= UInt64(calls) + UInt64(calls) / 8, "\(completions) completions for \(calls) calls")
            #expect(after.receivesPosted - before.receivesPosted <= UInt64(calls))
            #expect(after.receivePostCalls - before.receivePostCalls <= UInt64(calls))
        }
        #expect(pair.client.statistics.calls - clientBefore.calls == UInt64(calls))
        pair.close()
    }

    /// `poll(rounds:)` runs empty rounds under one lock — all of them while nothing
    /// happens — and returns after the first round that handled a completion.
    @Test func aPollRunsItsEmptyRoundsUnderOneLockAndStopsAtTheFirstBusyOne() throws {
        let pair = try EndpointPair(mode: .poll)
        try pingPong(pair, count: 20, payload: [1, 2])
        let client = pair.client, server = pair.server
        let pollsPerRound: UInt64 = client.queuePair.sendCompletionQueue === client.queuePair.receiveCompletionQueue ? 1 : 2
        // A late ACK may still complete a signalled send: then fewer rounds ran.
        var before = client.statistics.completionQueuePolls
        let handled = try client.poll(rounds: 32)
        let polls = client.statistics.completionQueuePolls - before
        if handled == 0 { #expect(polls == 32 * pollsPerRound) } else { #expect(polls <= 32 * pollsPerRound) }

        let payload: [UInt8] = [7]
        #expect(try payload.withUnsafeBytes { try server.trySend($0) })
        before = client.statistics.completionQueuePolls
        let busy = try client.poll(rounds: 1_000_000)
        #expect(busy > 0, "the message arrived within a million rounds")
        #expect(client.statistics.completionQueuePolls - before < 1_000_000 * pollsPerRound, "the poll returned at its first busy round")
        let message = try client.tryReceive()
        #expect(message?.bytes == payload)
        pair.close()
    }

    /// A `callPolling` waiting for its response ends with the connection's failure (here
    /// the peer's close), although its empty rounds no longer look at the call.
    @Test func callPollingEndsWithThePeersCloseInsteadOfWaitingOn() throws {
        let pair = try EndpointPair(mode: .poll)
        try pingPong(pair, count: 2, payload: [1])
        pair.server.close()
        #expect(throws: EndpointError.peerClosed(reason: MessageEndpoint.normalCloseReason)) {
            let request: [UInt8] = [1, 2]
            let answered = try request.withUnsafeBytes { try pair.client.callPolling($0).count }
            Issue.record("answered \(answered) bytes by a closed peer")
        }
        pair.close()
    }

    /// Four send buffers and messages too large to go inline: each send holds its buffer
    /// until a signalled completion frees it (here every third send, the one that leaves
    /// fewer than two free). A thousand messages in order, none stranded.
    @Test func aSmallSendPoolNeverStrandsBehindUnsignalledSends() throws {
        var configuration = EndpointConfiguration()
        configuration.sendSlots = 4
        configuration.receiveSlots = 8
        let pair = try EndpointPair(client: configuration, mode: .poll)
        let client = pair.client, server = pair.server
        let size = 1024
        var received = 0, rounds = 0
        // One round of both sides; the server reads (and releases) what arrived.
        func round() throws {
            rounds += 1
            try client.poll()
            try server.poll()
            while let message = try server.tryReceive() {
                #expect(message.bytes == pattern(size, seed: received))
                received += 1
            }
        }
        for index in 0..<1000 {
            let payload = pattern(size, seed: index)
            while try !payload.withUnsafeBytes({ try client.trySend($0) }) && rounds < 1_000_000 { try round() }
        }
        while received < 1000 && rounds < 1_000_000 { try round() }
        #expect(received == 1000)
        let statistics = client.statistics
        #expect(statistics.inlineSends == 0)
        #expect(statistics.sendRequestsSignalled < statistics.sendRequestsPosted)
        #expect(pair.queuePairs.rnrEvents == 0)
        pair.close()
    }

    @Test func theLedgerSignalsEveryIntervalAndWhenShortAndRetiresInOrder() {
        var ledger = SendQueueLedger(capacity: 64)
        #expect(ledger.signalInterval == 16)
        var ids: [UInt64] = []
        for slot in 0..<16 {
            let signalled = ledger.mustSignal(always: false, sendSlotsLeft: 100)
            #expect(signalled == (slot == 15))
            ids.append(ledger.nextID(.eagerSend))
            ledger.record(.init(tag: .eagerSend, sendSlot: Int32(slot)), signalled: signalled)
        }
        let alwaysSignalled = ledger.mustSignal(always: true, sendSlotsLeft: 100)
        #expect(alwaysSignalled)
        let lastBufferSignalled = ledger.mustSignal(always: false, sendSlotsLeft: 1)
        #expect(lastBufferSignalled, "the last send buffer goes out signalled")
        var retired: [Int32] = []
        ledger.retire(through: ids[15]) { retired.append($0.sendSlot) }
        #expect(retired == Array(0..<16))
        ledger.retire(through: ids[3]) { _ in Issue.record("a stale completion retired a request") }
        #expect(ledger.outstanding == 0)
        // Queue room: the request that would leave less than `roomKept` is signalled.
        for _ in 0..<59 { ledger.record(.init(tag: .controlWrite, sendSlot: -1), signalled: true) }
        let roomyUnsignalled = !ledger.mustSignal(always: false, sendSlotsLeft: 100)
        #expect(roomyUnsignalled)
        ledger.record(.init(tag: .controlWrite, sendSlot: -1), signalled: true)
        let shortSignalled = ledger.mustSignal(always: false, sendSlotsLeft: 100)
        #expect(shortSignalled)
    }
}
