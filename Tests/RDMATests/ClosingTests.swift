import CIBVerbs
import Synchronization
import Testing
@testable import RDMA

/// Closing through the backend seam: closed only after the destroy call succeeded, the
/// parent's retry reaching the child that failed, and the debug-build leak report.
@Suite("Closing", .serialized)
struct ClosingTests {
    /// A region the engine holds in `domain` without a `MemoryRegion` child — what an
    /// application that forgot a region looks like to `ibv_dealloc_pd`.
    private static func registerBehindTheDomainsBack(_ domain: ProtectionDomain, _ bytes: UnsafeMutableRawBufferPointer) throws -> any MemoryRegionOperations {
        try domain.operations("test").registerMemory(bytes, access: .localWrite)
    }

    @Test func failedDeallocationLeavesTheDomainOpenAndRetryable() throws {
        let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
        defer { try? context.close() }
        let domain = try ProtectionDomain(context: context)
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { bytes.deallocate() }
        let region = try Self.registerBehindTheDomainsBack(domain, bytes)

        // ibv_dealloc_pd answers EBUSY while the domain still has a region; so must soft.
        do {
            try domain.close()
            Issue.record("deallocating a domain that still has a memory region succeeded")
        } catch {
            #expect(error.errno == EBUSY, "\(error)")
        }
        #expect(!domain.isClosed)
        try MemoryRegion(protectionDomain: domain, length: 64).close()   // still usable

        try region.deregister()
        try domain.close()
        #expect(domain.isClosed)
        try domain.close()   // idempotent
    }

    @Test func aParentRetriesTheChildWhoseCloseFailed() throws {
        let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
        let domain = try ProtectionDomain(context: context)
        let queue = try CompletionQueue(context: context, minimumEntries: 4)
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { bytes.deallocate() }
        let region = try Self.registerBehindTheDomainsBack(domain, bytes)

        #expect(throws: RDMAError.self) { try context.close() }
        #expect(!context.isClosed && !domain.isClosed)
        #expect(queue.isClosed, "the children that could be closed were")
        #expect(try context.deviceAttributes().physicalPortCount == 1)

        try region.deregister()
        try context.close()
        #expect(context.isClosed && domain.isClosed)
    }

    @Test(.enabled(if: DeviceUnderTest.isSoft, "the soft backend's UD path"))
    func datagramSendReachesThePeerWithoutAnAddressHandlePointer() throws {
        let pair = try ConnectedPair(kind: .unreliableDatagram)
        let grh = 40
        let handle = try AddressHandle(protectionDomain: pair.domain,
                                       addressVector: AddressVector(destinationGID: pair.endpointB.gid, sourceGIDIndex: UInt8(pair.gidIndex)))
        let destination = DatagramDestination(addressHandle: handle, remoteQueuePairNumber: pair.pairB.number, remoteQKey: 0x1111_1111)
        try pair.pairB.postReceive(id: 1, scatterGather: pair.regionB.scatterGather(length: grh + 64))
        try pair.pairB.postReceive(id: 2, scatterGather: pair.regionB.scatterGather(offset: 4096, length: grh + 64))
        pair.regionA.write("chained!")

        let chain = SendRequestChain(capacity: 2)
        try chain.append(SendWorkRequest(id: 7, datagram: destination), scatterGather: pair.regionA.scatterGather(length: 8))
        try chain.append(SendWorkRequest(id: 8, datagram: destination), scatterGather: pair.regionA.scatterGather(length: 4))
        // The C view of the chain holds no Swift object where libibverbs expects an ibv_ah.
        #expect(chain.requests[0].wr.ud.ah == nil && chain.requests[1].wr.ud.ah == nil)
        try pair.pairA.post(chain)

        #expect(try pair.completions(pair.queueA, count: 2).map(\.id) == [7, 8])
        let received = try pair.completions(pair.queueB, count: 2)
        #expect(received.map(\.byteLength) == [UInt32(grh + 8), UInt32(grh + 4)])
        #expect(pair.regionB.read(8, at: grh) == "chained!" && pair.regionB.read(4, at: 4096 + grh) == "chai")

        // A closed handle names no destination: refused at post time, like a NULL ah.
        try handle.close()
        #expect(throws: RDMAError.self) {
            try pair.pairA.post(SendWorkRequest(id: 9, datagram: destination), scatterGather: pair.regionA.scatterGather(length: 8))
        }
    }

    @Test func softContextAnswersWithoutExposingTheEngine() throws {
        let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
        defer { try? context.close() }
        let port = try #require(context.softUDPPort)
        #expect(port != 0, "the kernel's choice for port 0 is reported")
        #expect(context.softCounters?.sentPackets == 0)
        context.startBackgroundProgress()
        context.stopBackgroundProgress()
        try context.close()
        #expect(context.softCounters == nil && context.softUDPPort == nil)
    }

    #if DEBUG
    @Test func anObjectDroppedWithoutCloseIsReported() throws {
        let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0, name: "leak-check"))
        defer { try? context.close() }
        let reports = Mutex<[String]>([])
        LeakCheck.$report.withValue({ message in reports.withLock { $0.append(message) } }) {
            do {
                let closed = try? ProtectionDomain(context: context)
                try? closed?.close()
                _ = try? ProtectionDomain(context: context)   // dropped open
            }
        }
        let seen = reports.withLock { $0 }
        #expect(seen.count == 1, "\(seen)")
        #expect(seen.first?.contains("leaked ProtectionDomain (leak-check)") == true, "\(seen)")
        #expect(LeakCheck.leakReport("QueuePair", isOpen: false, detail: "") == nil)
    }
    #endif
}
