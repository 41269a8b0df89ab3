import Testing
@testable import FabricMonitor

@Suite struct MonitorTests {
    struct ManualClock: MonitorClock {
        let time: MonitorTime
        func now() -> MonitorTime { time }
    }

    @Test func pollsAnalyseTheIntervalBetweenRecordedSamples() throws {
        var feed = SwitchQueueFeed()
        var samples: [CounterSnapshot] = []
        _ = feed.step(milliseconds: 0, pausedShare: 0, frames: 0); samples.append(feed.previous!)
        for _ in 0..<3 { _ = feed.step(milliseconds: 100, pausedShare: 1, frames: 100); samples.append(feed.previous!) }
        var monitor = Monitor(sources: [SnapshotFileSource(file: SnapshotFile(samples: samples))], clock: ManualClock(time: .zero))
        let first = try monitor.poll()
        #expect(first.intervals.isEmpty)
        #expect(try monitor.poll().stormEvents.isEmpty)
        #expect(try monitor.poll().stormEvents.map(\.kind) == [.stormDetected])
        let last = try monitor.poll()
        #expect(last.stormingQueues.count == 1)
        #expect(!monitor.hasMore)
    }
}
