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

    /// rxe's sent_pkts and the IB port counter count the same packets: the table shows one
    /// of them (it added them up, doubling the rate), while per-priority counters add up.
    @Test func theTableCountsAPacketOnceWhateverItsNames() throws {
        let samples = [
            snapshot(0, [port("rxe0", ["sent_pkts": 0, "port_xmit_packets": 0, "rcvd_pkts": 0]),
                         port("eth0", kind: .ethernet, ["tx_prio0_packets": 0, "tx_prio3_packets": 0])]),
            snapshot(1000, [port("rxe0", ["sent_pkts": 1000, "port_xmit_packets": 1000, "rcvd_pkts": 700]),
                            port("eth0", kind: .ethernet, ["tx_prio0_packets": 200, "tx_prio3_packets": 300])]),
        ]
        var monitor = Monitor(sources: [SnapshotFileSource(file: SnapshotFile(samples: samples))], clock: ManualClock(time: .zero))
        _ = try monitor.poll()
        let table = ReportTable.render(try monitor.poll())
        let rows = table.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        let rxe = try #require(rows.first { $0.first == "h/rxe0" })
        let eth = try #require(rows.first { $0.first == "h/eth0" })
        #expect(rxe[2] == "1000" && rxe[3] == "700", "\(rxe)")
        #expect(eth[2] == "500", "\(eth)")
    }
}
