#if canImport(Glibc)
import Glibc
#endif
import RDMA
import Synchronization
import Testing
@testable import RDMAEndpoint

/// Poll mode without `ReceivedMessage` values: `answerPolling` answers requests in place,
/// `callPolling(_:readingResponse:)` reads the response in place; both give the buffers
/// back under the lock they hold.
@Suite("Message endpoint in-place poll mode", .serialized)
struct InPlacePollingTests {
    /// Requests are answered in place (here reversed) while one-way messages stay queued
    /// for `tryReceive` in arrival order: answering stops at a message at the head.
    @Test func answeringInPlaceStopsAtAOneWayMessageSoArrivalOrderHolds() throws {
        let pair = try EndpointPair(mode: .poll)
        let client = pair.client, server = pair.server
        let first: [UInt8] = [1, 2, 3], second: [UInt8] = [4, 5, 6, 7]
        #expect(try [UInt8(10)].withUnsafeBytes { try client.trySend($0) })
        let firstID = try #require(try first.withUnsafeBytes { try client.trySendRequest($0) })
        #expect(try [UInt8(11)].withUnsafeBytes { try client.trySend($0) })
        let secondID = try #require(try second.withUnsafeBytes { try client.trySendRequest($0) })
        var answered = 0, order: [String] = [], rounds = 0
        func reverse(_ request: UnsafeRawBufferPointer, _ response: UnsafeMutableRawBufferPointer) -> Int {
            answered += 1
            order.append("request \(request.count)")
            return reversing(request, into: response)
        }
        while order.count < 4 && rounds < 100_000 {
            rounds += 1
            try client.poll()
            try server.answerPolling(reverse)
            if let message = try server.tryReceive() { order.append("message \(message.bytes)") }
        }
        #expect(order == ["message [10]", "request 3", "message [11]", "request 4"])
        var responses: [UInt64: [UInt8]] = [:]
        while responses.count < 2 && rounds < 200_000 {
            rounds += 1
            try client.poll()
            try server.poll()
            for id in [firstID, secondID] where responses[id] == nil {
                if let response = try client.takeResponse(id) { responses[id] = response.bytes }
            }
        }
        #expect(responses[firstID] == [3, 2, 1] && responses[secondID] == [7, 6, 5, 4])
        #expect(answered == 2)
        #expect(pair.queuePairs.rnrEvents == 0)
        pair.close()
    }

    /// 2,000 calls over a 16-buffer pool on each side, the server answering in place in
    /// its own thread: every buffer went back (otherwise the credits run out and a call
    /// times out), every response is the request's bytes reversed.
    @Test func inPlaceCallsAndAnswersGiveEveryBufferBack() throws {
        var configuration = EndpointConfiguration()
        configuration.receiveSlots = 16
        configuration.sendSlots = 16
        let pair = try EndpointPair(client: configuration, mode: .poll)
        let server = ServerThread(pair.server)
        defer { server.finish() }
        let calls = 2_000
        var mismatches = 0
        for index in 0..<calls {
            let request = pattern(1 + index % 200, seed: index)
            let matches = try request.withUnsafeBytes { bytes in
                try pair.client.callPolling(bytes, timeout: .seconds(20)) { response in
                    response.elementsEqual(request.reversed())
                }
            }
            if !matches { mismatches += 1 }
        }
        #expect(mismatches == 0)
        let client = pair.client.statistics
        #expect(client.calls == UInt64(calls))
        #expect(client.receivesPosted >= UInt64(calls), "each response's buffer was posted again")
        #expect(pair.queuePairs.rnrEvents == 0)
    }

    /// An answer or response reader that calls its own endpoint would deadlock on the
    /// endpoint's lock; it traps with a message instead.
    @Test func callingTheEndpointFromInsideAnAnswerTraps() async throws {
        let result = try await #require(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let pair = try EndpointPair(mode: .poll)
            let server = pair.server
            _ = try [UInt8(1)].withUnsafeBytes { try pair.client.trySendRequest($0) }
            for _ in 0..<100_000 {
                try pair.client.poll()
                try server.answerPolling { _, _ in
                    _ = try? server.poll()
                    return 0
                }
            }
        }
        let output = String(decoding: result.standardErrorContent, as: UTF8.self)
        #expect(output.contains("called from inside its own answerPolling answer"), "\(output.suffix(400))")
    }

    /// An answer longer than the eager limit (its room) traps rather than being sent.
    @Test func anAnswerLongerThanItsRoomTraps() async throws {
        let result = try await #require(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let pair = try EndpointPair(mode: .poll)
            _ = try [UInt8(1)].withUnsafeBytes { try pair.client.trySendRequest($0) }
            for _ in 0..<100_000 {
                try pair.client.poll()
                try pair.server.answerPolling { _, response in response.count + 1 }
            }
        }
        let output = String(decoding: result.standardErrorContent, as: UTF8.self)
        #expect(output.contains("outside 0...4096 (the eager limit)"), "\(output.suffix(400))")
    }
}

/// The answer both servers here give: the request's bytes reversed. Returns its length.
private func reversing(_ request: UnsafeRawBufferPointer, into response: UnsafeMutableRawBufferPointer) -> Int {
    for index in 0..<request.count { response[index] = request[request.count - 1 - index] }
    return request.count
}

/// A poll-mode server answering every request in place with its bytes reversed, in a
/// thread of its own, until `finish`.
private final class ServerThread: @unchecked Sendable {
    let endpoint: MessageEndpoint
    private let stop = Atomic<Bool>(false)
    private var thread = pthread_t()

    init(_ endpoint: MessageEndpoint) {
        self.endpoint = endpoint
        pthread_create(&thread, nil, { raw in
            let server = Unmanaged<ServerThread>.fromOpaque(raw!).takeUnretainedValue()
            var emptyRounds = 0
            while !server.stop.load(ordering: .relaxed) {
                guard let handled = try? server.endpoint.answerPolling(rounds: 8, reversing) else { break }
                if handled == 0 { MessageEndpoint.idle(&emptyRounds, rounds: 8) }
            }
            return nil
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    func finish() {
        stop.store(true, ordering: .relaxed)
        pthread_join(thread, nil)
        endpoint.close()
    }
}
