#if canImport(Glibc)
import Glibc
#endif
import RDMA
import Testing
@testable import RDMAEndpoint

/// A peer that speaks the endpoint protocol by hand over a raw queue pair, so it can lie.
final class HostilePeer {
    let queuePairs: QueuePairPair
    let endpoint: MessageEndpoint
    let region: MemoryRegion
    /// Our own memory in the endpoint's protection domain, which no key given to the
    /// peer covers: it must stay as it was.
    let canary: MemoryRegion
    var nextID: UInt64 = 1

    init(configuration: EndpointConfiguration = EndpointConfiguration()) throws {
        queuePairs = try QueuePairPair(receiveSlots: configuration.receiveSlots)
        canary = try MemoryRegion(protectionDomain: queuePairs.domain, length: 65_536, access: .localWrite)
        canary.bytes.initializeMemory(as: UInt8.self, repeating: 0xCC)
        endpoint = try MessageEndpoint(queuePair: queuePairs.pairA, configuration: configuration)
        region = try MemoryRegion(protectionDomain: queuePairs.domain, length: 1 << 20, access: .allRemote)
        // The hostile side's handshake: 4 receive buffers posted, a control block at offset 0.
        for slot in 0..<4 {
            try queuePairs.pairB.postReceive(id: 1000 + UInt64(slot), scatterGather: region.scatterGather(offset: 4096 * (slot + 1), length: 4096))
        }
        let handshake = EndpointHandshake(receiveSlots: 4, eagerLimit: 4000,
                                          controlBlock: region.remoteDescriptor.slice(offset: 0, length: 32),
                                          rendezvousRegion: RemoteMemory(address: 0, rkey: 0, length: 0),
                                          rendezvousSlots: 0, rendezvousSlotSize: 0)
        try endpoint.start(peer: handshake, mode: .poll)
    }

    deinit {
        endpoint.close()
        try? canary.close()
        try? region.close()
    }

    /// SENDs `header` followed by `payload` bytes (from offset 65536 of our region).
    func send(_ header: MessageHeader, payload: Int = 0, totalLength: Int? = nil) throws {
        header.write(to: region.bytes.baseAddress! + 65_536)
        let length = totalLength ?? MessageHeader.size + payload
        try queuePairs.pairB.post(SendWorkRequest(id: nextID), scatterGather: region.scatterGather(offset: 65_536, length: length))
        nextID += 1
    }

    /// RDMA WRITEs `values` into the endpoint's control block.
    func writeControl(granted: UInt64, released: UInt64 = 0) throws {
        ControlBlock.write(ControlBlock.Values(granted: granted, released: released, closeReason: 0), to: region.bytes.baseAddress! + 131_072)
        try queuePairs.pairB.post(SendWorkRequest(id: nextID, operation: .write(endpoint.localHandshake.controlBlock)),
                                  scatterGather: region.scatterGather(offset: 131_072, length: 32))
        nextID += 1
    }

    /// Polls both sides until the endpoint failed (bounded in rounds); its error. After the
    /// first 10,000 rounds each one leaves the CPU for 50 µs: kernel rxe in the lab's
    /// emulated VM delivers the packet on a CPU of its own.
    func endpointFailure() -> EndpointError? {
        for round in 0..<200_000 {
            if round >= 10_000 { usleep(50) }
            _ = try? endpoint.poll()
            _ = try? queuePairs.pairB.sendCompletionQueue.pollOne()
            if let failure = endpoint.failure { return failure }
        }
        return nil
    }

    var canaryIntact: Bool { canary.bytes.allSatisfy { $0 == 0xCC } }

    static func header(_ kind: MessageHeader.Kind = .message, length: UInt32 = 0, callID: UInt64 = 0, granted: UInt64 = 0,
                       rendezvous: Bool = false, slot: UInt16 = 0) -> MessageHeader {
        MessageHeader(kind: kind, isRendezvous: rendezvous, rendezvousSlot: slot, payloadLength: length, callID: callID,
                      granted: granted, released: 0)
    }
}

extension EndpointConfiguration {
    static func rendezvous(slots: Int, size: Int) -> EndpointConfiguration {
        var configuration = EndpointConfiguration()
        configuration.rendezvousSlots = slots
        configuration.rendezvousSlotSize = size
        return configuration
    }
}

func violatedField(_ error: EndpointError?) -> String? {
    if case .protocolViolation(let field, _) = error { return field }
    return nil
}

@Suite("Message endpoint against a hostile peer", .serialized)
struct HostilePeerTests {
    @Test func creditsItDoesNotHaveInTheControlBlock() throws {
        let peer = try HostilePeer()
        try peer.writeControl(granted: 1_000)      // 4 posted, nothing received from us
        #expect(violatedField(peer.endpointFailure()) == "controlBlock.granted")
        #expect(peer.canaryIntact)
    }

