import Foundation
import Testing
@testable import RDMA

/// The contract every backend must pass: real traffic on one device. Runs on the verbs
/// device named by RDMA_TEST_DEVICE (the kernel-rxe lab, tools/rxe-lab) and, everywhere
/// else, on the soft backend (SoftRoCE over UDP on 127.0.0.1) — see DeviceUnderTest.
@Suite("Device contract (verbs on RDMA_TEST_DEVICE, else soft on 127.0.0.1)", .serialized, .enabled(if: DeviceUnderTest.isPresent, DeviceUnderTest.skipReason))
struct DeviceTests {
    @Test func deviceListPortAndGIDTableDescribeTheDevice() throws {
        let context = try DeviceUnderTest.open()
        #expect(try Device.all().contains { $0.name == DeviceUnderTest.name })
        let attributes = try context.deviceAttributes()
        #expect(attributes.maxQueuePairs > 0 && attributes.maxCompletionQueueEntries > 0 && attributes.maxMemoryRegions > 0)
        #expect(attributes.physicalPortCount >= 1)
        let port = try context.portAttributes(port: DeviceUnderTest.port)
        #expect(port.state == .active)
        #expect(port.linkLayer == .ethernet)
        #expect(port.activeMTU != nil)
        let preferred = try context.preferredRoCEv2GID(port: DeviceUnderTest.port)
        #expect(preferred.type == .roceV2 && preferred.gid.isIPv4Mapped)
        if let configured = DeviceUnderTest.configuredGIDIndex { #expect(preferred.index == configured) }
        #expect(context.device.transport == .infiniBand)
        try context.close()
        try context.close()   // idempotent
        #expect(throws: RDMAError.self) { try context.portAttributes() }
    }

    @Test func sendWithImmediateArrivesInOrder() throws {
        let pair = try ConnectedPair()
        try pair.pairB.postReceive(id: 10, scatterGather: pair.regionB.scatterGather(offset: 0, length: 1024))
        try pair.pairB.postReceive(id: 11, scatterGather: pair.regionB.scatterGather(offset: 1024, length: 1024))
        pair.regionA.write("hello, rdma")
        pair.regionA.write("second", at: 100)
        let chain = SendRequestChain(capacity: 2)
        try chain.append(SendWorkRequest(id: 1, operation: .sendWithImmediate(0xC0FFEE)), scatterGather: pair.regionA.scatterGather(length: 11))
        try chain.append(SendWorkRequest(id: 2), scatterGather: pair.regionA.scatterGather(offset: 100, length: 6))
        try pair.pairA.post(chain)
        let sent = try pair.completions(pair.queueA, count: 2)
        #expect(sent.map(\.id) == [1, 2] && sent.allSatisfy { $0.status == .success && $0.opcode == .send })
        let received = try pair.completions(pair.queueB, count: 2)
        #expect(received.map(\.id) == [10, 11])
        #expect(received[0].status == .success && received[0].opcode == .receive)
        #expect(received[0].byteLength == 11 && received[0].immediateData == 0xC0FFEE)
        #expect(received[1].byteLength == 6 && received[1].immediateData == nil)
        #expect(pair.regionB.read(11) == "hello, rdma" && pair.regionB.read(6, at: 1024) == "second")
    }

    @Test func inlineSendNeedsNoRegisteredSource() throws {
        let pair = try ConnectedPair()
        try pair.pairB.postReceive(id: 1, scatterGather: pair.regionB.scatterGather(length: 64))
        var payload = Array("inline!".utf8)
        try payload.withUnsafeMutableBytes { bytes in
            let element = ScatterGatherElement(address: UInt64(UInt(bitPattern: bytes.baseAddress)), length: UInt32(bytes.count), lkey: 0)
            try pair.pairA.post(SendWorkRequest(id: 5, flags: [.signaled, .inline]), scatterGather: element)
        }
        payload = []   // the buffer is free once posted
        #expect(try pair.completions(pair.queueA)[0].status == .success)
        #expect(try pair.completions(pair.queueB)[0].byteLength == 7)
        #expect(pair.regionB.read(7) == "inline!")
    }

    @Test func rdmaWriteAndWriteWithImmediate() throws {
        let pair = try ConnectedPair()
        pair.regionA.write("written by A")
        let target = pair.regionB.remoteDescriptor.slice(offset: 4096)
        try pair.pairA.post(SendWorkRequest(id: 1, operation: .write(target)), scatterGather: pair.regionA.scatterGather(length: 12))
        #expect(try pair.completions(pair.queueA)[0].status == .success)
        #expect(pair.regionB.read(12, at: 4096) == "written by A")
        #expect(try pair.queueB.pollOne() == nil)   // a plain WRITE is invisible to B's CPU

        try pair.pairB.postReceive(id: 77, scatterGather: pair.regionB.scatterGather(length: 16))
        try pair.pairA.post(SendWorkRequest(id: 2, operation: .writeWithImmediate(target.slice(offset: 100), immediate: 42)),
                            scatterGather: pair.regionA.scatterGather(length: 7))
        #expect(try pair.completions(pair.queueA)[0].status == .success)
        let notice = try pair.completions(pair.queueB)[0]
        #expect(notice.id == 77 && notice.opcode == .receiveRDMAWriteWithImmediate && notice.immediateData == 42)
        #expect(pair.regionB.read(7, at: 4196) == "written")
    }

    @Test func rdmaReadFetchesRemoteBytes() throws {
        let pair = try ConnectedPair()
        pair.regionB.write("remote bytes to read", at: 8192)
        try pair.pairA.post(SendWorkRequest(id: 3, operation: .read(pair.regionB.remoteDescriptor.slice(offset: 8192, length: 20))),
                            scatterGather: pair.regionA.scatterGather(offset: 512, length: 20))
        let completion = try pair.completions(pair.queueA)[0]
        #expect(completion.status == .success && completion.opcode == .rdmaRead && completion.byteLength == 20)
        #expect(pair.regionA.read(20, at: 512) == "remote bytes to read")
    }

    @Test func atomicsCompareAndSwapAndFetchAndAdd() throws {
        let pair = try ConnectedPair()
        pair.regionB.bytes.storeBytes(of: UInt64(5), toByteOffset: 64, as: UInt64.self)
        let target = pair.regionB.remoteDescriptor.slice(offset: 64, length: 8)
        let result = pair.regionA.scatterGather(offset: 0, length: 8)
        try pair.pairA.post(SendWorkRequest(id: 1, operation: .compareAndSwap(target, compare: 5, swap: 9)), scatterGather: result)
        let swap = try pair.completions(pair.queueA)[0]
        #expect(swap.status == .success && swap.opcode == .compareAndSwap)
        #expect(pair.regionA.bytes.load(as: UInt64.self) == 5)
        #expect(pair.regionB.bytes.load(fromByteOffset: 64, as: UInt64.self) == 9)

        try pair.pairA.post(SendWorkRequest(id: 2, operation: .compareAndSwap(target, compare: 5, swap: 1)), scatterGather: result)
        #expect(try pair.completions(pair.queueA)[0].status == .success)
        #expect(pair.regionA.bytes.load(as: UInt64.self) == 9)                     // compare failed: unchanged
        #expect(pair.regionB.bytes.load(fromByteOffset: 64, as: UInt64.self) == 9)

        try pair.pairA.post(SendWorkRequest(id: 3, operation: .fetchAndAdd(target, add: 3)), scatterGather: result)
        let add = try pair.completions(pair.queueA)[0]
        #expect(add.status == .success && add.opcode == .fetchAndAdd)
        #expect(pair.regionA.bytes.load(as: UInt64.self) == 9)
        #expect(pair.regionB.bytes.load(fromByteOffset: 64, as: UInt64.self) == 12)
    }

    @Test func reliableQueuePairLoopsBackToItself() throws {
        let context = try DeviceUnderTest.open()
        let domain = try ProtectionDomain(context: context)
        let queue = try CompletionQueue(context: context, minimumEntries: 16)
        let pair = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue, receiveCompletionQueue: queue)
        let region = try MemoryRegion(protectionDomain: domain, length: 4096, access: .allRemote)
        let gidIndex = try DeviceUnderTest.gidIndex(context)
        let me = try pair.localEndpoint(port: DeviceUnderTest.port, gidIndex: gidIndex, psn: 7)
        try pair.connect(to: me, local: me, options: ConnectionOptions(port: DeviceUnderTest.port, gidIndex: UInt8(gidIndex)))
        #expect(try pair.state() == .readyToSend)
        region.write("to myself")
        try pair.postReceive(id: 2, scatterGather: region.scatterGather(offset: 2048, length: 64))
        try pair.post(SendWorkRequest(id: 1), scatterGather: region.scatterGather(length: 9))
        let completions = try queue.waitForCompletions(count: 2, timeout: DeviceUnderTest.completionTimeout)
        #expect(Set(completions.map(\.id)) == [1, 2] && completions.allSatisfy { $0.status == .success })
        #expect(region.read(9, at: 2048) == "to myself")
    }

