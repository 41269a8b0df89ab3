import Testing
@testable import SoftRoCE

/// How many datagrams a receive call asks for (`ReceiveLimit`): one right after an empty
/// call, so a busy-polled lone datagram costs no second, empty try; the batch's capacity
/// otherwise, so a burst or a stream is taken in few calls.
@Suite("SoftRoCE receive limit")
struct ReceiveLimitTests {
    @Test func oneAfterAnEmptyCallTheCapacityAfterOneThatReceived() {
        var limit = ReceiveLimit()
        #expect(limit.next(capacity: 64) == 64)
        limit.record(received: 0)
        #expect(limit.next(capacity: 64) == 1)
        limit.record(received: 0)
        #expect(limit.next(capacity: 64) == 1)
        limit.record(received: 1)
        #expect(limit.next(capacity: 64) == 64)
        limit.record(received: 64)
        #expect(limit.next(capacity: 16) == 16)
    }

    /// On real sockets, through the UDP socket's `recvmsg` loop and the raw socket's
    /// `recvmmsg`: an empty poll, then three datagrams waiting — the next call takes one, the
    /// call after it the other two, in order.
    @Test(arguments: [UDPWire.RawReceive.never, .required])
    func aPollAfterAnEmptyOneTakesOneDatagramAndTheNextTheRest(raw: UDPWire.RawReceive) throws {
        let receiving: UDPWire, sending: UDPWire
        do {
            receiving = try UDPWire(address: .ipv4(0x7F00_0E01), port: 0, rawReceive: raw)
            sending = try UDPWire(address: .ipv4(0x7F00_0E02), port: 0)
        } catch {
            // Raw sockets need CAP_NET_RAW; without it the UDP path is what runs.
            try #require(raw != .required, "\(error)")
            return
        }
        defer { receiving.close(); sending.close() }
        let batch = ReceiveBatch(capacity: 8)
        receiving.receive(into: batch)
        #expect(batch.count == 0)
        for index in 0..<3 {
            let payload = [UInt8](repeating: UInt8(index + 1), count: 40)
            #expect(payload.withUnsafeBytes { sending.send($0, from: sending.local.port, to: receiving.local, trafficClass: .unmarked) } == .sent)
        }
        var calls: [[UInt8]] = []
        // Loopback delivers before send returns; a few tries cover a scheduler hiccup.
        for _ in 0..<100 where calls.map(\.count).reduce(0, +) < 3 {
            receiving.receive(into: batch)
            if batch.count > 0 { calls.append((0..<batch.count).map { batch.datagram($0).first ?? 0 }) }
        }
        #expect(calls == [[1], [2, 3]])
    }
}
