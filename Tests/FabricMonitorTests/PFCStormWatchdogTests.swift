import Testing
@testable import FabricMonitor

/// Builds a switch port's counters over time: each step adds a pause duration (µs), pause
/// frames and transmitted packets, at a chosen poll interval.
struct SwitchQueueFeed {
    var time: Int64 = 0
    var pauseMicroseconds: UInt64 = 0
    var pauseFrames: UInt64 = 0
    var transmitted: UInt64 = 0
    var queueBytes: Double = 0
    var kind: PortKind = .switch
    var direction = "rx"
    var previous: CounterSnapshot?

    mutating func step(milliseconds: Int64, pausedShare: Double, frames: UInt64, transmitted sent: UInt64 = 0, queueBytes: Double = 4096) -> [PortInterval] {
        time += milliseconds
        pauseMicroseconds += UInt64(Double(milliseconds * 1000) * pausedShare)
        pauseFrames += frames
        transmitted += sent
        let other = direction == "rx" ? "tx" : "rx"
        let current = snapshot(time, [port("Ethernet8", kind: kind, node: "S1",
                                           ["\(direction)_prio3_pause_duration": pauseMicroseconds, "\(direction)_prio3_pause": pauseFrames,
                                            "\(other)_prio3_packets": transmitted],
                                           gauges: ["tx_prio3_queue_bytes": queueBytes])])
        defer { previous = current }
        guard let previous else { return [] }
        return PortInterval.between(previous, current)
    }
}

@Suite struct PFCStormWatchdogTests {
    let queue = PFCStormWatchdog.Queue(port: PortKey(node: "S1", device: "Ethernet8"), priority: 3, role: .switchQueue)

    @Test func detectionWaitsForTheWindowOfMeasuredTimeNotForPolls() {
        var watchdog = PFCStormWatchdog(configuration: .init(detectionTime: .milliseconds(200)))
        var feed = SwitchQueueFeed()
        _ = feed.step(milliseconds: 0, pausedShare: 0, frames: 0)
        #expect(watchdog.observe(feed.step(milliseconds: 100, pausedShare: 1, frames: 900)).isEmpty)     // 100 ms stormy
        let events = watchdog.observe(feed.step(milliseconds: 100, pausedShare: 1, frames: 900))         // 200 ms
        #expect(events.map(\.kind) == [.stormDetected])
        #expect(events.first?.queue == queue)
        #expect(events.first?.over == .milliseconds(200))
        #expect(events.first?.time == .milliseconds(200))
        #expect(watchdog.stormingQueues == [queue])
        // A slower poll reaches the same window in one interval.
        var slow = PFCStormWatchdog(configuration: .init(detectionTime: .milliseconds(200)))
        var slowFeed = SwitchQueueFeed()
        _ = slowFeed.step(milliseconds: 0, pausedShare: 0, frames: 0)
        #expect(slow.observe(slowFeed.step(milliseconds: 500, pausedShare: 1, frames: 4000)).map(\.kind) == [.stormDetected])
    }

    @Test func aBreakInTheStormRestartsDetection() {
        var watchdog = PFCStormWatchdog(configuration: .init(detectionTime: .milliseconds(300)))
        var feed = SwitchQueueFeed()
        _ = feed.step(milliseconds: 0, pausedShare: 0, frames: 0)
        #expect(watchdog.observe(feed.step(milliseconds: 200, pausedShare: 1, frames: 1)).isEmpty)
        #expect(watchdog.observe(feed.step(milliseconds: 100, pausedShare: 0.5, frames: 1)).isEmpty)      // half paused: not a storm
        #expect(watchdog.observe(feed.step(milliseconds: 200, pausedShare: 1, frames: 1)).isEmpty)
        #expect(watchdog.observe(feed.step(milliseconds: 100, pausedShare: 1, frames: 1)).map(\.kind) == [.stormDetected])
    }

    @Test func restorationAfterAClearWindowAndNotBefore() {
        var watchdog = PFCStormWatchdog(configuration: .init(detectionTime: .milliseconds(100), restorationTime: .milliseconds(300)))
        var feed = SwitchQueueFeed()
        _ = feed.step(milliseconds: 0, pausedShare: 0, frames: 0)
        #expect(watchdog.observe(feed.step(milliseconds: 100, pausedShare: 1, frames: 5)).map(\.kind) == [.stormDetected])
        #expect(watchdog.observe(feed.step(milliseconds: 200, pausedShare: 0, frames: 0, transmitted: 100)).isEmpty)
        #expect(watchdog.observe(feed.step(milliseconds: 50, pausedShare: 0.1, frames: 1, transmitted: 100)).isEmpty)   // one pause: clear window restarts
        #expect(watchdog.observe(feed.step(milliseconds: 200, pausedShare: 0, frames: 0, transmitted: 100)).isEmpty)
        let events = watchdog.observe(feed.step(milliseconds: 100, pausedShare: 0, frames: 0, transmitted: 100))
        #expect(events.map(\.kind) == [.stormRestored])
        #expect(events.first?.over == .milliseconds(300))
        #expect(watchdog.stormingQueues.isEmpty)
    }