    @Test func creditsItDoesNotHaveInAHeader() throws {
        let peer = try HostilePeer()
        try peer.send(HostilePeer.header(granted: 5))
        #expect(violatedField(peer.endpointFailure()) == "header.granted")
        // Every later operation names the same reason.
        #expect(throws: EndpointError.self) { try [1].withUnsafeBytes { try peer.endpoint.trySend($0) } }
    }

    @Test func anOversizedMessageClosesTheConnection() throws {
        let peer = try HostilePeer()
        let stride = peer.endpoint.memory.slotStride
        try peer.send(HostilePeer.header(length: UInt32(stride)), totalLength: stride + 100)
        #expect(violatedField(peer.endpointFailure()) == "message.length")
        #expect(peer.canaryIntact)
    }

    @Test func aLengthThatDoesNotMatchWhatArrived() throws {
        let peer = try HostilePeer()
        try peer.send(HostilePeer.header(length: 100), payload: 10)
        #expect(violatedField(peer.endpointFailure()) == "header.payloadLength")
    }

    @Test func aResponseToNoCall() throws {
        let peer = try HostilePeer()
        try peer.send(HostilePeer.header(.response, callID: 12_345))
        #expect(violatedField(peer.endpointFailure()) == "header.callID")
    }

    @Test func anUnknownKindAndATruncatedHeader() throws {
        let peer = try HostilePeer()
        var raw = HostilePeer.header()
        raw.write(to: peer.region.bytes.baseAddress! + 65_536)
        peer.region.bytes[65_536] = 9
        try peer.queuePairs.pairB.post(SendWorkRequest(id: 1), scatterGather: peer.region.scatterGather(offset: 65_536, length: 32))
        #expect(violatedField(peer.endpointFailure()) == "header.kind")
        let short = try HostilePeer()
        raw = HostilePeer.header()
        try short.send(raw, totalLength: 7)
        #expect(violatedField(short.endpointFailure()) == "header.length")
    }

    @Test func badRendezvousDescriptors() throws {
        let offered = EndpointConfiguration.rendezvous(slots: 2, size: 65_536)
        // Slot 0 comes first; a slot holds 65,536 bytes; no slots were offered at all.
        for (configuration, header, field) in [
            (offered, HostilePeer.header(length: 10_000, rendezvous: true, slot: 1), "rendezvous.slot"),
            (offered, HostilePeer.header(length: 65_537, rendezvous: true, slot: 0), "rendezvous.length"),
            (EndpointConfiguration.rendezvous(slots: 0, size: 65_536), HostilePeer.header(length: 10, rendezvous: true), "header.rendezvous"),
        ] {
            let peer = try HostilePeer(configuration: configuration)
            try peer.send(header)
            #expect(violatedField(peer.endpointFailure()) == field)
            #expect(peer.canaryIntact)
        }
    }

    @Test func writesOutsideTheGrantedRegionsAreRefusedByTheKey() throws {
        let peer = try HostilePeer(configuration: .rendezvous(slots: 1, size: 65_536))
        let granted = peer.endpoint.localHandshake.rendezvousRegion
        // One byte past the rendezvous region, with its own rkey.
        let beyond = RemoteMemory(address: granted.address + UInt64(granted.length), rkey: granted.rkey, length: 64)
        try peer.queuePairs.pairB.post(SendWorkRequest(id: 77, operation: .write(beyond)),
                                       scatterGather: peer.region.scatterGather(offset: 0, length: 64))
        var status: WorkCompletion.Status?
        for _ in 0..<200_000 where status == nil {
            _ = try? peer.endpoint.poll()
            if let completion = try peer.queuePairs.pairB.sendCompletionQueue.pollOne(), completion.id == 77 { status = completion.status }
        }
        #expect(status == .remoteAccessError)
        #expect(peer.canaryIntact)
    }

    @Test func aBadHandshakeIsRefusedNamingTheField() throws {
        let peer = try HostilePeer()
        var handshake = peer.endpoint.localHandshake
        handshake.eagerLimit = 0
        #expect(throws: EndpointError.invalidConfiguration(field: "handshake.eagerLimit", detail: "0 outside 1…1048576")) {
            try EndpointHandshake(serialized: handshake.serialized)
        }
        handshake = peer.endpoint.localHandshake
        handshake.rendezvousSlots = 4
        handshake.rendezvousSlotSize = 1 << 30
        #expect { try EndpointHandshake(serialized: handshake.serialized) } throws: {
            violatedField($0 as? EndpointError) == nil && "\($0)".contains("handshake.rendezvousRegion")
        }
    }
}
