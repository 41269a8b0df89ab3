import Testing
@testable import SoftRoCE

/// Completion channels and the queues attached to them: what destroying them leaves behind.
@Suite("SoftRoCE completion channels")
struct CompletionChannelTests {
    /// A queue whose last event nobody waited for sits in its channel's pending list, and holds
    /// the channel: destroying both must break that cycle, or both leak (found under
    /// LeakSanitizer in the endpoint suites: 10 queues and 5 channels per run).
    @Test func anEventNobodyWaitedForLeavesNothingBehind() throws {
        weak var leftQueue: SoftCompletionQueue?
        weak var leftChannel: SoftCompletionChannel?
        let network = InMemoryNetwork()
        let device = SoftDevice(wire: network.attach(WireEndpoint(.ipv4(0x0A00_0001), port: 4791)),
                                configuration: SoftDeviceConfiguration(address: "10.0.0.1"), clock: .manual(ManualClock()))
        defer { device.close() }
        do {
            let channel = try device.createCompletionChannel()
            let queue = device.createCompletionQueue(capacity: 8, channel: channel)
            device.locked { channel.signal(queue) }   // an armed queue's completion: an event pending
            #expect(channel.pending.count == 1)
            device.destroyCompletionQueue(queue)
            device.destroyCompletionChannel(channel)
            leftQueue = queue
            leftChannel = channel
        }
        #expect(leftQueue == nil, "the queue was freed")
        #expect(leftChannel == nil, "the channel was freed")
    }
}
