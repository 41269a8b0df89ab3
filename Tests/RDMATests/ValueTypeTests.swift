import CIBVerbs
import Foundation
import Testing
@testable import RDMA

@Suite("Value types and flag mapping")
struct ValueTypeTests {
    @Test func accessFlagsMatchTheCConstants() {
        #expect(AccessFlags.localWrite.rawValue == Int32(IBV_ACCESS_LOCAL_WRITE.rawValue))
        #expect(AccessFlags.remoteWrite.rawValue == Int32(IBV_ACCESS_REMOTE_WRITE.rawValue))
        #expect(AccessFlags.remoteRead.rawValue == Int32(IBV_ACCESS_REMOTE_READ.rawValue))
        #expect(AccessFlags.remoteAtomic.rawValue == Int32(IBV_ACCESS_REMOTE_ATOMIC.rawValue))
        #expect(AccessFlags.allRemote.rawValue == 0b1111)
        #expect(AccessFlags.allRemote.description == "[localWrite, remoteWrite, remoteRead, remoteAtomic]")
    }

    @Test func remoteWriteWithoutLocalWriteIsRejectedBeforeRegistration() {
        #expect(throws: RDMAError.self) { try AccessFlags.remoteWrite.validateForRegistration(operation: "t") }
        #expect(throws: RDMAError.self) { try AccessFlags.remoteAtomic.validateForRegistration(operation: "t") }
        #expect(throws: Never.self) { try AccessFlags.remoteRead.validateForRegistration(operation: "t") }
        #expect(throws: Never.self) { try AccessFlags.allRemote.validateForRegistration(operation: "t") }
    }

    @Test func pathMTUMapsBothWays() {
        for mtu in PathMTU.allCases {
            #expect(PathMTU(verbs: mtu.verbsValue) == mtu)
            #expect(PathMTU(bytes: mtu.bytes) == mtu)
        }
        #expect(PathMTU.mtu1024.verbsValue == IBV_MTU_1024)
        #expect(PathMTU(bytes: 1500) == nil)
        #expect(PathMTU(verbs: ibv_mtu(rawValue: 9)) == nil)
    }

    @Test func sendFlagsAndOpcodesMatchTheCConstants() {
        #expect(SendFlags.signaled.rawValue == IBV_SEND_SIGNALED.rawValue)
        #expect(SendFlags.inline.rawValue == IBV_SEND_INLINE.rawValue)
        #expect(SendOperation.read(RemoteMemory(address: 0, rkey: 0, length: 0)).verbsOpcode == IBV_WR_RDMA_READ)
        #expect(SendOperation.fetchAndAdd(RemoteMemory(address: 0, rkey: 0, length: 8), add: 1).verbsOpcode == IBV_WR_ATOMIC_FETCH_AND_ADD)
        #expect(QueuePairKind.unreliableDatagram.verbs == IBV_QPT_UD)
        for state in QueuePairState.allCases { #expect(QueuePairState(verbs: state.verbs) == state) }
    }

    @Test func portAttributesComputeSpeed() {
        var raw = ibv_port_attr()
        raw.state = IBV_PORT_ACTIVE
        raw.active_mtu = IBV_MTU_1024
        raw.active_width = 2      // 4x
        raw.active_speed = 32     // EDR, 25 Gb/s per lane
        raw.link_layer = UInt8(IBV_LINK_LAYER_ETHERNET)
        let port = PortAttributes(raw)
        #expect(port.state == .active)
        #expect(port.activeMTU == .mtu1024)
        #expect(port.linkLayer == .ethernet)
        #expect(port.speedGigabitsPerSecond == 100)
        raw.active_speed = 3
        #expect(PortAttributes(raw).speedGigabitsPerSecond == nil)
    }

    @Test func preferredRoCEv2EntryIsTheIPv4MappedOne() {
        let linkLocal = GIDEntry(gid: GID("fe80::1")!, index: 0, port: 1, type: .roceV2, networkInterfaceIndex: 2)
        let v1 = GIDEntry(gid: GID("::ffff:10.0.0.1")!, index: 1, port: 1, type: .roceV1, networkInterfaceIndex: 2)
        let v2 = GIDEntry(gid: GID("::ffff:10.0.0.1")!, index: 3, port: 1, type: .roceV2, networkInterfaceIndex: 2)
        let v2b = GIDEntry(gid: GID("::ffff:10.0.0.2")!, index: 5, port: 1, type: .roceV2, networkInterfaceIndex: 2)
        #expect(GIDEntry.preferredRoCEv2(in: [linkLocal, v1, v2b, v2]) == v2)
        #expect(GIDEntry.preferredRoCEv2(in: [linkLocal, v1]) == nil)
        #expect(GIDType(verbs: IBV_GID_TYPE_ROCE_V2.rawValue) == .roceV2)
    }
}

@Suite("GID text forms")
struct GIDTests {
    @Test func ipv4MappedFormsAndParses() throws {
        let gid = GID(ipv4: (192, 168, 1, 7))
        #expect(gid.description == "::ffff:192.168.1.7")
        #expect(gid.isIPv4Mapped)
        #expect(try #require(gid.ipv4Address) == (192, 168, 1, 7))
        #expect(GID("192.168.1.7") == gid)
        #expect(GID("::ffff:192.168.1.7") == gid)
        #expect(GID("0:0:0:0:0:ffff:c0a8:107") == gid)
        #expect(gid.hexDigits == "00000000000000000000ffffc0a80107")
        #expect(GID(gid.hexDigits) == gid)
    }

