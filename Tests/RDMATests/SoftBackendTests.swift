#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RDMA

/// What only the soft backend has: how it is opened, IPv6, background progress.
@Suite("Soft backend", .serialized)
struct SoftBackendTests {
    @Test func softContextDescribesItselfTruthfully() throws {
        let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0, name: "soft-describe"))
        #expect(context.backend == .soft)
        #expect(context.device.name == "soft-describe")
        #expect(try Device.all().contains { $0.name == "soft-describe" })
        let gid = try #require(try context.gidTable().first)
        #expect(gid.gid.isIPv4Mapped && gid.gid.ipv4Address! == (127, 0, 0, 1) && gid.type == .roceV2 && gid.index == 0)
        #expect(try context.portAttributes().activeMTU == .mtu4096)
        #expect(throws: RDMAError.self) { try context.portAttributes(port: 2) }
        #expect(try context.deviceAttributes().atomicCapability == .withinDevice)
        try context.close()
        #expect(throws: RDMAError.self) { try context.deviceAttributes() }
    }

    @Test func bindingATakenPortFailsWithAHint() throws {
        let first = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
        defer { try? first.close() }
        let port = try #require(first.softUDPPort)
        do {
            _ = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: port))
            Issue.record("a second bind of the same address and port succeeded")
        } catch {
            #expect(error.hint?.contains("port") == true)
        }
        #expect(throws: RDMAError.self) { try Context(soft: SoftDeviceConfiguration(address: "not-an-address")) }
    }

    @Test func reliableLoopbackOverIPv6() throws {
        let context: Context
        do {
            context = try Context(soft: SoftDeviceConfiguration(address: "::1", port: 0))
        } catch {
            // No IPv6 on this loopback: nothing to test here.
            return
        }
        defer { try? context.close() }
        let domain = try ProtectionDomain(context: context)
        let queue = try CompletionQueue(context: context, minimumEntries: 16)
        let pairA = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue, receiveCompletionQueue: queue)
        let pairB = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue, receiveCompletionQueue: queue)
        let region = try MemoryRegion(protectionDomain: domain, length: 4096, access: .allRemote)
        let endpointA = try pairA.localEndpoint(gidIndex: 0, psn: 1)
        let endpointB = try pairB.localEndpoint(gidIndex: 0, psn: 2)
        #expect(!endpointA.gid.isIPv4Mapped)
        try pairA.connect(to: endpointB, local: endpointA, options: ConnectionOptions(gidIndex: 0))
        try pairB.connect(to: endpointA, local: endpointB, options: ConnectionOptions(gidIndex: 0))
        try pairB.postReceive(id: 2, scatterGather: region.scatterGather(offset: 2048, length: 64))
        region.write("over IPv6")
        try pairA.post(SendWorkRequest(id: 1), scatterGather: region.scatterGather(length: 9))
        let completions = try queue.waitForCompletions(count: 2, timeout: .seconds(10))
        #expect(Set(completions.map(\.id)) == [1, 2] && completions.allSatisfy { $0.status == .success })
        #expect(region.read(9, at: 2048) == "over IPv6")
    }

    @Test func backgroundProgressMakesTheChannelReadableWithoutPolling() throws {
        let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
        let channel = try CompletionChannel(context: context)
        let pair = try ConnectedPair(channelForB: channel, context: context)
        context.startBackgroundProgress()
        try pair.queueB.requestNotification()
        try pair.pairB.postReceive(id: 1, scatterGather: pair.regionB.scatterGather(length: 64))
        try pair.pairA.post(SendWorkRequest(id: 1), scatterGather: pair.regionA.scatterGather(length: 4))
        var descriptor = pollfd(fd: channel.fileDescriptor, events: Int16(POLLIN), revents: 0)
        #expect(poll(&descriptor, 1, 5000) == 1, "the channel's descriptor became readable by itself")
        let woken = try #require(try channel.waitForEvent(timeoutMilliseconds: 1000))
        #expect(woken === pair.queueB)
        woken.acknowledgeEvents(1)
        #expect(try pair.completions(pair.queueB)[0].status == .success)
        try context.close()
    }

    @Test func countersUseRxeNames() throws {
        let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
        defer { try? context.close() }
        let pair = try ConnectedPair(context: context)
        try pair.pairB.postReceive(id: 1, scatterGather: pair.regionB.scatterGather(length: 64))
        try pair.pairA.post(SendWorkRequest(id: 1), scatterGather: pair.regionA.scatterGather(length: 4))
        _ = try pair.completions(pair.queueB)
        _ = try pair.completions(pair.queueA)   // needs B's ACK, sent at the engine's next entry
        let counters = try #require(context.softCounters)
        let names = Dictionary(uniqueKeysWithValues: counters.named.map { ($0.name, $0.value) })
        #expect(names["sent_pkts"]! >= 2 && names["rcvd_pkts"]! >= 1 && names["rdma_sends"] != nil && names["rdma_recvs"]! >= 1)
        #expect(names["duplicate_request"] == 0 && names["retry_exceeded_err"] == 0)
    }
}
