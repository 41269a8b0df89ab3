import Congestion
import FabricSim
import Testing

/// One sender, one switch, one receiver: no congestion, so the numbers are exact.
private func singleFlow(rate: Int64 = 10_000_000_000, duration: Nanoseconds = .microseconds(100), sizeBytes: Int? = nil) -> FabricScenario {
    var scenario = FabricScenario.incast(
        senderCount: 1, linkRateBitsPerSecond: rate, duration: duration,
        settings: .init(sampleInterval: .microseconds(10), fairnessWindow: .microseconds(10))
    )
    scenario.flows[0].sizeBytes = sizeBytes
    return scenario
}

@Suite struct SimulatorMechanicsTests {
    @Test func anUncongestedFlowRunsAtLineRateWithStoreAndForwardLatency() {
        // 1000 B at 10 Gb/s is 800 ns per hop; two hops of 1 µs propagation each. The first
        // packet arrives at 2 × 800 + 2 × 1000 = 3600 ns, then one every 800 ns.
        let (result, summary) = simulate(singleFlow())
        let expectedPackets = (100_000 - 3_600) / 800 + 1
        #expect(result.flows[0].bytesReceived == Int64(expectedPackets * 1000))
        #expect(result.flows[0].cnpsReceived == 0)
        #expect(summary.totalPauseFrames == 0)
        #expect(result.port(named: "S1->R").egressQueue.maxBytes <= 1000)
    }

    @Test func aSizedFlowCompletesAtTheExpectedInstant() throws {
        // 10 packets: the last leaves the host at 9 × 800 ns and arrives 3600 ns later.
        let (result, _) = simulate(singleFlow(sizeBytes: 10_000))
        #expect(result.flows[0].bytesReceived == 10_000)
        #expect(try #require(result.flows[0].completion) == .nanoseconds(9 * 800 + 3_600))
    }

    @Test func pfcIsLosslessAndHoldsTheIngressNearXOFF() {
        var scenario = withoutDCQCN(.incast(senderCount: 4, linkRateBitsPerSecond: 10_000_000_000, duration: .milliseconds(4)))
        for index in scenario.flows.indices { scenario.flows[index].stop = .milliseconds(2) }
        let (result, summary) = simulate(scenario)
        // Everything sent arrives once the senders stop and the queues drain.
        for flow in result.flows { #expect(flow.bytesSent == flow.bytesReceived, "\(flow.name)") }
        // XOFF is reached, and overshoot is bounded by what is in flight during a PAUSE's
        // trip: one round trip of 2 µs at 10 Gb/s plus a packet on each side.
        let headroom = 2_500 + 2 * 1_000
        for ingress in summary.ingress {
            #expect(ingress.maxBytes >= scenario.pfc.xoffBytes)
            #expect(ingress.maxBytes <= scenario.pfc.xoffBytes + headroom)
        }
        #expect(summary.totalPauseFrames > 0)
        #expect(result.timeSeries.paused.allSatisfy { $0.last == false })
    }

    @Test func theNotificationPointSendsAtMostOneCNPPerIntervalPerFlow() {
        var scenario = FabricScenario.incast(senderCount: 4, duration: .milliseconds(5))
        scenario.dcqcn.minimumCNPInterval = .microseconds(4)  // the default preset's N is 0
        let (result, _) = simulate(scenario)
        let interval = scenario.dcqcn.minimumCNPInterval.rawValue
        for flow in result.flows {
            #expect(flow.cnpsSent > 0)
            #expect(flow.cnpsSent <= Int(scenario.duration.rawValue / interval) + 1)
            #expect(flow.cnpsReceived == flow.cnpsSent)
            #expect(flow.reactionPoint.cnpsHandled == flow.cnpsReceived)
            #expect(flow.markedPacketsReceived >= flow.cnpsSent)
        }
    }

    @Test func withNoIntervalEveryMarkedPacketEarnsACNP() {
        let scenario = FabricScenario.incast(senderCount: 4, duration: .milliseconds(5))
        #expect(scenario.dcqcn.minimumCNPInterval == .zero)
        let (result, _) = simulate(scenario)
        for flow in result.flows {
            #expect(flow.cnpsSent > 0)
            #expect(flow.cnpsSent == flow.markedPacketsReceived)
            #expect(flow.reactionPoint.cnpsHandled == flow.cnpsSent)
        }
    }

    @Test func runsAreDeterministicForASeed() {
        let scenario = FabricScenario.incast(senderCount: 4, duration: .milliseconds(3))
        let (first, _) = simulate(scenario)
        let (second, _) = simulate(scenario)
        #expect(first.eventsProcessed == second.eventsProcessed)
        #expect(first.flows.map(\.bytesReceived) == second.flows.map(\.bytesReceived))
        #expect(first.timeSeries.egressQueueBytes == second.timeSeries.egressQueueBytes)

        var reseeded = scenario
        reseeded.seed = 2
        let (third, _) = simulate(reseeded)
        #expect(first.flows.map(\.bytesReceived) != third.flows.map(\.bytesReceived))
    }

    @Test func samplesCoverTheRunAtTheStatedInterval() {
        let (result, summary) = simulate(singleFlow(duration: .microseconds(95)))
        #expect(result.timeSeries.times.first == .microseconds(10))
        #expect(result.timeSeries.times.last == .microseconds(95))
        #expect(result.timeSeries.times.count == 10)
        #expect(summary.jainIndexOverTime.count == 10)
    }
}