    @Test(arguments: ["fe80::1", "2001:db8::8:800:200c:417a", "::", "::1", "1::", "2001:db8:0:1:1:1:1:1",
                      "fe80::a00:27ff:fe4e:66a1"])
    func ipv6RoundTrips(text: String) throws {
        let gid = try #require(GID(text))
        #expect(gid.description == text)
        #expect(!gid.isIPv4Mapped || text.contains("."))
    }

    @Test func compressesTheLongestZeroRun() throws {
        #expect(try #require(GID("2001:0db8:0000:0000:0001:0000:0000:0001")).description == "2001:db8::1:0:0:1")
        #expect(try #require(GID("2001:db8:0:1:0:0:0:1")).description == "2001:db8:0:1::1")
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.256", "fe80:::1", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:7:8:9",
                      "00000000000000000000ffffc0a8010", "::ffff:1.2.3.4.5"])
    func rejectsMalformedText(text: String) {
        #expect(GID(text) == nil)
    }

    @Test func codableAsText() throws {
        let gid = try #require(GID("fe80::1"))
        let data = try JSONEncoder().encode([gid])
        #expect(String(decoding: data, as: UTF8.self) == #"["fe80::1"]"#)
        #expect(try JSONDecoder().decode([GID].self, from: data) == [gid])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([GID].self, from: Data(#"["nope"]"#.utf8)) }
    }
}

@Suite("Out-of-band exchange values")
struct ExchangeTests {
    let endpoint = Endpoint(queuePairNumber: 0x00_1234, packetSequenceNumber: 0xAB_CDEF,
                            gid: GID("::ffff:10.1.2.3")!, lid: 0, mtu: .mtu1024)

    @Test func endpointRoundTripsThroughBytes() throws {
        let bytes = endpoint.serialized
        #expect(bytes.count == Endpoint.serializedCount)
        #expect(Endpoint(serialized: bytes) == endpoint)
        #expect(Endpoint(serialized: bytes.dropLast()) == nil)
        var wrongVersion = bytes
        wrongVersion[1] = 0x02
        #expect(Endpoint(serialized: wrongVersion) == nil)
        var badMTU = bytes
        badMTU[12] = 0x05; badMTU[13] = 0xdc   // 1500 at offset 12 (after tag, QPN, PSN, LID)
        #expect(Endpoint(serialized: badMTU) == nil)
    }

    @Test func endpointRoundTripsThroughJSON() throws {
        let data = try JSONEncoder().encode(endpoint)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains(#""qpn":4660"#))
        #expect(text.contains(#""gid":"::ffff:10.1.2.3""#))
        #expect(try JSONDecoder().decode(Endpoint.self, from: data) == endpoint)
    }

    @Test func endpointSpeaksRdmaCorePingpongText() {
        #expect(endpoint.pingpongText == "0000:001234:abcdef:00000000000000000000ffff0a010203")
        #expect(Endpoint(pingpongText: endpoint.pingpongText, mtu: .mtu1024) == endpoint)
        #expect(Endpoint(pingpongText: "0000:1234:abcdef", mtu: .mtu1024) == nil)
        #expect(Endpoint(pingpongText: "0000:1000000:000000:00000000000000000000ffff0a010203", mtu: .mtu1024) == nil)
    }

    @Test func endpointMasksTo24Bits() {
        let wide = Endpoint(queuePairNumber: 0xFF12_3456, packetSequenceNumber: 0x0100_0001, gid: .zero, mtu: .mtu256)
        #expect(wide.queuePairNumber == 0x12_3456)
        #expect(wide.packetSequenceNumber == 1)
    }

    @Test func remoteMemoryRoundTripsAndSlices() throws {
        let remote = RemoteMemory(address: 0x7f00_dead_b000, rkey: 0x1234_5678, length: 4096)
        #expect(RemoteMemory(serialized: remote.serialized) == remote)
        #expect(RemoteMemory(serialized: [1, 2, 3]) == nil)
        #expect(try JSONDecoder().decode(RemoteMemory.self, from: JSONEncoder().encode(remote)) == remote)
        let slice = remote.slice(offset: 1024, length: 8)
        #expect(slice == RemoteMemory(address: 0x7f00_dead_b400, rkey: 0x1234_5678, length: 8))
        #expect(remote.slice(offset: 4000).length == 96)
    }
}
