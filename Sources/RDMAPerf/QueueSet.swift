import RDMA

/// One side's RDMA objects for a run: a protection domain, one registered buffer, one
/// completion queue shared by every QP, and `count` RC queue pairs (UD ones for `-c UD`).
///
/// Buffer layout: `[0, slot)` is what we send / what the peer reads; `[slot, 2·slot)` is
/// where the peer's SENDs and WRITEs land and where READ/atomic results go.
final class QueueSet {
    let context: Context
    let protectionDomain: ProtectionDomain
    let memory: MemoryRegion
    let completionQueue: CompletionQueue
    let queuePairs: [QueuePair]
    let slot: Int
    let maxInline: Int
    let sendDepth: Int
    let receiveDepth: Int

    /// The channel the completion queue reports to with `-e`; nil when the loops busy-poll.
    let completionChannel: CompletionChannel?

    let kind: QueuePairKind

    /// UD (`-c UD`): where each QP's SENDs go (`aim`); empty on connected QPs.
    private(set) var datagrams: [DatagramDestination] = []
    private var addressHandles: [AddressHandle] = []

    /// What a UD receive holds before the payload: the 40-byte global route header.
    static let routeHeaderRoom = 40
    /// The Q_Key of our UD QPs and of their SENDs: perftest's `DEF_QKEY`.
    static let queueKey: UInt32 = 0x1111_1111

    /// `events` (-e): the completion queue gets a channel (`ibv_create_comp_channel`),
    /// which `CompletionPump` waits on when a poll finds nothing.
    /// `kind`: RC, or UD for perftest's `-c UD` (SENDs only, each aimed with `aim`).
    init(context: Context, queuePairs count: Int, slot: Int, sendDepth: Int, receiveDepth: Int,
         inlineSize: Int?, events: Bool = false, kind: QueuePairKind = .reliableConnected) throws(PerfError) {
        self.context = context
        self.slot = slot
        self.kind = kind
        do {
            let attributes = try context.deviceAttributes()
            let depthCap = max(1, attributes.maxQueuePairWorkRequests)
            self.sendDepth = min(sendDepth, depthCap)
            self.receiveDepth = min(receiveDepth, depthCap)
            protectionDomain = try ProtectionDomain(context: context)
            memory = try MemoryRegion(protectionDomain: protectionDomain, length: 2 * slot,
                                      access: [.localWrite, .remoteWrite, .remoteRead, .remoteAtomic])
            let entries = min(attributes.maxCompletionQueueEntries, count * (self.sendDepth + self.receiveDepth) + 16)
            completionChannel = events ? try CompletionChannel(context: context) : nil
            completionQueue = try CompletionQueue(context: context, minimumEntries: entries, channel: completionChannel)
            var pairs: [QueuePair] = []
            var granted = Int.max
            for _ in 0..<count {
                let pair = try QueuePair(protectionDomain: protectionDomain, kind: kind,
                                         sendCompletionQueue: completionQueue, receiveCompletionQueue: completionQueue,
                                         capabilities: QueuePairCapabilities(maxSendWorkRequests: UInt32(self.sendDepth),
                                                                             maxReceiveWorkRequests: UInt32(self.receiveDepth),
                                                                             maxSendScatterGather: 1, maxReceiveScatterGather: 1,
                                                                             maxInlineData: UInt32(inlineSize ?? 220)))
                granted = min(granted, Int(pair.capabilities.maxInlineData))
                pairs.append(pair)
            }
            queuePairs = pairs
            maxInline = min(granted, inlineSize ?? granted)
        } catch {
            throw PerfError("setting up queues on \(context.device.name): \(error)")
        }
    }

    func endpoints(port: UInt8, gidIndex: Int) throws(PerfError) -> [Endpoint] {
        var result: [Endpoint] = []
        for pair in queuePairs {
            do {
                result.append(try pair.localEndpoint(port: port, gidIndex: gidIndex, psn: UInt32.random(in: 0...0xFF_FFFF)))
            } catch {
                throw .usage("bad GID index \(gidIndex): \(error)")
            }
        }
        return result
    }

    var remoteDescriptor: RemoteMemory { memory.remoteDescriptor }

    func connect(local: [Endpoint], remote: [Endpoint], port: UInt8, gidIndex: Int, mtu: Int?, timeout: UInt8) throws(PerfError) {
        guard remote.count == queuePairs.count else {
            throw .peer("the peer offers \(remote.count) QPs, we have \(queuePairs.count)", hint: "give the same -q on both sides")
        }
        var options = ConnectionOptions(port: port, gidIndex: UInt8(gidIndex), timeout: timeout)
        options.access = [.remoteRead, .remoteWrite, .remoteAtomic]
        options.maxReadAtomic = 16
        options.qkey = Self.queueKey
        if let mtu { options.pathMTU = PathMTU(bytes: mtu) }
        if let attributes = try? context.deviceAttributes() {
            options.maxReadAtomic = UInt8(clamping: max(1, min(16, attributes.maxQueuePairReadAtomicRequester, attributes.maxQueuePairReadAtomicResponder)))
        }
        for (index, pair) in queuePairs.enumerated() {
            do { try pair.connect(to: remote[index], local: local[index], options: options) } catch {
                throw PerfError("connecting QP \(index) to the peer's \(remote[index]): \(error)")
            }
        }
    }

    /// UD: an address handle per peer QP (`ibv_create_ah`, from our GID at `gidIndex`)
    /// and the destination each of our QPs sends to — the peer's QP of the same index,
    /// with perftest's Q_Key (`queueKey`).
    func aim(at remote: [Endpoint], port: UInt8, gidIndex: Int) throws(PerfError) {
        for endpoint in remote.prefix(queuePairs.count) {
            do {
                let handle = try AddressHandle(protectionDomain: protectionDomain,
                                               addressVector: AddressVector(destinationGID: endpoint.gid, sourceGIDIndex: UInt8(gidIndex), port: port))
                addressHandles.append(handle)
                datagrams.append(DatagramDestination(addressHandle: handle, remoteQueuePairNumber: endpoint.queuePairNumber,
                                                     remoteQKey: Self.queueKey))
            } catch {
                throw PerfError("creating the address handle towards \(endpoint.gid): \(error)")
            }
        }
    }

    func close() {
        datagrams = []
        for handle in addressHandles { try? handle.close() }
        addressHandles = []
        for pair in queuePairs { try? pair.close() }
        try? completionQueue.close()
        try? completionChannel?.close()
        try? memory.close()
        try? protectionDomain.close()
    }
}
