import Testing
@testable import RoCEWire

@Suite("CM MAD codec")
struct ConnectionManagementCodecTests {
    static func sampleRequest() -> ConnectRequest {
        var request = ConnectRequest()
        request.localCommunicationID = 0x1234_5678
        request.serviceID = RDMAServiceID(port: 7174).rawValue
        request.localCAGUID = 0x0200_00FF_FE00_0001
        request.localQKey = 0
        request.localQueuePairNumber = 0xAB_CDEF
        request.responderResources = 1
        request.initiatorDepth = 1
        request.remoteCMResponseTimeout = 20
        request.startingPSN = 0x12_3456
        request.localCMResponseTimeout = 19
        request.retryCount = 7
        request.pathMTU = .bytes4096
        request.rnrRetryCount = 6
        request.maxCMRetries = 15
        request.primaryLocalGID = GlobalIdentifier(high: 0, low: 0xFFFF_0AEF_0001)
        request.primaryRemoteGID = GlobalIdentifier(high: 0, low: 0xFFFF_0AEF_0002)
        request.primaryFlowLabel = 0xA_BCDE
        request.primaryPacketRate = 0x2A
        request.primaryTrafficClass = 0x68
        request.primaryHopLimit = 64
        request.primaryServiceLevel = 5
        request.primaryLocalACKTimeout = 17
        let header = RDMAConnectionManagerHeader(source: .ipv4(0x0AEF_0001), sourcePort: 40001, destination: .ipv4(0x0AEF_0002))
        request.privateData = header.bytes + [1, 2, 3] + [UInt8](repeating: 0, count: 53)
        return request
    }

    @Test("rping's port 7174 is service ID 0x0000000001061C06, and back")
    func serviceID() throws {
        #expect(RDMAServiceID(port: 7174).rawValue == 0x0000_0000_0106_1C06)
        let parsed = try RDMAServiceID(rawValue: 0x0000_0000_0106_1C06)
        #expect(parsed.port == 7174 && parsed.portSpace == .tcp)
        #expect(throws: ConnectionManagementError.self) { try RDMAServiceID(rawValue: 0x0000_0002_0106_1C06) }
        #expect(throws: ConnectionManagementError.self) { try RDMAServiceID(rawValue: 0x0000_0000_0999_1C06) }
    }

    @Test("REQ: every field at the offset ibta_vol1_c12.h gives (24-byte MAD header first)")
    func requestOffsets() throws {
        let mad = try ConnectionManagementDatagram(transactionID: 0x0102_0304_0506_0708, message: .request(Self.sampleRequest())).serialized()
        #expect(mad.count == 256)
        #expect(Array(mad[0..<4]) == [1, 0x07, 2, 0x03])
        #expect(Array(mad[8..<16]) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Array(mad[16..<18]) == [0x00, 0x10])
        let base = 24
        #expect(Array(mad[base..<base + 4]) == [0x12, 0x34, 0x56, 0x78])
        #expect(Array(mad[base + 8..<base + 16]) == [0, 0, 0, 0, 0x01, 0x06, 0x1C, 0x06])
        #expect(Array(mad[base + 32..<base + 36]) == [0xAB, 0xCD, 0xEF, 1])   // QPN 24 bits + responder resources
        #expect(mad[base + 39] == 1)                                            // initiator depth
        #expect(mad[base + 43] == 20 << 3)                                      // remote CM timeout, RC, no EEFC
        #expect(Array(mad[base + 44..<base + 48]) == [0x12, 0x34, 0x56, 19 << 3 | 7])
        #expect(Array(mad[base + 48..<base + 50]) == [0xFF, 0xFF])
        #expect(mad[base + 50] == 5 << 4 | 6)                                   // MTU 4096, RNR retry 6
        #expect(mad[base + 51] == 15 << 4)                                      // max CM retries
        #expect(Array(mad[base + 52..<base + 56]) == [0xFF, 0xFF, 0xFF, 0xFF])  // permissive LIDs (RoCE)
        #expect(Array(mad[base + 66..<base + 72]) == [0xFF, 0xFF, 10, 239, 0, 1])
        #expect(Array(mad[base + 82..<base + 88]) == [0xFF, 0xFF, 10, 239, 0, 2])
        #expect(Array(mad[base + 88..<base + 92]) == [0xAB, 0xCD, 0xE0, 0x2A])  // flow label 20 bits, rate 6
        #expect(Array(mad[base + 92..<base + 96]) == [0x68, 64, 5 << 4, 17 << 3])
        #expect(Array(mad[base + 140..<base + 144]) == [0x00, 0x40, 0x9C, 0x41])  // cma_hdr: v0, IPv4, port 40001
        #expect(Array(mad[base + 156..<base + 160]) == [10, 239, 0, 1])
        #expect(Array(mad[base + 172..<base + 176]) == [10, 239, 0, 2])
        #expect(Array(mad[base + 176..<base + 179]) == [1, 2, 3])
    }

