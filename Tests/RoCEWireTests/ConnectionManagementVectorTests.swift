import Foundation
import Testing
import RoCEWire

/// CM MADs captured from the engine and decoded by Wireshark's InfiniBand dissector (tshark,
/// a decoder we did not write; `tools/cm-tshark-vectors`): our parser must read each field
/// the way tshark did.
@Suite("CM MADs as tshark decodes them")
struct ConnectionManagementVectorTests {
    struct File: Decodable {
        var decoder: String
        var vectors: [Vector]
    }
    struct Vector: Decodable {
        var mad: String
        var tshark: [String: String]
    }

    static func load(_ name: String) throws -> File {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Vectors"))
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
    }

    /// tshark's "0x…" or decimal, as a number.
    static func number(_ text: String?) -> UInt64? {
        guard let text else { return nil }
        return text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
    }

    /// `cm-tshark-engine`: the engine's REQ, REP, RTU, DREQ, DREP (loopback). `cm-tshark-kernel`:
    /// the TAP lab's rping in both directions and a REJ 8 — half the MADs built by Linux's CM.
    @Test("MADs read field by field as tshark reads them", arguments: [
        ("cm-tshark-engine", [ConnectionManagementAttribute.connectRequest, .connectReply, .readyToUse, .disconnectRequest, .disconnectReply]),
        ("cm-tshark-kernel", [ConnectionManagementAttribute.connectRequest, .connectReply, .readyToUse, .disconnectRequest, .disconnectReply,
                              .connectReject]),
    ])
    func vectors(_ name: String, _ expected: [ConnectionManagementAttribute]) throws {
        let file = try Self.load(name)
        #expect(file.vectors.count >= expected.count)
        var seen = Set<ConnectionManagementAttribute>()
        for vector in file.vectors {
            let datagram = try ConnectionManagementDatagram(parsing: [UInt8](hex: vector.mad))
            seen.insert(datagram.header.attribute)
            #expect(try datagram.serialized() == [UInt8](hex: vector.mad), "re-serialized byte for byte")
            let t = vector.tshark
            func expectField(_ key: String, _ value: UInt64, sourceLocation: SourceLocation = #_sourceLocation) {
                #expect(Self.number(t[key]) == value, "\(key)", sourceLocation: sourceLocation)
            }
            switch datagram.message {
            case .request(let request):
                expectField("infiniband.cm.req", UInt64(request.localCommunicationID))
                expectField("infiniband.cm.req.serviceid", request.serviceID)
                let service = try RDMAServiceID(rawValue: request.serviceID)
                expectField("infiniband.cm.req.serviceid.dport", UInt64(service.port))
                expectField("infiniband.cm.req.serviceid.protocol", UInt64(service.portSpace.rawValue & 0xFF))
                expectField("infiniband.cm.req.localcaguid", request.localCAGUID)
                expectField("infiniband.cm.req.localqpn", UInt64(request.localQueuePairNumber.rawValue))
                expectField("infiniband.cm.req.responderres", UInt64(request.responderResources))
                expectField("infiniband.cm.req.initdepth", UInt64(request.initiatorDepth))
                expectField("infiniband.cm.req.remoteresptout", UInt64(request.remoteCMResponseTimeout))
                expectField("infiniband.cm.req.transpsvctype", UInt64(request.transportServiceType))
                expectField("infiniband.cm.req.startpsn", UInt64(request.startingPSN.rawValue))
                expectField("infiniband.cm.req.localresptout", UInt64(request.localCMResponseTimeout))
                expectField("infiniband.cm.req.retrcount", UInt64(request.retryCount))
                expectField("infiniband.cm.req.pkey", UInt64(request.partitionKey))
                expectField("infiniband.cm.req.pppmtu", UInt64(request.pathMTU.rawValue))
                expectField("infiniband.cm.req.rnrretrcount", UInt64(request.rnrRetryCount))
                expectField("infiniband.cm.req.maxcmretr", UInt64(request.maxCMRetries))
                expectField("infiniband.cm.req.prim_locallid", UInt64(request.primaryLocalLID))
                expectField("infiniband.cm.req.prim_remotelid", UInt64(request.primaryRemoteLID))
                expectField("infiniband.cm.req.prim_hoplim", UInt64(request.primaryHopLimit))
                expectField("infiniband.cm.req.prim_sl", UInt64(request.primaryServiceLevel))
                expectField("infiniband.cm.req.prim_localacktout", UInt64(request.primaryLocalACKTimeout))
                if let local = t["infiniband.cm.req.prim_localgid_ipv4"] {
                    #expect(request.primaryLocalGID.low & 0xFFFF_FFFF == ipv4(local))
                }
                let header = try RDMAConnectionManagerHeader(parsing: request.privateData)
                if let local = t["infiniband.cm.req.prim_localgid_ipv4"] { #expect(header.source == .ipv4(ipv4(local))) }
                if let port = t["infiniband.cm.req.ip_cm.sport"] { #expect(Self.number(port) == UInt64(header.sourcePort)) }
                if let source = t["infiniband.cm.req.ip_cm.sip4"] { #expect(header.source == .ipv4(ipv4(source))) }
                if let destination = t["infiniband.cm.req.ip_cm.dip4"] { #expect(header.destination == .ipv4(ipv4(destination))) }
            case .reply(let reply):
                expectField("infiniband.cm.rep", UInt64(reply.localCommunicationID))
                expectField("infiniband.cm.rep.remotecommid", UInt64(reply.remoteCommunicationID))
                expectField("infiniband.cm.rep.localqpn", UInt64(reply.localQueuePairNumber.rawValue))
                expectField("infiniband.cm.rep.startpsn", UInt64(reply.startingPSN.rawValue))
                expectField("infiniband.cm.rep.respres", UInt64(reply.responderResources))
                expectField("infiniband.cm.rep.initdepth", UInt64(reply.initiatorDepth))
                expectField("infiniband.cm.rep.rnrretrcount", UInt64(reply.rnrRetryCount))
                expectField("infiniband.cm.rep.localcaguid", reply.localCAGUID)
            case .readyToUse(let notice):
                expectField("infiniband.cm.rtu.localcommid", UInt64(notice.localCommunicationID))
                expectField("infiniband.cm.rtu.remotecommid", UInt64(notice.remoteCommunicationID))
            case .disconnectRequest(let notice):
                expectField("infiniband.cm.dreq.localcommid", UInt64(notice.localCommunicationID))
                expectField("infiniband.cm.dreq.remotecommid", UInt64(notice.remoteCommunicationID))
                // tshark 4.0 files the DREQ's remote QPN under a "req" field name.
                expectField("infiniband.cm.req.remoteqpneecn", UInt64(notice.remoteQueuePairNumber.rawValue))
            case .disconnectReply(let notice):
                expectField("infiniband.cm.drsp.localcommid", UInt64(notice.localCommunicationID))
                expectField("infiniband.cm.drsp.remotecommid", UInt64(notice.remoteCommunicationID))
            case .reject(let reject):
                expectField("infiniband.cm.rej.localcommid", UInt64(reject.localCommunicationID))
                expectField("infiniband.cm.rej.remotecommid", UInt64(reject.remoteCommunicationID))
                expectField("infiniband.cm.rej.reason", UInt64(reject.reason.rawValue))
            case .messageReceiptAcknowledgement:
                break
            }
        }
        #expect(seen.isSuperset(of: expected))
    }

    func ipv4(_ dotted: String) -> UInt32 {
        dotted.split(separator: ".").compactMap { UInt32($0) }.reduce(0) { $0 << 8 | $1 }
    }
}
