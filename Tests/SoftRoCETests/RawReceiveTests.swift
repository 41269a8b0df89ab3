#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization
import Testing
@testable import SoftRoCE

/// The raw receive socket (strict ICRC) is a socket of the whole host until its `bind` and
/// filter are in place: every UDP datagram sent meanwhile, to any address and port, is queued
/// on it. Those are other flows' packets — in the test suite, parallel engines' — and used to
/// reach the engine, fail their ICRC and make tests that count ICRC errors fail now and then.
@Suite("SoftRoCE raw receive socket")
struct RawReceiveTests {
    /// A sender floods another address with small datagrams while 40 raw-receiving wires are
    /// opened one after the other: none of them receives a single datagram (all of the traffic
    /// is for 127.0.15.2). Bounded: the flood stops after the wires, or after 5 s.
    @Test func aRawSocketOpenedDuringOtherTrafficKeepsNoneOfIt() throws {
        let sink = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0), source = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(sink); close(source) }
        var sinkAddress = SocketAddress(WireEndpoint(.ipv4(0x7F00_0F02), port: 0))
        try #require(sinkAddress.withSockaddr { bind(sink, $0, $1) } == 0)
        _ = sinkAddress.withMutableSockaddr { getsockname(sink, $0, $1) }
        var sourceAddress = SocketAddress(WireEndpoint(.ipv4(0x7F00_0F03), port: 0))
        try #require(sourceAddress.withSockaddr { bind(source, $0, $1) } == 0)
        let stop = Atomic<Bool>(false), sent = Atomic<Int>(0)
        let flooding = DispatchSemaphore(value: 0)
        let destination = sinkAddress
        DispatchQueue.global().async { [source] in
            var address = destination
            let payload = [UInt8](repeating: 0x5A, count: 64)
            let end = EngineClock.monotonicNanoseconds() + 5_000_000_000
            while !stop.load(ordering: .relaxed) && EngineClock.monotonicNanoseconds() < end {
                for _ in 0..<64 {
                    if address.withSockaddr({ sendto(source, payload, payload.count, 0, $0, $1) }) > 0 { sent.add(1, ordering: .relaxed) }
                }
                // Nobody reads the sink: empty it so that datagrams keep flowing.
                SocketCall.discardQueued(sink)
            }
            flooding.signal()
        }
        defer { stop.store(true, ordering: .relaxed); flooding.wait() }
        // Let the flood start.
        for _ in 0..<1000 where sent.load(ordering: .relaxed) < 1000 { usleep(1000) }
        let batch = ReceiveBatch(capacity: 64)
        var foreign = 0
        for _ in 0..<40 {
            let wire: UDPWire
            do {
                wire = try UDPWire(address: .ipv4(0x7F00_0F01), port: 0, rawReceive: .required)
            } catch {
                // Raw sockets need CAP_NET_RAW (CI runs as root); without one there is no such window.
                try #require(getuid() != 0, "\(error)")
                return
            }
            for _ in 0..<3 {
                wire.receive(into: batch)
                foreign += batch.count
            }
            wire.close()
        }
        #expect(sent.load(ordering: .relaxed) > 1000, "the flood ran")
        #expect(foreign == 0, "\(foreign) datagrams of another flow reached the wires")
    }
}
