import Benchmark
import RDMA

// The data path through the backend seam, on the soft backend over 127.0.0.1 (one engine,
// two queue pairs connected to each other): post, let the engine run, poll. What the seam
// adds per request is the dispatch to the backend and the hand-over of the request, so
// the time is dominated by the engine and the loopback socket; the malloc count must be 0.

/// One soft context with two RC queue pairs connected to each other, and a UD pair that
/// sends to itself through an address handle.
final class SoftLoopback {
    let context: Context
    let domain: ProtectionDomain
    let queue: CompletionQueue
    let sender: QueuePair
    let receiver: QueuePair
    let datagramSender: QueuePair
    let datagramReceiver: QueuePair
    let region: MemoryRegion
    let destination: DatagramDestination
    let completions: UnsafeMutableBufferPointer<WorkCompletion>

    init() throws {
        context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
        domain = try ProtectionDomain(context: context)
        queue = try CompletionQueue(context: context, minimumEntries: 1024)
        let capabilities = QueuePairCapabilities(maxSendWorkRequests: 64, maxReceiveWorkRequests: 64)
        sender = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue,
                               receiveCompletionQueue: queue, capabilities: capabilities)
        receiver = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue,
                                 receiveCompletionQueue: queue, capabilities: capabilities)
        datagramSender = try QueuePair(protectionDomain: domain, kind: .unreliableDatagram, sendCompletionQueue: queue,
                                       receiveCompletionQueue: queue, capabilities: capabilities)
        datagramReceiver = try QueuePair(protectionDomain: domain, kind: .unreliableDatagram, sendCompletionQueue: queue,
                                         receiveCompletionQueue: queue, capabilities: capabilities)
        region = try MemoryRegion(protectionDomain: domain, length: 1 << 16, access: .allRemote)
        let options = ConnectionOptions(gidIndex: 0)
        let senderEnd = try sender.localEndpoint(gidIndex: 0, psn: 1)
        let receiverEnd = try receiver.localEndpoint(gidIndex: 0, psn: 2)
        try sender.connect(to: receiverEnd, local: senderEnd, options: options)
        try receiver.connect(to: senderEnd, local: receiverEnd, options: options)
        let datagramSenderEnd = try datagramSender.localEndpoint(gidIndex: 0, psn: 3)
        let datagramReceiverEnd = try datagramReceiver.localEndpoint(gidIndex: 0, psn: 4)
        try datagramSender.connect(to: datagramReceiverEnd, local: datagramSenderEnd, options: options)
        try datagramReceiver.connect(to: datagramSenderEnd, local: datagramReceiverEnd, options: options)
        let handle = try AddressHandle(protectionDomain: domain,
                                       addressVector: AddressVector(destinationGID: datagramReceiverEnd.gid, sourceGIDIndex: 0))
        destination = DatagramDestination(addressHandle: handle, remoteQueuePairNumber: datagramReceiver.number,
                                          remoteQKey: options.qkey)
        completions = .allocate(capacity: 32)
    }

    /// Polls until `count` completions arrived; traps on an error completion (a benchmark
    /// that measures failures would be meaningless).
    @inline(__always)
    func drain(_ count: Int) throws {
        var seen = 0
        while seen < count {
            let polled = try queue.poll(into: completions)
            for index in 0..<polled { precondition(completions[index].status == .success, "\(completions[index])") }
            seen += polled
        }
    }

    deinit {
        try? context.close()
        completions.deallocate()
    }
}

let softDataPathBenchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        maxDuration: .seconds(3)
    )
    let chainLength = 16

    Benchmark("Soft RC: post a chain of 16 WRITEs (64 B), poll its completion", configuration: configuration) { benchmark in
        let loopback = try SoftLoopback()
        let chain = SendRequestChain(capacity: chainLength)
        let remote = loopback.region.remoteDescriptor
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            chain.removeAll()
            for index in 0..<chainLength {
                try chain.append(SendWorkRequest(id: UInt64(index), operation: .write(remote.slice(offset: 32768 + UInt32(index) * 64, length: 64)),
                                                 flags: index == chainLength - 1 ? .signaled : []),
                                 scatterGather: loopback.region.scatterGather(offset: index * 64, length: 64))
            }
            try loopback.sender.post(chain)
            try loopback.drain(1)
        }
        benchmark.stopMeasurement()
    }

    Benchmark("Soft RC: post one receive and one SEND (64 B), poll both", configuration: configuration) { benchmark in
        let loopback = try SoftLoopback()
        benchmark.startMeasurement()
        for iteration in benchmark.scaledIterations {
            try loopback.receiver.postReceive(id: UInt64(iteration), scatterGather: loopback.region.scatterGather(offset: 8192, length: 64))
            try loopback.sender.post(SendWorkRequest(id: UInt64(iteration)), scatterGather: loopback.region.scatterGather(length: 64))
            try loopback.drain(2)
        }
        benchmark.stopMeasurement()
    }

    Benchmark("Soft UD: post one receive and one SEND through an AddressHandle, poll both", configuration: configuration) { benchmark in
        let loopback = try SoftLoopback()
        let destination = loopback.destination
        benchmark.startMeasurement()
        for iteration in benchmark.scaledIterations {
            try loopback.datagramReceiver.postReceive(id: UInt64(iteration), scatterGather: loopback.region.scatterGather(offset: 8192, length: 40 + 64))
            try loopback.datagramSender.post(SendWorkRequest(id: UInt64(iteration), datagram: destination),
                                             scatterGather: loopback.region.scatterGather(length: 64))
            try loopback.drain(2)
        }
        benchmark.stopMeasurement()
    }
}
