#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SoftRoCE

/// Small packets of one engine round leave together (`HeldDatagrams`, one `sendmmsg`): a
/// ping-pong's reply with the ACK of the request it answers, a round's ACKs and small requests.
/// Checked on real loopback sockets: system calls per packet, order, nothing lost.
@Suite("SoftRoCE held datagrams (sendmmsg)", .serialized)
struct HeldDatagramsTests {
    /// A UDP socket bound to `address` on a free port (non-blocking), and its port.
    func boundSocket(_ address: UInt32) throws -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        try #require(fd >= 0)
        var storage = SocketAddress(WireEndpoint(.ipv4(address), port: 0))
        try #require(storage.withSockaddr { bind(fd, $0, $1) } == 0)
        var name = SocketAddress()
        _ = name.withMutableSockaddr { getsockname(fd, $0, $1) }
        return (fd, name.endpoint.port)
    }

    @Test func heldDatagramsLeaveInOrderInFewCallsAndARefusedOneDoesNotStopTheRest() throws {
        let (receiver, port) = try boundSocket(0x7F00_0D02)
        let (sender, _) = try boundSocket(0x7F00_0D01)
        defer { close(receiver); close(sender) }
        let held = HeldDatagrams()
        let destination = SocketAddress(WireEndpoint(.ipv4(0x7F00_0D02), port: port))
        // 80 datagrams of 1…80 bytes, each starting with its index: more than one sendmmsg holds.
        var result = WireSendResult.sent
        for index in 0..<80 {
            let datagram = [UInt8](repeating: UInt8(index), count: index + 1)
            if !held.canHold(length: datagram.count, through: sender) { result = held.send() }
            _ = datagram.withUnsafeBytes { held.hold($0, headerLength: 0, to: destination, through: sender) }
        }
        if result == .sent { result = held.send() }
        #expect(result == .sent)
        #expect(held.calls == 3, "80 datagrams in batches of \(HeldDatagrams.capacity): \(held.calls) calls")
        var buffer = [UInt8](repeating: 0, count: 256)
        for index in 0..<80 {
            let length = recv(receiver, &buffer, buffer.count, 0)
            #expect(length == index + 1 && buffer[0] == UInt8(index), "datagram \(index): \(length) B starting \(buffer[0])")
        }
        #expect(recv(receiver, &buffer, buffer.count, 0) == -1, "nothing more arrived")

        // A socket that cannot send: every datagram is refused, each is tried once, the first refusal is reported.
        let closed = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        close(closed)
        for index in 0..<3 {
            _ = [UInt8](repeating: 1, count: index + 1).withUnsafeBytes { held.hold($0, headerLength: 0, to: destination, through: closed) }
        }
        let callsBefore = held.calls
        #expect(held.send() == .failed(errno: EBADF))
        #expect(held.calls - callsBefore == 3 && held.count == 0)
    }

    /// A 2-byte SEND ping-pong driven as an application does (each side polls only its own
    /// queue): the reply and the ACK of the request it answers leave in one call, and so do the
    /// next request and the ACK of that reply — 4 packets per round trip in 2 calls (was 4).
    @Test func aPingPongsReplyAndItsAcknowledgementLeaveInOneCall() throws {
        let pair = try EnginePair(transport: .udp, udpAddresses: (.ipv4(0x7F00_0D11), .ipv4(0x7F00_0D12)))
        let roundTrips = 200
        let buffer = UnsafeMutableBufferPointer<SoftCompletion>.allocate(capacity: 8)
        defer { buffer.deallocate() }
        /// Polls `queue` (and only it) until a receive completes; bounded in rounds and time.
        func awaitReceive(_ device: SoftDevice, _ queue: SoftCompletionQueue) -> SoftCompletion? {
            let deadline = EngineClock.monotonicNanoseconds() + 5_000_000_000
            for _ in 0..<20_000_000 where EngineClock.monotonicNanoseconds() < deadline {
                let taken = device.poll(queue, into: buffer)
                for index in 0..<taken where buffer[index].opcode == .receive { return buffer[index] }
            }
            return nil
        }
        func post(_ device: SoftDevice, _ qp: SoftQueuePair, _ sge: SoftScatterGather, id: UInt64) throws {
            try withUnsafePointer(to: sge) { try device.postSend(qp, SoftSendRequest(id: id, signaled: false), UnsafeBufferPointer(start: $0, count: 1)) }
        }
        for _ in 0..<8 {
            try pair.receiveB(id: 1, pair.sgeB(0, 64))
            try withUnsafePointer(to: pair.sgeA(0, 64)) { try pair.deviceA.postReceive(pair.qpA, id: 1, UnsafeBufferPointer(start: $0, count: 1)) }
        }
        let before = (pair.deviceA.snapshotCounters(), pair.deviceB.snapshotCounters())
        for round in 0..<roundTrips {
            pair.memoryA[4096] = UInt8(truncatingIfNeeded: round)
            try post(pair.deviceA, pair.qpA, pair.sgeA(4096, 2), id: UInt64(round))
            let ping = awaitReceive(pair.deviceB, pair.cqB)
            try #require(ping?.status == .success && ping?.byteLength == 2, "round \(round): ping \(String(describing: ping))")
            #expect(pair.memoryB[0] == UInt8(truncatingIfNeeded: round))
            try pair.receiveB(id: 1, pair.sgeB(0, 64))
            pair.memoryB[4096] = UInt8(truncatingIfNeeded: round &+ 1)
            try post(pair.deviceB, pair.qpB, pair.sgeB(4096, 2), id: UInt64(round))
            let pong = awaitReceive(pair.deviceA, pair.cqA)
            try #require(pong?.status == .success, "round \(round): pong \(String(describing: pong))")
            #expect(pair.memoryA[0] == UInt8(truncatingIfNeeded: round &+ 1))
            try withUnsafePointer(to: pair.sgeA(0, 64)) { try pair.deviceA.postReceive(pair.qpA, id: 1, UnsafeBufferPointer(start: $0, count: 1)) }
        }
        let after = (pair.deviceA.snapshotCounters(), pair.deviceB.snapshotCounters())
        let packets = (after.0.sentPackets - before.0.sentPackets) + (after.1.sentPackets - before.1.sentPackets)
        let calls = (after.0.sendSystemCalls - before.0.sendSystemCalls) + (after.1.sendSystemCalls - before.1.sendSystemCalls)
        // Every request and its ACK crossed: at least 4 packets per round trip.
        #expect(packets >= UInt64(4 * roundTrips - 2), "\(packets) packets")
        #expect(after.0.completerRetry == before.0.completerRetry && after.1.duplicateRequest == before.1.duplicateRequest)
        // Two calls per round trip, a little slack for an ACK a round sent on its own.
        #expect(Double(calls) <= 0.6 * Double(packets), "\(calls) send calls for \(packets) packets")
    }

    /// 300 SENDs of 100 bytes posted at once (more than one round's `sendmmsg` holds, and more
    /// than the window): each arrives once, in order, with its own bytes.
    @Test func manySmallSendsArriveInOrderWithTheirBytes() throws {
        let pair = try EnginePair(transport: .udp, depth: 512, udpAddresses: (.ipv4(0x7F00_0D21), .ipv4(0x7F00_0D22)))
        let count = 300, size = 100
        for index in 0..<count { try pair.receiveB(id: UInt64(index), pair.sgeB(index * 128, size)) }
        for index in 0..<count {
            for offset in 0..<size { pair.memoryA[index * 128 + offset] = UInt8(truncatingIfNeeded: index &* 7 &+ offset) }
            try pair.postA(SoftSendRequest(id: UInt64(index), signaled: index == count - 1), pair.sgeA(index * 128, size))
        }
        #expect(pair.completions(from: pair.cqA, count: 1).first?.status == .success)
        let received = pair.completions(from: pair.cqB, count: count)
        #expect(received.count == count)
        #expect(received.map(\.id) == (0..<count).map(UInt64.init), "receives completed in posting order")
        var mismatches = 0
        for index in 0..<count {
            for offset in 0..<size where pair.memoryB[index * 128 + offset] != UInt8(truncatingIfNeeded: index &* 7 &+ offset) { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(pair.deviceB.snapshotCounters().duplicateRequest == 0)
    }
}