    @Test func unreliableDatagramPairWithAddressHandle() throws {
        let pair = try ConnectedPair(kind: .unreliableDatagram)
        let grh = 40
        try pair.pairB.postReceive(id: 1, scatterGather: pair.regionB.scatterGather(length: grh + 256))
        let handle = try AddressHandle(protectionDomain: pair.domain,
                                       addressVector: AddressVector(destinationGID: pair.endpointB.gid, sourceGIDIndex: UInt8(pair.gidIndex),
                                                                    port: DeviceUnderTest.port))
        pair.regionA.write("datagram")
        let destination = DatagramDestination(addressHandle: handle, remoteQueuePairNumber: pair.pairB.number, remoteQKey: 0x1111_1111)
        try pair.pairA.post(SendWorkRequest(id: 9, datagram: destination), scatterGather: pair.regionA.scatterGather(length: 8))
        #expect(try pair.completions(pair.queueA)[0].status == .success)
        let received = try pair.completions(pair.queueB)[0]
        #expect(received.status == .success && received.byteLength == UInt32(grh + 8))
        #expect(received.hasGlobalRouteHeader && received.sourceQueuePairNumber == pair.pairA.number)
        #expect(pair.regionB.read(8, at: grh) == "datagram")
    }

    @Test func sharedReceiveQueueFeedsTheQueuePair() throws {
        let pair = try ConnectedPair(sharedReceiveQueueForB: { domain in try SharedReceiveQueue(protectionDomain: domain, maxWorkRequests: 16) })
        let srq = try #require(pair.pairB.sharedReceiveQueue)
        let receives = ReceiveRequestChain(capacity: 2)
        try receives.append(id: 100, scatterGather: pair.regionB.scatterGather(offset: 0, length: 64))
        try receives.append(id: 101, scatterGather: pair.regionB.scatterGather(offset: 64, length: 64))
        try srq.postReceive(receives)
        #expect(throws: RDMAError.self) { try pair.pairB.postReceive(id: 1, scatterGather: pair.regionB.scatterGather(length: 8)) }
        pair.regionA.write("via srq")
        try pair.pairA.post(SendWorkRequest(id: 1), scatterGather: pair.regionA.scatterGather(length: 7))
        try pair.pairA.post(SendWorkRequest(id: 2), scatterGather: pair.regionA.scatterGather(length: 3))
        _ = try pair.completions(pair.queueA, count: 2)
        let received = try pair.completions(pair.queueB, count: 2)
        #expect(received.map(\.id) == [100, 101] && received.map(\.byteLength) == [7, 3])
        #expect(pair.regionB.read(7) == "via srq" && pair.regionB.read(3, at: 64) == "via")
    }

