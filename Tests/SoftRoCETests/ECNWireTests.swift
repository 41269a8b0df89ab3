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

    /// A CNP (DSCP 48) to the same peer and port as a pending GSO batch of data leaves on its
    /// own with its own traffic class. It may not join the batch as its short last segment: a
    /// super-datagram carries one IP header, the data's DSCP/ECN, and the CNP would lose its
    /// class (what happened until 9d4345e).
    @Test func aNotificationNeverJoinsADataBatch() throws {
        let receiving = try UDPWire(address: .ipv4(0x7F00_0001), port: 0, readsTrafficClass: true)
        let sending = try UDPWire(address: .ipv4(0x7F00_0002), port: 0, trafficClass: Self.data)
        defer { receiving.close(); sending.close() }
        let port = sending.local.port
        let segment = [UInt8](repeating: 0x22, count: 1024), notification = [UInt8](repeating: 0x33, count: 32)
        sending.holdSends()
        for _ in 0..<3 {
            _ = sending.prepareSend(length: segment.count, from: port, to: receiving.local, trafficClass: Self.data, batchRole: .opens)
            #expect(segment.withUnsafeBytes { sending.send($0, from: port, to: receiving.local, trafficClass: Self.data) } == .sent)
        }
        _ = sending.prepareSend(length: notification.count, from: port, to: receiving.local, trafficClass: .congestionNotification, batchRole: .none)
        #expect(notification.withUnsafeBytes { sending.send($0, from: port, to: receiving.local, trafficClass: .congestionNotification) } == .sent)
        #expect(sending.releaseSends() == .sent)
        #expect(sending.superDatagramsSent == 1, "the data left as one super-datagram")

        let batch = ReceiveBatch(capacity: 8)
        var dataBytes = 0, notifications: [(length: Int, trafficClass: TrafficClass)] = []
        for _ in 0..<100 where dataBytes < 3 * segment.count || notifications.isEmpty {
            receiving.receive(into: batch)
            for index in 0..<batch.count {
                let datagram = batch.datagram(index)
                if datagram.first == 0x33 || datagram.last == 0x33 {
                    notifications.append((datagram.count, batch.trafficClass(index)))
                } else {
                    #expect(batch.trafficClass(index) == Self.data)
                    dataBytes += datagram.count
                }
            }
        }
        #expect(dataBytes == 3 * segment.count, "the data, with the data's class")
        #expect(notifications.count == 1 && notifications.first?.length == notification.count)
        #expect(notifications.first?.trafficClass == .congestionNotification, "the CNP kept its own class")
    }
}
