import Foundation
import RoCEWire
import Testing
@testable import SoftRoCE

/// A capture decoded by a dissector we did not write: tshark (Debian's Wireshark) must see
/// every packet A sent and received as RoCE, with the opcode, destination QP, PSN and payload
/// length the in-memory network really carried, in order.
@Suite("SoftRoCE packet capture",
       .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark"), "tshark is not installed (apt-get install tshark)"))
struct CaptureTests {
    struct Summary: Equatable, CustomStringConvertible {
        var opcode: UInt8, destinationQP: UInt32, psn: UInt32, payloadLength: Int
        var description: String { "op \(opcode) qp \(destinationQP) psn \(psn) len \(payloadLength)" }
    }

    @Test func tsharkDecodesEveryPacketAsTheEngineSentIt() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("softroce-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).pcap").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let network = InMemoryNetwork()
        let clock = ManualClock()
        let a = WireEndpoint(.ipv4(0x7F00_0001), port: 4791), b = WireEndpoint(.ipv4(0x7F00_0002), port: 4791)
        let capture = try CapturingWire(wrapping: network.attach(a), capture: PacketCapture(path: path))
        let deviceA = SoftDevice(wire: capture, clock: .manual(clock))
        let deviceB = SoftDevice(wire: network.attach(b), clock: .manual(clock))
        let memoryA = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 64)
        let memoryB = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 64)
        defer { memoryA.deallocate(); memoryB.deallocate() }
        memoryA.initializeMemory(as: UInt8.self, repeating: 0x5A)
        memoryB.initializeMemory(as: UInt8.self, repeating: 0)
        let access: SoftAccess = [.localWrite, .remoteWrite, .remoteRead, .remoteAtomic]
        let regionA = try deviceA.registerMemory(domain: deviceA.allocateProtectionDomain(), bytes: memoryA, access: access)
        let regionB = try deviceB.registerMemory(domain: deviceB.allocateProtectionDomain(), bytes: memoryB, access: access)
        let cqA = deviceA.createCompletionQueue(capacity: 64, channel: nil), cqB = deviceB.createCompletionQueue(capacity: 64, channel: nil)
        let qpA = try deviceA.createQueuePair(domain: regionA.domain, type: .reliableConnected, sendQueue: cqA, receiveQueue: cqA, sharedReceiveQueue: nil,
                                              signalAll: true, sendCapacity: 16, receiveCapacity: 16, maxScatterGather: 1, maxInline: 0)
        let qpB = try deviceB.createQueuePair(domain: regionB.domain, type: .reliableConnected, sendQueue: cqB, receiveQueue: cqB, sharedReceiveQueue: nil,
                                              signalAll: true, sendCapacity: 16, receiveCapacity: 16, maxScatterGather: 1, maxInline: 0)
        try connect(deviceA, qpA, to: b.address, qpn: qpB.number, sendPSN: 0xFF_FFFE, receivePSN: 0x40, mtu: 1024, timeout: 14, retry: 7, rnr: 7)
        try connect(deviceB, qpB, to: a.address, qpn: qpA.number, sendPSN: 0x40, receivePSN: 0xFF_FFFE, mtu: 1024, timeout: 14, retry: 7, rnr: 7)
        let baseB = UInt64(UInt(bitPattern: memoryB.baseAddress!)), baseA = UInt64(UInt(bitPattern: memoryA.baseAddress!))
        func element(_ offset: Int, _ length: Int) -> SoftScatterGather {
            SoftScatterGather(address: baseA + UInt64(offset), length: UInt32(length), lkey: regionA.lkey)
        }
        let receive = SoftScatterGather(address: baseB, length: 4096, lkey: regionB.lkey)
        try withUnsafePointer(to: receive) { try deviceB.postReceive(qpB, id: 1, UnsafeBufferPointer(start: $0, count: 1)) }
        let requests = [SoftSendRequest(id: 1, opcode: .send), SoftSendRequest(id: 2, opcode: .write, remoteAddress: baseB + 8192, remoteKey: regionB.rkey),
                        SoftSendRequest(id: 3, opcode: .read, remoteAddress: baseB, remoteKey: regionB.rkey),
                        SoftSendRequest(id: 4, opcode: .fetchAndAdd, remoteAddress: baseB + 16384, remoteKey: regionB.rkey, compareAdd: 3)]
        let lengths = [2500, 3000, 2100, 8]
        for (request, length) in zip(requests, lengths) {
            try withUnsafePointer(to: element(Int(request.id) * 4096, length)) { try deviceA.postSend(qpA, request, UnsafeBufferPointer(start: $0, count: 1)) }
        }
        let completions = UnsafeMutableBufferPointer<SoftCompletion>.allocate(capacity: 8)
        defer { completions.deallocate() }
        var done = 0
        for _ in 0..<1000 where done < 4 {
            deviceB.progress()
            done += deviceA.poll(cqA, into: completions)
            clock.advance(nanoseconds: 1000)
        }
        #expect(done == 4)
        deviceA.close()
        deviceB.close()

        let sentByA = network.log.filter { $0.source.address == a.address }.map(Self.summary)
        let receivedByA = network.log.filter { $0.destination.address == a.address }.map(Self.summary)
        let text = try CaptureTests.run("/usr/bin/tshark", ["-r", path, "-T", "fields", "-E", "separator=,", "-e", "udp.srcport", "-e", "ip.src",
                                                            "-e", "infiniband.bth.opcode", "-e", "infiniband.bth.destqp", "-e", "infiniband.bth.psn",
                                                            "-e", "data.len"]).output
        var decodedSent = [Summary](), decodedReceived = [Summary](), sourcePortsOfA = Set<UInt16>()
        for line in text.split(separator: "\n") {
            var fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let sourcePort = UInt16(fields.removeFirst())
            guard fields.count == 5, let opcode = UInt8(fields[1]), let qp = UInt32(fields[2].dropFirst(2), radix: 16) ?? UInt32(fields[2]),
                  let psn = UInt32(fields[3]) else {
                Issue.record("tshark did not decode a packet as RoCE: \(line)")
                continue
            }
            let summary = Summary(opcode: opcode, destinationQP: qp, psn: psn, payloadLength: Int(fields[4]) ?? 0)
            if fields[0] == "127.0.0.1" {
                decodedSent.append(summary)
                sourcePortsOfA.insert(sourcePort ?? 0)
            } else {
                decodedReceived.append(summary)
            }
        }
        #expect(decodedSent.count == 8, "SEND 3 + WRITE 3 + READ 1 + FAA 1")
        #expect(decodedReceived.count >= 4, "ACKs, READ responses, the atomic ACK")
        #expect(decodedSent == sentByA)
        #expect(decodedReceived == receivedByA)
        #expect(decodedSent.map(\.psn).contains(0), "the PSN wrapped from 0xFFFFFF to 0")
        // rxe's choice of UDP source port: 0xC000 + hash_32(QPN, 14).
        #expect(sourcePortsOfA == [0xC000 | UInt16((qpA.number &* 0x61C8_8647) >> 18)])

        // Every ICRC recomputed by scapy's RoCE layer (tools/check-capture-icrc), not by us.
        let (status, report) = try CaptureTests.checkICRCs(path)
        #expect(status == 0, "\(report)")
        #expect(report.contains("\(decodedSent.count + decodedReceived.count) packets, \(decodedSent.count + decodedReceived.count) ICRCs match"), "\(report)")
    }

    /// Runs `executable` to its end; its exit status and standard output (standard error dropped).
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    /// tools/check-capture-icrc on a pcap: every ICRC recomputed by scapy's RoCE layer.
    static func checkICRCs(_ path: String) throws -> (status: Int32, output: String) {
        let tool = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/check-capture-icrc").path
        return try run(tool, [path])
    }

    static func summary(_ datagram: InMemoryNetwork.Datagram) -> Summary {
        datagram.bytes.withUnsafeBytes { bytes in
            let packet = try! RoCEPacket(parsing: bytes)
            return Summary(opcode: packet.headers.bth.opcode.rawValue, destinationQP: packet.headers.bth.destinationQP.rawValue,
                           psn: packet.headers.bth.psn.rawValue, payloadLength: packet.payload(in: bytes).count)
        }
    }
}