    @Test func completionEventsWakeAWaiter() throws {
        let context = try DeviceUnderTest.open()
        let channel = try CompletionChannel(context: context)
        #expect(channel.fileDescriptor >= 0)
        let pair = try ConnectedPair(channelForB: channel, context: context)
        try pair.queueB.requestNotification()
        #expect(try channel.waitForEvent(timeoutMilliseconds: 200) == nil)    // nothing yet: a bounded wait
        try pair.pairB.postReceive(id: 1, scatterGather: pair.regionB.scatterGather(length: 64))
        try pair.pairA.post(SendWorkRequest(id: 1), scatterGather: pair.regionA.scatterGather(length: 4))
        let woken = try #require(try channel.waitForEvent(timeoutMilliseconds: 20_000))
        #expect(woken === pair.queueB)
        woken.acknowledgeEvents(1)
        try woken.requestNotification()
        #expect(try pair.completions(pair.queueB)[0].status == .success)
        #expect(throws: RDMAError.self) { try pair.queueA.requestNotification() }   // no channel
    }

    /// `wake()` ends a wait blocked in another thread without an event (a 20 s wait returns
    /// nil long before), and wakes with nobody waiting make the next wait return nil at once —
    /// once, however many there were. Events still wake a waiter as before.
    @Test func aWakeEndsAWaitWithoutAnEvent() throws {
        let context = try DeviceUnderTest.open()
        let channel = try CompletionChannel(context: context)
        let pair = try ConnectedPair(channelForB: channel, context: context)
        try pair.queueB.requestNotification()
        let clock = ContinuousClock()

        channel.wake()
        channel.wake()
        var start = clock.now
        #expect(try channel.waitForEvent(timeoutMilliseconds: 20_000) == nil)
        #expect(clock.now - start < .seconds(10), "the wake made before the wait ended it")
        start = clock.now
        #expect(try channel.waitForEvent(timeoutMilliseconds: 100) == nil)
        #expect(clock.now - start >= .milliseconds(90), "two wakes count once: this wait ran its course")

        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) { channel.wake() }
        start = clock.now
        #expect(try channel.waitForEvent(timeoutMilliseconds: 20_000) == nil)
        #expect(clock.now - start < .seconds(10), "a wake from another thread ended the wait")