    @Test("every message round-trips through serialize and parse")
    func roundTrips() throws {
        var reply = ConnectReply()
        reply.localCommunicationID = 9
        reply.remoteCommunicationID = 0x1234_5678
        reply.localQueuePairNumber = 0x11
        reply.startingPSN = 0xFF_FFFF
        reply.responderResources = 4
        reply.initiatorDepth = 3
        reply.targetACKDelay = 15
        reply.failoverAccepted = 3
        reply.rnrRetryCount = 5
        reply.sharedReceiveQueue = true
        reply.localCAGUID = 0xDEAD_BEEF
        reply.privateData = [UInt8](repeating: 0xA5, count: ConnectReply.privateDataCapacity)
        let messages: [ConnectionManagementDatagram.ConnectionManagementMessage] = [
            .request(Self.sampleRequest()),
            .reply(reply),
            .readyToUse(ConnectionManagementNotice(localCommunicationID: 1, remoteCommunicationID: 2, privateData: [UInt8](repeating: 7, count: 224))),
            .reject(ConnectReject(localCommunicationID: 3, remoteCommunicationID: 4, rejectedMessage: .reply, reason: .staleConnection,
                                  additionalInformation: [1, 2, 3], privateData: [UInt8](repeating: 9, count: 148))),
            .messageReceiptAcknowledgement(MessageReceiptAcknowledgement(localCommunicationID: 5, remoteCommunicationID: 6,
                                                                         acknowledgedMessage: .request, serviceTimeout: 23,
                                                                         privateData: [UInt8](repeating: 1, count: 222))),
            .disconnectRequest(ConnectionManagementNotice(localCommunicationID: 7, remoteCommunicationID: 8, remoteQueuePairNumber: 0xFF_FFFF,
                                                          privateData: [UInt8](repeating: 2, count: 220))),
            .disconnectReply(ConnectionManagementNotice(localCommunicationID: 9, remoteCommunicationID: 10, privateData: [UInt8](repeating: 3, count: 224))),
        ]
        for message in messages {
            let datagram = ConnectionManagementDatagram(transactionID: 42, message: message)
            let parsed = try ConnectionManagementDatagram(parsing: try datagram.serialized())
            #expect(parsed == datagram, "\(message.attribute)")
        }
    }

    @Test("cma_hdr round-trips for IPv4 and IPv6 and refuses version ≠ 0 and IP version ∉ {4, 6}")
    func rdmaHeader() throws {
        let v4 = RDMAConnectionManagerHeader(source: .ipv4(0x7F00_0001), sourcePort: 1, destination: .ipv4(0x7F00_0002))
        #expect(try RDMAConnectionManagerHeader(parsing: v4.bytes) == v4)
        let v6 = RDMAConnectionManagerHeader(source: .ipv6(GlobalIdentifier(high: 0xFE80 << 48, low: 1)), sourcePort: 65535,
                                             destination: .ipv6(GlobalIdentifier(high: 0x2001 << 48, low: 2)))
        #expect(try RDMAConnectionManagerHeader(parsing: v6.bytes) == v6)
        var badVersion = v4.bytes
        badVersion[0] = 1
        #expect(throws: ConnectionManagementError.unsupported(field: "cma_hdr version", value: 1)) { try RDMAConnectionManagerHeader(parsing: badVersion) }
        var badIP = v4.bytes
        badIP[1] = 0x50
        #expect(throws: ConnectionManagementError.self) { try RDMAConnectionManagerHeader(parsing: badIP) }
        #expect(throws: ConnectionManagementError.self) { try RDMAConnectionManagerHeader(parsing: Array(v4.bytes[0..<35])) }
    }

    @Test("hostile MADs: wrong length, class, version, method, attribute, MTU, transport — refused, never a trap")
    func hostile() throws {
        let good = try ConnectionManagementDatagram(transactionID: 1, message: .request(Self.sampleRequest())).serialized()
        for length in [0, 1, 23, 24, 255, 257] {
            let bytes = length <= 256 ? Array(good[0..<length]) : good + [0]
            #expect(throws: ConnectionManagementError.self) { try ConnectionManagementDatagram(parsing: bytes) }
        }
        for (offset, value) in [(0, UInt8(2)), (1, 0x81), (2, 1), (3, 0x83), (17, 0x20), (17, 0x17), (24 + 50, 0x70), (24 + 50, 0x00), (24 + 43, 0x04)] {
            var bytes = good
            bytes[offset] = value
            #expect(throws: ConnectionManagementError.self, "byte \(offset) = \(value)") { try ConnectionManagementDatagram(parsing: bytes) }
        }
        var reject = try ConnectionManagementDatagram(transactionID: 1, message: .reject(ConnectReject(remoteCommunicationID: 1, reason: .timeout))).serialized()
        reject[24 + 9] = 0xFE   // ARI length 127 > 72
        #expect(throws: ConnectionManagementError.self) { try ConnectionManagementDatagram(parsing: reject) }
        // Seeded random bytes and single-byte mutations of every message: parse or throw, nothing else.
        var random: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<2000 {
            var bytes = good
            for _ in 0..<4 {
                random ^= random << 13; random ^= random >> 7; random ^= random << 17
                bytes[Int(random % 256)] = UInt8(truncatingIfNeeded: random >> 32)
            }
            bytes[1] = 0x07
            _ = try? ConnectionManagementDatagram(parsing: bytes)
        }
    }

    @Test("serializers refuse oversized private data and out-of-range bit fields")
    func serializerLimits() {
        var request = Self.sampleRequest()
        request.privateData = [UInt8](repeating: 0, count: 93)
        #expect(throws: ConnectionManagementError.self) { try ConnectionManagementDatagram(transactionID: 1, message: .request(request)).serialized() }
        request = Self.sampleRequest()
        request.retryCount = 8
        #expect(throws: ConnectionManagementError.self) { try ConnectionManagementDatagram(transactionID: 1, message: .request(request)).serialized() }
    }
}
