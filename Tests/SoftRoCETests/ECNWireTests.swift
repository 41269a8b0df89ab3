import Testing
@testable import SoftRoCE

/// The DSCP and ECN bits on real sockets over loopback: what a sender asks for per datagram
/// arrives in the receiver's batch, through the UDP socket's IP_RECVTOS/IPV6_RECVTCLASS control
/// messages and through the raw socket's IPv4 header alike.
@Suite("SoftRoCE ECN on UDP sockets")
struct ECNWireTests {
    static let data = TrafficClass(dscp: 26, ecn: .ect0)
    static let sent = [data, TrafficClass(dscp: 26, ecn: .congestionExperienced), .congestionNotification, .unmarked]

    /// Sender and receiver address, and each side's raw sockets: a raw sender writes the TOS
    /// into the IPv4 header it builds (IP_HDRINCL) when it sends from a per-QP source port.
    @Test(arguments: [(SoftAddress.ipv4(0x7F00_0001), SoftAddress.ipv4(0x7F00_0002), UDPWire.RawReceive.never, UDPWire.RawReceive.never),
                      (.ipv4(0x7F00_0001), .ipv4(0x7F00_0002), .required, .never),
                      (.ipv4(0x7F00_0001), .ipv4(0x7F00_0002), .never, .required),
                      (SoftAddress("::1")!, SoftAddress("::1")!, .never, .never)])
    func everyDatagramArrivesWithTheTrafficClassItWasSentWith(sender: SoftAddress, receiver: SoftAddress, raw: UDPWire.RawReceive,
                                                               rawSender: UDPWire.RawReceive) throws {
        let receiving: UDPWire, sending: UDPWire
        do {
            receiving = try UDPWire(address: receiver, port: 0, rawReceive: raw, readsTrafficClass: true)
            sending = try UDPWire(address: sender, port: 0, rawReceive: rawSender, trafficClass: Self.data)
        } catch {
            // Raw sockets need CAP_NET_RAW; without it the UDP path is what runs.
            try #require(raw != .required && rawSender != .required, "\(error)")
            return
        }
        defer { receiving.close(); sending.close() }
        let sourcePort = sending.choosesSourcePort ? 0xC123 : sending.local.port
        let payload = [UInt8](repeating: 0x11, count: 32)
        for trafficClass in Self.sent {
            let result = payload.withUnsafeBytes { sending.send($0, from: sourcePort, to: receiving.local, trafficClass: trafficClass) }
            #expect(result == .sent)
        }
        let batch = ReceiveBatch(capacity: 8)
        var received: [TrafficClass] = []
        // Loopback delivers before send returns; a few tries cover a scheduler hiccup.
        for _ in 0..<100 where received.count < Self.sent.count {
            receiving.receive(into: batch)
            for index in 0..<batch.count {
                #expect(batch.datagram(index).count == payload.count)
                #expect(batch.source(index).port == sourcePort)
                received.append(batch.trafficClass(index))
            }
        }
        #expect(received == Self.sent)
    }
}