        try pair.pairB.postReceive(id: 1, scatterGather: pair.regionB.scatterGather(length: 64))
        try pair.pairA.post(SendWorkRequest(id: 1), scatterGather: pair.regionA.scatterGather(length: 4))
        let woken = try #require(try channel.waitForEvent(timeoutMilliseconds: 20_000))
        #expect(woken === pair.queueB)
        woken.acknowledgeEvents(1)
        #expect(try pair.completions(pair.queueB)[0].status == .success)
    }

    @Test func wrongRemoteKeyIsARemoteAccessError() throws {
        let pair = try ConnectedPair()
        var target = pair.regionB.remoteDescriptor
        target.rkey &+= 0x100
        try pair.pairA.post(SendWorkRequest(id: 1, operation: .write(target)), scatterGather: pair.regionA.scatterGather(length: 8))
        let completion = try pair.completions(pair.queueA)[0]
        #expect(completion.status == .remoteAccessError)
        #expect(try pair.pairA.state() == .error)
    }

    @Test func accessOutsideTheRegionIsRejected() throws {
        let pair = try ConnectedPair()
        let region = pair.regionB.remoteDescriptor
        let beyond = RemoteMemory(address: region.address + UInt64(region.length) - 4, rkey: region.rkey, length: 64)
        try pair.pairA.post(SendWorkRequest(id: 1, operation: .write(beyond)), scatterGather: pair.regionA.scatterGather(length: 64))
        #expect(try pair.completions(pair.queueA)[0].status == .remoteAccessError)
    }

    @Test func missingReceiveExhaustsReceiverNotReadyRetries() throws {
        let pair = try ConnectedPair(configure: { options in
            options.rnrRetry = 0
            options.minRNRTimer = 1
        })
        try pair.pairA.post(SendWorkRequest(id: 1), scatterGather: pair.regionA.scatterGather(length: 8))
        let completion = try pair.completions(pair.queueA)[0]
        #expect(completion.status == .receiverNotReadyRetryExceeded)
        #expect(completion.status.description.contains("post receives"))
    }

    @Test func queuePairInErrorFlushesPostedReceives() throws {
        let pair = try ConnectedPair()
        let receives = ReceiveRequestChain(capacity: 3)
        for slot in 0..<3 { try receives.append(id: UInt64(slot), scatterGather: pair.regionB.scatterGather(offset: slot * 64, length: 64)) }
        try pair.pairB.postReceive(receives)
        try pair.pairB.modify(QueuePairAttributes(targetState: .error))
        #expect(try pair.pairB.state() == .error)
        let flushed = try pair.completions(pair.queueB, count: 3)
        #expect(flushed.map(\.id) == [0, 1, 2])
        #expect(flushed.allSatisfy { $0.status == .flushed })
    }

    @Test func invalidTransitionsFailBeforeReachingTheDevice() throws {
        let context = try DeviceUnderTest.open()
        let domain = try ProtectionDomain(context: context)
        let queue = try CompletionQueue(context: context, minimumEntries: 4)
        let pair = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue, receiveCompletionQueue: queue)
        var skip = QueuePairAttributes(targetState: .readyToSend)
        skip.sendPSN = 0
        #expect(throws: RDMAError.self) { try pair.modify(skip) }
        #expect(try pair.state() == .reset)
    }

    @Test func closingAParentClosesItsChildrenFirst() throws {
        let pair = try ConnectedPair()
        try pair.context.close()
        #expect(pair.pairA.isClosed && pair.regionA.isClosed && pair.queueA.isClosed && pair.domain.isClosed)
        try pair.pairA.close()   // idempotent
        do {
            try pair.pairA.post(SendWorkRequest(id: 1), scatterGather: ScatterGatherElement(address: 0, length: 0, lkey: 0))
            Issue.record("posting on a closed QP succeeded")
        } catch {
            #expect(error.kind == .closed)
        }
    }

    @Test func registrationErrorsAreClear() throws {
        let context = try DeviceUnderTest.open()
        let domain = try ProtectionDomain(context: context)
        #expect(throws: RDMAError.self) { try MemoryRegion(protectionDomain: domain, length: 0) }
        #expect(throws: RDMAError.self) { try MemoryRegion(protectionDomain: domain, length: 64, access: .remoteWrite) }
        let region = try MemoryRegion(protectionDomain: domain, length: 64, access: .localWrite)
        #expect(region.remoteDescriptor.length == 64 && region.lkey != 0)
    }
}
