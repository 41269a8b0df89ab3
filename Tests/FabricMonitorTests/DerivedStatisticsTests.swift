import Testing
@testable import FabricMonitor

@Suite struct DerivedStatisticsTests {
    @Test func ratesPerSecondOverTheMeasuredInterval() throws {
        let intervals = PortInterval.between(snapshot(0, [port("mlx5_0", ["sent_pkts": 100])]),
                                             snapshot(250, [port("mlx5_0", ["sent_pkts": 600])]))
        let interval = try #require(intervals.first)
        #expect(interval.seconds == 0.25)
        #expect(interval.rate("sent_pkts") == 2000)
    }

    @Test func counterGoingBackwardsGivesNoRateNeverANegativeOrHugeOne() throws {
        let before = port("mlx5_0", ["sent_pkts": 1_000_000, "np_cnp_sent": 500, "rx_prio3_pause_duration": 900_000, "rx_prio3_pause": 10])
        let after = port("mlx5_0", ["sent_pkts": 12, "np_cnp_sent": 600, "rx_prio3_pause_duration": 3, "rx_prio3_pause": 1])   // device reset
        let interval = try #require(PortInterval.between(snapshot(0, [before]), snapshot(1000, [after])).first)
        #expect(interval.rate("sent_pkts") == nil)
        #expect(interval.rate("np_cnp_sent") == 100)
        #expect(interval.resetCounters == ["rx_prio3_pause", "rx_prio3_pause_duration", "sent_pkts"])
        #expect(interval.pause.isEmpty)
        for name in interval.deltas.keys { #expect(interval.rate(name)! >= 0 && interval.rate(name)! < 1e6) }
        var watchdog = PFCStormWatchdog()
        #expect(watchdog.observe([interval]).isEmpty)
    }

    @Test func timeThatDoesNotAdvanceGivesNoInterval() {
        #expect(PortInterval.between(snapshot(5, [port("a", ["x": 1])]), snapshot(5, [port("a", ["x": 2])])).isEmpty)
        #expect(PortInterval.between(snapshot(9, [port("a", ["x": 1])]), snapshot(5, [port("a", ["x": 2])])).isEmpty)
    }

    @Test func shareOfTimePausedPerPriorityAndDirection() throws {
        let before = port("eth0", kind: .ethernet, ["rx_prio3_pause": 0, "rx_prio3_pause_duration": 0, "tx_prio5_pause": 0,
                                                    "tx_prio5_pause_duration": 0, "rx_pause_ctrl_phy": 0, "rx_prio3_pause_transition": 0])
        let after = port("eth0", kind: .ethernet, ["rx_prio3_pause": 400, "rx_prio3_pause_duration": 25_000, "tx_prio5_pause": 9,
                                                   "tx_prio5_pause_duration": 200_000, "rx_pause_ctrl_phy": 3, "rx_prio3_pause_transition": 7])
        let interval = try #require(PortInterval.between(snapshot(0, [before]), snapshot(100, [after])).first)
        let rx3 = try #require(interval.pause.first { $0.direction == .receive && $0.priority == 3 })
        #expect(rx3.pausedShare == 0.25)
        #expect(rx3.framesPerSecond == 4000)
        #expect(rx3.transitions == 7)
        let tx5 = try #require(interval.pause.first { $0.direction == .transmit && $0.priority == 5 })
        #expect(tx5.pausedShare == 1)      // clamped: a duration counter ahead of the clock
        let link = try #require(interval.pause.first { $0.priority == nil })
        #expect(link.frames == 3 && link.pausedShare == nil)
    }

    @Test func dcqcnHealthFromMlx5AndOptionalCounters() throws {
        let before = port("mlx5_0", ["np_ecn_marked_roce_packets": 0, "np_cnp_sent": 0, "rp_cnp_handled": 0, "rp_cnp_ignored": 0, "cc_rx_ce_pkts": 0])
        let after = port("mlx5_0", ["np_ecn_marked_roce_packets": 1000, "np_cnp_sent": 200, "rp_cnp_handled": 300, "rp_cnp_ignored": 100, "cc_rx_ce_pkts": 500])
        let health = try #require(PortInterval.between(snapshot(0, [before]), snapshot(1000, [after])).first).dcqcn
        #expect(health.ecnMarkedPerSecond == 1500)
        #expect(health.cnpSentPerSecond == 200)
        #expect(health.cnpHandledPerSecond == 300)
        #expect(health.cnpIgnoredPerSecond == 100)
        #expect(health.ignoredShare == 0.25)
        let rxe = try #require(PortInterval.between(snapshot(0, [port("rxe0", ["sent_pkts": 0])]), snapshot(1000, [port("rxe0", ["sent_pkts": 9])])).first)
        #expect(rxe.dcqcn == DCQCNHealth())      // rxe has no DCQCN counters: nil, not 0
    }

    @Test func transportErrorRatesFromRxeAndMlx5Names() throws {
        let before = port("rxe0", ["rcvd_seq_err": 0, "out_of_seq_request": 0, "completer_retry_err": 0, "duplicate_request": 0])
        let after = port("rxe0", ["rcvd_seq_err": 4, "out_of_seq_request": 6, "completer_retry_err": 2, "duplicate_request": 8])
        let health = try #require(PortInterval.between(snapshot(0, [before]), snapshot(2000, [after])).first).transport
        #expect(health.sequenceErrorsPerSecond == 5)
        #expect(health.timeoutsPerSecond == 1)
        #expect(health.retransmissionsPerSecond == 4)
    }

    @Test(arguments: [
        ("rx_prio3_pause", PauseCounterName(direction: .receive, priority: 3, measure: .frames)),
        ("tx_prio7_pause_duration", PauseCounterName(direction: .transmit, priority: 7, measure: .durationMicroseconds)),
        ("rx_prio0_pause_transition ", PauseCounterName(direction: .receive, priority: 0, measure: .transitions)),
        ("rx_pause_ctrl_phy", PauseCounterName(direction: .receive, priority: nil, measure: .frames)),
        ("tx_pause_storm_error_events", PauseCounterName(direction: .transmit, priority: nil, measure: .stormErrors)),
    ])
    func pauseCounterNamesParse(name: String, expected: PauseCounterName) {
        #expect(PauseCounterName(parsing: name) == expected)
        #expect(PauseCounterName(parsing: name)?.name == name.trimmingWhitespace())
    }

    @Test(arguments: ["rx_prio8_pause", "rx_prio33_pause", "rx_prio3_packets", "xx_prio3_pause", "rx_priox_pause", "rx_prio3_pause_extra"])
    func otherNamesAreNotPauseCounters(name: String) {
        #expect(PauseCounterName(parsing: name) == nil)
    }
}
