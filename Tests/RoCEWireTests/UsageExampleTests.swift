import RoCEWire
import Testing

/// The README's usage example, kept compiling and true.
@Test func readmeUsageExample() throws {
    let payload: [UInt8] = Array("hello, rxe".utf8)
    var send = [UInt8](repeating: 0, count: 2048)
    let datagram = try send.withUnsafeMutableBytes { sendBuffer in
        try payload.withUnsafeBytes { payload in
            // --- README begins
            let flow = RoCEEncapsulation(network: .ipv4(source: .init(10, 0, 0, 1), destination: .init(10, 0, 0, 2)),
                                         sourcePort: 0xC001)   // IPv4 ID 0 + DF: what a UDP socket sends
            let headers = TransportHeaders(BTH(opcode: .rcSendOnlyWithImmediate, destinationQP: 0x11, ackRequest: true, psn: 7),
                                           immediateData: ImmDt(42))
            let n = try RoCEPacket.serialize(headers: headers, payload: payload, into: sendBuffer)
            try ICRC.seal(transportPacket: .init(rebasing: sendBuffer[..<n]), encapsulation: flow)
            // --- README ends
            return (Array(sendBuffer[..<n]), flow)
        }
    }
    try datagram.0.withUnsafeBytes { datagramBytes in
        let flow = datagram.1
        let datagram = datagramBytes
        // --- README begins
        let packet = try RoCEPacket(parsing: datagram)
        try ICRC.verify(transportPacket: datagram, encapsulation: flow)
        let data = packet.payload(in: datagram)          // in place, no copy
        // --- README ends
        #expect(Array(data) == payload)
        #expect(packet.headers.immediateData == ImmDt(42))
    }
}
