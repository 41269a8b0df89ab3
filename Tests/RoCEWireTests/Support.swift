import Foundation
import Testing
import RoCEWire

/// A small deterministic generator so that property tests replay exactly (SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Array where Element == UInt8 {
    init(hex: String) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.utf8.count / 2)
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index ..< next], radix: 16)!)
            index = next
        }
        self = bytes
    }
}

/// One entry of Vectors/roce-vectors.json (written by tools/roce-vectors/generate.py).
struct GoldenVector: Decodable, CustomTestStringConvertible {
    struct Network: Decodable {
        var src: String, dst: String, id: UInt16?, flagsFrag: UInt16?, sport: UInt16, dport: UInt16
    }
    struct BTHFields: Decodable {
        var solicited: Bool, migreq: Bool, padCount: Int, pkey: UInt16, fecn: Bool, becn: Bool
        var destQp: UInt32, ackReq: Bool, psn: UInt32
    }
    struct DETHFields: Decodable { var qkey: UInt32, srcQp: UInt32 }
    struct RETHFields: Decodable { var va: String, rkey: UInt32, dmaLen: UInt32 }
    struct AtomicFields: Decodable { var va: String, rkey: UInt32, swapAdd: String, compare: String }
    struct AETHFields: Decodable { var syndrome: UInt8, msn: UInt32 }
    struct AtomicAckFields: Decodable { var origData: String }
    struct IETHFields: Decodable { var rkey: UInt32 }

    var name: String
    var ipVersion: Int
    var ipPacket: String
    var udpPayload: String
    var network: Network
    var opcode: UInt8
    var opcodeName: String?
    var bth: BTHFields
    var deth: DETHFields?
    var reth: RETHFields?
    var atomicEth: AtomicFields?
    var aeth: AETHFields?
    var atomicAckEth: AtomicAckFields?
    var immData: UInt32?
    var ieth: IETHFields?
    var headerLength: Int
    var payload: String
    var icrc: UInt32

    var testDescription: String { name }

    static let all: [GoldenVector] = {
        struct Document: Decodable { var vectors: [GoldenVector] }
        let url = Bundle.module.url(forResource: "roce-vectors", withExtension: "json", subdirectory: "Vectors")!
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try! decoder.decode(Document.self, from: Data(contentsOf: url)).vectors
    }()

    /// The IP/UDP fields as the generator chose them (not parsed by RoCEWire).
    var encapsulation: RoCEEncapsulation {
        let net: RoCEEncapsulation.Network = if ipVersion == 4 {
            .ipv4(source: .init(network.src)!, destination: .init(network.dst)!,
                  identification: network.id!, flagsAndFragmentOffset: network.flagsFrag!)
        } else {
            .ipv6(source: .init(network.src)!, destination: .init(network.dst)!)
        }
        return RoCEEncapsulation(network: net, sourcePort: network.sport, destinationPort: network.dport)
    }

    /// The headers the generator put in the packet, as RoCEWire values.
    var expectedHeaders: TransportHeaders {
        var headers = TransportHeaders(BaseTransportHeader(
            opcode: Opcode(rawValue: opcode)!, solicitedEvent: bth.solicited, migrationRequest: bth.migreq,
            partitionKey: bth.pkey, forwardCongestion: bth.fecn, backwardCongestion: bth.becn,
            destinationQP: QueuePairNumber(exactly: bth.destQp)!, ackRequest: bth.ackReq,
            psn: PacketSequenceNumber(exactly: bth.psn)!))
        headers.datagram = deth.map { DETH(queueKey: $0.qkey, sourceQP: QueuePairNumber(exactly: $0.srcQp)!) }
        headers.rdma = reth.map { RETH(virtualAddress: UInt64($0.va, radix: 16)!, remoteKey: $0.rkey, dmaLength: $0.dmaLen) }
        headers.atomic = atomicEth.map {
            AtomicETH(virtualAddress: UInt64($0.va, radix: 16)!, remoteKey: $0.rkey,
                      swapOrAdd: UInt64($0.swapAdd, radix: 16)!, compare: UInt64($0.compare, radix: 16)!)
        }
        headers.acknowledge = aeth.map { AETH(syndrome: .init(rawValue: $0.syndrome), messageSequenceNumber: $0.msn) }
        headers.atomicAcknowledge = atomicAckEth.map { AtomicAckETH(originalRemoteData: UInt64($0.origData, radix: 16)!) }
        headers.immediateData = immData.map { ImmediateData($0) }
        headers.invalidate = ieth.map { IETH(remoteKey: $0.rkey) }
        return headers
    }
}
