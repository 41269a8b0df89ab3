import Foundation
import Congestion
import FabricSim
import Testing

// The qualitative results of Zhu et al. (SIGCOMM 2015) that the simulator must reproduce,
// run on the built-in scenarios at full scale (40 Gb/s links, 1 µs per hop, hpccMellanoxModel DCQCN,
// marking 100/400 KB Pmax 0.2, PFC XOFF 500 KB per ingress port), seed 1. Each run is a few
// hundred thousand events, well under a second in a debug build.

@Suite struct FairnessTests {
    /// Jain's index over 500 µs windows must reach 0.95 within 15 ms of the start and stay
    /// there until the end of the 20 ms run, and the closing 2 ms must be fair too.
    @Test("N:1 incast reaches Jain ≥ 0.95 within 15 ms and stays there", arguments: [2, 4, 8, 16])
    func incastConverges(senders: Int) throws {
        let (result, summary) = simulate(.incast(senderCount: senders))
        let convergence = try #require(summary.convergenceTime, "Jain's index never stayed ≥ 0.95")
        #expect(convergence <= .milliseconds(15))
        #expect(try #require(summary.jainIndexAtEnd) >= 0.95)
        // 16 senders starting together at line rate can fill an ingress to XOFF before the
        // first marks come back (the HPCC ns-3 simulator pauses one); after that, no more PAUSE.
        if senders <= 8 { #expect(summary.totalPauseFrames == 0) }
        #expect(!result.anyTransmitterPaused(after: .milliseconds(2)))
    }

    @Test("a flow joining after 5 ms gets a fair share within 15 ms")
    func staggeredStartConverges() throws {
        let (result, summary) = simulate(.staggeredStart())
        let convergence = try #require(summary.convergenceTime)
        #expect(convergence <= .milliseconds(15))
        #expect(try #require(summary.jainIndexAtEnd) >= 0.95)
        // Alone, the first flow had the link: 5 ms at 40 Gb/s is 25 MB, minus the first RTT.
        let alone = result.timeSeries.times.indices.filter { result.timeSeries.times[$0] <= .milliseconds(5) }
        let bitsAlone = alone.reduce(0.0) { $0 + result.timeSeries.flowThroughputBitsPerSecond[0][$1] * 10e-6 }
        #expect(bitsAlone / 5e-3 > 0.95 * 40e9)
    }
}

@Suite struct QueueTests {
    @Test("with DCQCN the incast queue settles in Kmin…Kmax after the start; PFC alone drives it to XOFF and pauses")
    func dcqcnKeepsTheQueueBelowThePFCThreshold() throws {
        let scenario = FabricScenario.incast(senderCount: 16)
        let marking = scenario.marking
        let xoff = scenario.pfc.xoffBytes

        // The line-rate start overshoots (16 × 40 Gb/s for the few µs until marks return, in
        // the HPCC ns-3 simulator as here); from 5 ms on both hold the queue in the band:
        // p50 ≈ 95 KB, p99 ≈ 305 KB (ns-3 104 KB, 311 KB), no PAUSE after 2 ms.
        let (dcqcnResult, dcqcn) = simulate(scenario)
        let queue = try #require(dcqcn.bottleneck)
        #expect(queue.port == "S1->R")
        let settled = dcqcnResult.queueSamples(of: "S1->R", from: .milliseconds(5)).sorted()
        #expect(settled[settled.count / 2] <= marking.kMinBytes * 3 / 2)
        #expect(settled[settled.count * 99 / 100] <= marking.kMaxBytes)
        #expect(!dcqcnResult.anyTransmitterPaused(after: .milliseconds(2)))
        #expect(dcqcn.totalPauseFrames <= 4)

        let (_, pfcOnly) = simulate(withoutDCQCN(scenario))
        let flooded = try #require(pfcOnly.bottleneck)
        #expect(flooded.p50Bytes > 10 * marking.kMaxBytes)
        #expect(pfcOnly.ingress.allSatisfy { $0.maxBytes >= xoff })
        #expect(pfcOnly.pauses.count == 16)
        #expect(pfcOnly.pauses.allSatisfy { $0.fractionOfRun > 0.5 })
    }
}

@Suite struct VictimFlowTests {
    @Test("the victim keeps ≥ 80% of its fair share with DCQCN and falls below 50% with PFC alone")
    func dcqcnProtectsTheVictim() throws {
        let scenario = FabricScenario.victimFlow()

        let (dcqcnResult, dcqcn) = simulate(scenario)
        let protected = dcqcn.flow(named: "victim V->W")
        #expect(try #require(protected.fairShareBitsPerSecond) == 20e9)
        #expect(try #require(protected.fractionOfFairShare) >= 0.8)
        #expect(dcqcnResult.port(named: "S1->S2").pausedTime == .zero)

        let (pfcResult, pfcOnly) = simulate(withoutDCQCN(scenario))
        let victim = pfcOnly.flow(named: "victim V->W")
        #expect(try #require(victim.fractionOfFairShare) < 0.5)
        // The pauses spread: R's congestion at S2 pauses S1->S2, whose backlog at S1 pauses V.
        #expect(pfcResult.port(named: "S1->S2").pausedTime > .milliseconds(5))
        #expect(pfcResult.port(named: "V->S1").pausedTime > .milliseconds(5))
        #expect(pfcResult.port(named: "S2->W").egressQueue.maxBytes <= 1000)
    }
}

@Suite struct CyclicBufferDependencyTests {
    @Test("PFC alone deadlocks the three-switch ring with cyclic routes; DCQCN keeps it moving")
    func ringDeadlocksWithoutDCQCN() throws {
        let data = try Data(contentsOf: scenariosDirectory.appendingPathComponent("ring-3switches-cyclic.json"))
        let scenario = try ScenarioLoader.load(json: data)

        let (pfcResult, pfcOnly) = simulate(withoutDCQCN(scenario))
        for flow in pfcOnly.flows { #expect(flow.endThroughputBitsPerSecond == 0, "\(flow.name)") }
        for ring in ["S1->S2", "S2->S3", "S3->S1"] {
            let port = pfcResult.port(named: ring)
            #expect(pfcResult.timeSeries.paused[pfcResult.ports.firstIndex { $0.name == ring }!].last == true)
            #expect(port.pausedTime > .milliseconds(5))
        }

        let (_, dcqcn) = simulate(scenario)
        for flow in dcqcn.flows { #expect(try #require(flow.endThroughputBitsPerSecond) > 5e9, "\(flow.name)") }
        #expect(dcqcn.totalPauseFrames == 0)
    }
}