    @Test func aPausedQueueThatStillTransmitsIsCongestionNotAStorm() {
        var watchdog = PFCStormWatchdog(configuration: .init(detectionTime: .milliseconds(100)))
        var feed = SwitchQueueFeed()
        _ = feed.step(milliseconds: 0, pausedShare: 0, frames: 0)
        for _ in 0..<5 { #expect(watchdog.observe(feed.step(milliseconds: 100, pausedShare: 1, frames: 50, transmitted: 10)).isEmpty) }
        // … nor is a paused queue with nothing waiting.
        for _ in 0..<5 { #expect(watchdog.observe(feed.step(milliseconds: 100, pausedShare: 1, frames: 50, queueBytes: 0)).isEmpty) }
    }

    @Test func framesOnlyCountersUseTheOlderRule() {
        var watchdog = PFCStormWatchdog(configuration: .init(detectionTime: .milliseconds(200)))
        func sample(_ milliseconds: Int64, frames: UInt64, sent: UInt64) -> CounterSnapshot {
            snapshot(milliseconds, [port("Ethernet0", kind: .switch, node: "S2", ["rx_prio3_pause": frames, "tx_prio3_packets": sent])])
        }
        #expect(watchdog.observe(PortInterval.between(sample(0, frames: 0, sent: 0), sample(100, frames: 10, sent: 0))).isEmpty)
        #expect(watchdog.observe(PortInterval.between(sample(100, frames: 10, sent: 0), sample(200, frames: 20, sent: 0))).map(\.kind) == [.stormDetected])
    }

    @Test func aNICThatKeepsSendingPausesIsCaught() {
        var watchdog = PFCStormWatchdog(configuration: .init(detectionTime: .milliseconds(100)))
        var feed = SwitchQueueFeed(kind: .ethernet, direction: "tx")
        _ = feed.step(milliseconds: 0, pausedShare: 0, frames: 0)
        let events = watchdog.observe(feed.step(milliseconds: 100, pausedShare: 1, frames: 800))
        #expect(events.map(\.kind) == [.stormDetected])
        #expect(events.first?.queue.role == .nicTransmitter)
        // A receiver NIC has nothing in its own egress queue: that must not veto the storm.
        var receiver = PFCStormWatchdog(configuration: .init(detectionTime: .milliseconds(100)))
        var receiverFeed = SwitchQueueFeed(kind: .ethernet, direction: "tx")
        _ = receiverFeed.step(milliseconds: 0, pausedShare: 0, frames: 0, queueBytes: 0)
        #expect(receiver.observe(receiverFeed.step(milliseconds: 100, pausedShare: 1, frames: 800, queueBytes: 0)).map(\.kind) == [.stormDetected])
        // The NIC's own storm-prevention counter raises an event at once.
        let before = port("eth0", kind: .ethernet, ["tx_pause_storm_error_events": 0])
        let after = port("eth0", kind: .ethernet, ["tx_pause_storm_error_events": 1])
        #expect(watchdog.observe(PortInterval.between(snapshot(0, [before]), snapshot(100, [after]))).map(\.kind) == [.nicStormCounter])
    }

    @Test func theActionHookRunsOnlyWhenAnActionIsAskedFor() {
        final class Calls { var events: [PFCStormWatchdog.Event] = [] }
        for action in PFCStormWatchdog.Action.allCases {
            let calls = Calls()
            var watchdog = PFCStormWatchdog(configuration: .init(detectionTime: .milliseconds(100), restorationTime: .milliseconds(100), action: action),
                                            actionHook: { calls.events.append($0) })
            var feed = SwitchQueueFeed()
            _ = feed.step(milliseconds: 0, pausedShare: 0, frames: 0)
            let detected = watchdog.observe(feed.step(milliseconds: 100, pausedShare: 1, frames: 9))
            let restored = watchdog.observe(feed.step(milliseconds: 100, pausedShare: 0, frames: 0))
            #expect(detected.count == 1 && restored.count == 1)
            #expect(calls.events.map(\.kind) == (action == .alert ? [] : [.stormDetected, .stormRestored]), "\(action)")
        }
    }

    @Test func aCounterResetMidStormNeitherCrashesNorRestores() {
        var watchdog = PFCStormWatchdog(configuration: .init(detectionTime: .milliseconds(100), restorationTime: .milliseconds(100)))
        var feed = SwitchQueueFeed()
        _ = feed.step(milliseconds: 0, pausedShare: 0, frames: 0)
        #expect(watchdog.observe(feed.step(milliseconds: 100, pausedShare: 1, frames: 9)).count == 1)
        let reset = snapshot(feed.time + 100, [port("Ethernet8", kind: .switch, node: "S1", ["rx_prio3_pause_duration": 0, "rx_prio3_pause": 0, "tx_prio3_packets": 0])])
        #expect(watchdog.observe(PortInterval.between(feed.previous!, reset)).isEmpty)
        #expect(watchdog.stormingQueues == [queue])
    }
}
