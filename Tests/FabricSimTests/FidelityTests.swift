import Congestion
import FabricSim
import Testing

// Issue 17: with the mlx5Like preset a 16:1 incast used its 40 Gb/s bottleneck 48 % over
// 20 ms, every sender near 0 for the first 8 ms. Two causes, each checked here: every cut
// dragged the target rate down with it, so fast recovery had nothing to recover to; and the
// pacer held a packet for the gap of the rate at which it was scheduled (8 ms for 1000 B at
// R_min = 1 Mb/s) even after the rate had come back.
@Suite struct FidelityTests {
    private let incast: FabricScenario = {
        var scenario = FabricScenario.incast(senderCount: 16)
        scenario.dcqcn = .mlx5Like
        return scenario
    }()

    @Test("the mlx5Like 16:1 incast keeps its bottleneck at least 80 % busy over 20 ms")
    func mlx5LikeIncastUsesTheBottleneck() throws {
        let (_, summary) = simulate(incast)
        #expect(try #require(summary.bottleneck).utilization >= 0.8)
    }

    @Test("a rate rise applies to the packet already waiting: no flow at ≥ 1 Gb/s goes 1 ms with nothing delivered")
    func pacerAppliesARateRiseToTheWaitingPacket() {
        let (result, _) = simulate(incast)
        let series = result.timeSeries
        for flow in result.flows.indices {
            var run = 0
            var longest = 0
            for sample in series.times.indices {
                let stalled = series.flowRateBitsPerSecond[flow][sample] >= 1e9 && series.flowThroughputBitsPerSecond[flow][sample] == 0
                run = stalled ? run + 1 : 0
                longest = max(longest, run)
            }
            #expect(longest < 100, "\(result.flows[flow].name): \(longest) samples of 10 µs at R_C ≥ 1 Gb/s with nothing delivered")
        }
    }

    /// The victim V shares S1→S2 with A1 and A2, whose rates R's congestion sets; only the
    /// S1→S2 queue limits V. In the HPCC ns-3 simulator V's timer alone takes it to hyper
    /// increase (+50 Mb/s per 300 µs), so V keeps pushing that queue into the marking band:
    /// p99 125–144 KB from 5 ms on over RngRun 1–6. Under the paper's stage rule with a byte
    /// counter that never fires V crept up by R_AI = 5 Mb/s per 300 µs and the p99 was 32 KB
    /// (seed 1), which also spared A1 and A2 their marks there.
    /// 16 senders at line rate overshoot until marks come back. In the HPCC ns-3 simulator every
    /// marked packet's ACK is a CNP and α rises by g in each 1 µs that saw one, cuts at most
    /// every 4 µs: queue p99 over the run 2.6 MB, max 3.1 MB. With a CNP at most every 4 µs and
    /// α raised per CNP, α grew up to 4× slower and the p99 was 3.9 MB (seed 1).
    @Test("the 16:1 incast's start overshoots no more than in the HPCC ns-3 simulator")
    func incastStartOvershootsAsInNS3() throws {
        let (result, _) = simulate(.incast(senderCount: 16))
        let queue = result.queueSamples(of: "S1->R", from: .zero).sorted()
        #expect(queue[queue.count * 99 / 100] <= 3_200_000)
    }

    @Test("the victim probes its shared link into the marking band, as in the HPCC ns-3 simulator")
    func victimProbesTheSharedLinkByHyperIncrease() {
        let scenario = FabricScenario.victimFlow()
        let (result, _) = simulate(scenario)
        let settled = result.queueSamples(of: "S1->S2", from: .milliseconds(5)).sorted()
        let p99 = settled[settled.count * 99 / 100]
        #expect(p99 >= scenario.marking.kMinBytes)
        #expect(p99 <= scenario.marking.kMaxBytes)
    }
}
