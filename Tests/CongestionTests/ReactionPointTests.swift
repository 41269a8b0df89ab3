import Congestion
import Testing

/// Parameters with round numbers so every expectation below can be checked by hand.
private func handParameters(
    initialAlpha: Double = 1,
    alphaGain: Double = 1.0 / 16,
    timerMicroseconds: Int64 = 100,
    byteCounterBytes: Int = 1_000_000_000,
    fastRecoveryThreshold: Int = 5,
    additiveGbps: Double = 1,
    hyperGbps: Double = 2,
    minimumGbps: Double = 0.1
) -> DCQCNParameters {
    DCQCNParameters(
        alphaGain: alphaGain,
        initialAlpha: initialAlpha,
        alphaUpdatePeriod: .microseconds(55),
        rateIncreaseTimer: .microseconds(timerMicroseconds),
        byteCounterBytes: byteCounterBytes,
        fastRecoveryThreshold: fastRecoveryThreshold,
        additiveIncreaseBitsPerSecond: additiveGbps * 1e9,
        hyperIncreaseBitsPerSecond: hyperGbps * 1e9,
        minimumRateBitsPerSecond: minimumGbps * 1e9,
        minimumCNPInterval: .microseconds(50)
    )
}

private let lineRate = 40e9

@Suite struct ReactionPointCNPTests {
    @Test func startsUnlimitedAtLineRateWithNoTimer() {
        var rp = ReactionPoint(parameters: handParameters(initialAlpha: 0.5), lineRateBitsPerSecond: lineRate)
        #expect(rp.currentRateBitsPerSecond == 40e9)
        #expect(rp.targetRateBitsPerSecond == 40e9)
        #expect(!rp.isRateLimited)
        #expect(rp.nextTimerExpiry == nil)
        rp.advanceTimers(to: .milliseconds(10))
        rp.recordBytesSent(5_000_000_000, at: .milliseconds(10))
        #expect(rp.currentRateBitsPerSecond == 40e9)
        #expect(rp.byteCounterStage == 0 && rp.timerStage == 0)
        #expect(rp.alpha(at: .milliseconds(10)) == 0.5)
    }

    @Test func firstCNPUpdatesAlphaThenCutsWithTheNewAlpha() {
        // α = 15/16 · 0.5 + 1/16 = 0.53125; R_C = 40 · (1 − 0.265625) = 29.375 Gb/s.
        var rp = ReactionPoint(parameters: handParameters(initialAlpha: 0.5), lineRateBitsPerSecond: lineRate)
        rp.receiveCNP(at: .microseconds(7))
        #expect(rp.alpha(at: .microseconds(7)) == 0.53125)
        #expect(rp.targetRateBitsPerSecond == 40e9)
        #expect(rp.currentRateBitsPerSecond == 29.375e9)
        #expect(rp.nextTimerExpiry == .microseconds(107))
        #expect(rp.counters.cnpsHandled == 1)
    }

    @Test func secondCNPClampsTargetToCurrentAndCutsAgain() {
        // α = 15/16 · 0.53125 + 1/16 = 0.560546875; R_T = 29.375; R_C = 29.375 · 0.7197265625.
        var rp = ReactionPoint(parameters: handParameters(initialAlpha: 0.5), lineRateBitsPerSecond: lineRate)
        rp.receiveCNP(at: .microseconds(7))
        rp.receiveCNP(at: .microseconds(7))
        #expect(rp.alpha(at: .microseconds(7)) == 0.560546875)
        #expect(rp.targetRateBitsPerSecond == 29.375e9)
        #expect(rp.currentRateBitsPerSecond == 21.1419677734375e9)
    }

    @Test func cutNeverGoesBelowMinimumRate() {
        // α = 1 halves 40 → 20, but R_min is 25 Gb/s.
        var rp = ReactionPoint(parameters: handParameters(minimumGbps: 25), lineRateBitsPerSecond: lineRate)
        rp.receiveCNP(at: .zero)
        #expect(rp.currentRateBitsPerSecond == 25e9)
        rp.receiveCNP(at: .zero)
        #expect(rp.currentRateBitsPerSecond == 25e9)
    }

    @Test func alphaDecaysOncePerWholePeriodWithoutCNP() {
        // K = 55 µs, g = 1/16, α after the CNP = 1.
        var rp = ReactionPoint(parameters: handParameters(), lineRateBitsPerSecond: lineRate)
        rp.receiveCNP(at: .microseconds(100))
        #expect(rp.alpha(at: .microseconds(154)) == 1)
        #expect(rp.alpha(at: .microseconds(155)) == 15.0 / 16)
        #expect(rp.alpha(at: .microseconds(209)) == 15.0 / 16)
        #expect(rp.alpha(at: .microseconds(210)) == 225.0 / 256)
        // A CNP after three quiet periods: α = 15/16 · (15/16)³ + 1/16.
        rp.receiveCNP(at: .microseconds(270))
        let decayed = 3375.0 / 4096
        #expect(rp.alpha(at: .microseconds(270)) == 15.0 / 16 * decayed + 1.0 / 16)
        // The decay restarts from the new CNP.
        #expect(rp.alpha(at: .microseconds(324)) == rp.alpha(at: .microseconds(270)))
    }

    @Test func cnpResetsTimerByteCounterAndStages() {
        var rp = ReactionPoint(
            parameters: handParameters(byteCounterBytes: 1_000), lineRateBitsPerSecond: lineRate
        )
        rp.receiveCNP(at: .zero)
        rp.advanceTimers(to: .microseconds(250))
        rp.recordBytesSent(2_400, at: .microseconds(250))
        #expect(rp.timerStage == 2)
        #expect(rp.byteCounterStage == 2)
        #expect(rp.byteCounterRemainingBytes == 600)
        rp.receiveCNP(at: .microseconds(260))
        #expect(rp.timerStage == 0)
        #expect(rp.byteCounterStage == 0)
        #expect(rp.byteCounterRemainingBytes == 1_000)
        #expect(rp.nextTimerExpiry == .microseconds(360))
    }

    @Test func timerExpiryAtTheCNPInstantIsAppliedFirst() {
        var rp = ReactionPoint(parameters: handParameters(), lineRateBitsPerSecond: lineRate)
        rp.receiveCNP(at: .zero)  // R_C 20, R_T 40
        rp.receiveCNP(at: .microseconds(100))
        // The timer at 100 µs raised R_C to 30 first; the CNP then set R_T = 30 and cut it.
        #expect(rp.targetRateBitsPerSecond == 30e9)
        #expect(rp.counters.fastRecoveryEvents == 1)
    }
}

@Suite struct ReactionPointIncreaseTests {
    /// Two CNPs with α = 1 leave R_T = 20 and R_C = 10 Gb/s, below line rate.
    private func throttled(_ parameters: DCQCNParameters) -> ReactionPoint {
        var rp = ReactionPoint(parameters: parameters, lineRateBitsPerSecond: lineRate)
        rp.receiveCNP(at: .zero)
        rp.receiveCNP(at: .zero)
        return rp
    }

    @Test func timerEventsRunFastRecoveryThenAdditiveIncrease() {
        var rp = throttled(handParameters())
        #expect(rp.targetRateBitsPerSecond == 20e9 && rp.currentRateBitsPerSecond == 10e9)
        // Stages 1…4 < F = 5: fast recovery halves the distance to R_T = 20.
        let fastRecovery: [Double] = [15, 17.5, 18.75, 19.375]
        for (index, expected) in fastRecovery.enumerated() {
            rp.advanceTimers(to: .microseconds(Int64(index + 1) * 100))
            #expect(rp.timerStage == index + 1)
            #expect(rp.currentRateBitsPerSecond == expected * 1e9)
            #expect(rp.targetRateBitsPerSecond == 20e9)
        }
        // Stage 5 ≥ F, byte stage 0 < F: additive, R_T = 21, R_C = (21 + 19.375)/2.
        rp.advanceTimers(to: .microseconds(500))
        #expect(rp.targetRateBitsPerSecond == 21e9)
        #expect(rp.currentRateBitsPerSecond == 20.1875e9)
        #expect(rp.counters.fastRecoveryEvents == 4)
        #expect(rp.counters.additiveIncreaseEvents == 1)
    }

    @Test func severalExpiriesInOneAdvanceAreEachApplied() {
        var rp = throttled(handParameters())
        rp.advanceTimers(to: .microseconds(399))
        #expect(rp.timerStage == 3)
        #expect(rp.currentRateBitsPerSecond == 18.75e9)
        #expect(rp.nextTimerExpiry == .microseconds(400))
    }

    @Test func byteCounterEventsCarryOverExtraBytes() {
        var rp = throttled(handParameters(byteCounterBytes: 1_000))
        rp.recordBytesSent(999, at: .microseconds(1))
        #expect(rp.byteCounterStage == 0)
        rp.recordBytesSent(1, at: .microseconds(1))
        #expect(rp.byteCounterStage == 1)
        #expect(rp.currentRateBitsPerSecond == 15e9)
        // 2 500 B more: two events, 500 B already counted toward the next.
        rp.recordBytesSent(2_500, at: .microseconds(2))
        #expect(rp.byteCounterStage == 3)
        #expect(rp.byteCounterRemainingBytes == 500)
        #expect(rp.currentRateBitsPerSecond == 18.75e9)
        #expect(rp.timerStage == 0)
    }

    @Test func hyperIncreaseWhenBothStagesReachThreshold() {
        // F = 1: the first timer event is additive (timer 1, bytes 0); each later event with
        // both stages ≥ 1 adds i · R_HAI with i = min(stages) − F + 1.
        var rp = throttled(handParameters(byteCounterBytes: 1_000, fastRecoveryThreshold: 1))
        rp.advanceTimers(to: .microseconds(100))
        #expect(rp.targetRateBitsPerSecond == 21e9)  // additive: 20 + 1
        #expect(rp.currentRateBitsPerSecond == 15.5e9)  // (21 + 10)/2
        rp.recordBytesSent(1_000, at: .microseconds(101))  // stages (1, 1): i = 1
        #expect(rp.targetRateBitsPerSecond == 23e9)
        #expect(rp.currentRateBitsPerSecond == 19.25e9)
        rp.recordBytesSent(1_000, at: .microseconds(102))  // stages (1, 2): i = 1
        #expect(rp.targetRateBitsPerSecond == 25e9)
        rp.advanceTimers(to: .microseconds(200))  // stages (2, 2): i = 2
        #expect(rp.targetRateBitsPerSecond == 29e9)
        #expect(rp.counters.hyperIncreaseEvents == 3)
        #expect(rp.counters.additiveIncreaseEvents == 1)
    }

    @Test func currentAndTargetRatesNeverExceedLineRate() {
        var rp = throttled(handParameters(byteCounterBytes: 1_000, fastRecoveryThreshold: 1, hyperGbps: 10))
        for step in 1...200 {
            rp.recordBytesSent(1_000, at: .microseconds(Int64(step) * 10))
            #expect(rp.currentRateBitsPerSecond <= lineRate)
            #expect(rp.targetRateBitsPerSecond <= lineRate)
        }
        #expect(rp.targetRateBitsPerSecond == lineRate)
        #expect(abs(rp.currentRateBitsPerSecond - lineRate) < 1)
        // The timer keeps running at line rate; the next CNP cuts from there.
        #expect(rp.isRateLimited)
    }
}

/// HPCC's Mellanox model (`RdmaHw::RateIncEventMlx`) counts only timer events, and its
/// timer stage alone reaches hyper increase; the paper's rule needs the byte counter's stage
/// too, so with a byte counter that never fires a flow stays in additive increase for good.
@Suite struct RateIncreaseStagesTests {
    @Test func timerOnlyStagesRunFastRecoveryAdditiveThenConstantHyperIncrease() {
        var parameters = handParameters(byteCounterBytes: 1_000, fastRecoveryThreshold: 2)
        parameters.rateIncreaseStages = .timerOnly
        var rp = ReactionPoint(parameters: parameters, lineRateBitsPerSecond: lineRate)
        rp.receiveCNP(at: .zero)
        rp.receiveCNP(at: .zero)  // α = 1: R_T 20, R_C 10 Gb/s
        rp.recordBytesSent(5_000, at: .microseconds(1))
        #expect(rp.byteCounterStage == 0 && rp.currentRateBitsPerSecond == 10e9)
        // The stage before each event: 0, 1 < F = 2 fast recovery; 2 = F additive (+1);
        // 3, 4 > F hyper, +R_HAI = 2 each time (not i·R_HAI).
        let expected: [(target: Double, current: Double)] = [(20, 15), (20, 17.5), (21, 19.25), (23, 21.125), (25, 23.0625)]
        for (index, rates) in expected.enumerated() {
            rp.advanceTimers(to: .microseconds(Int64(index + 1) * 100))
            #expect(rp.targetRateBitsPerSecond == rates.target * 1e9, "event \(index + 1)")
            #expect(rp.currentRateBitsPerSecond == rates.current * 1e9, "event \(index + 1)")
        }
        #expect(rp.counters.fastRecoveryEvents == 2)
        #expect(rp.counters.additiveIncreaseEvents == 1)
        #expect(rp.counters.hyperIncreaseEvents == 2)
    }

    @Test func hpccMellanoxModelReachesHyperIncreaseFromTheTimerAlone() {
        var rp = ReactionPoint(parameters: .hpccMellanoxModel, lineRateBitsPerSecond: lineRate)
        rp.receiveCNP(at: .zero)
        rp.advanceTimers(to: .microseconds(304))  // the cut (at 4 µs), then fast recovery
        rp.receiveCNP(at: .microseconds(310))
        rp.advanceTimers(to: .microseconds(312))  // the cut after a timer increase: R_T ← R_C
        let target = rp.targetRateBitsPerSecond
        #expect(target < 31e9)
        // T = 300 µs, F = 1: fast recovery, additive (+5 Mb/s), then hyper (+50 Mb/s) per T,
        // whatever the bytes sent.
        rp.recordBytesSent(100_000_000, at: .microseconds(320))
        rp.advanceTimers(to: .microseconds(1512))
        #expect(abs(rp.targetRateBitsPerSecond - (target + 5e6 + 2 * 50e6)) < 1)
        #expect(rp.counters.fastRecoveryEvents == 2)
        #expect(rp.counters.additiveIncreaseEvents == 1)
        #expect(rp.counters.hyperIncreaseEvents == 2)
    }
}

/// HPCC's timing (`rateDecreasePeriod` set): a CNP raises flags; α moves once per period K that
/// saw one, the rate is cut at most once per decrease period on a grid from the first CNP.
@Suite struct PeriodicCNPReactionTests {
    private func periodic() -> DCQCNParameters {
        var parameters = handParameters(alphaGain: 0.5)
        parameters.alphaUpdatePeriod = .microseconds(1)
        parameters.rateDecreasePeriod = .microseconds(4)
        return parameters
    }

    @Test func cnpsOfOnePeriodCutOnceWithTheAlphaOfTheGrid() {
        var rp = ReactionPoint(parameters: periodic(), lineRateBitsPerSecond: lineRate)
        rp.receiveCNP(at: .microseconds(10))  // the first: the grids start, nothing cut yet
        #expect(rp.currentRateBitsPerSecond == lineRate && rp.isRateLimited)
        #expect(rp.nextTimerExpiry == .microseconds(14))
        rp.receiveCNP(at: .nanoseconds(10_500))
        rp.receiveCNP(at: .nanoseconds(11_200))
        // α (g = 1/2) at 11, 12 µs: a CNP came, 1/2 + 1/2 = 1; at 13, 14 µs: none, 1/2, 1/4.
        #expect(rp.alpha(at: .microseconds(12)) == 1)
        #expect(rp.alpha(at: .microseconds(14)) == 0.25)
        rp.advanceTimers(to: .microseconds(14))
        #expect(rp.currentRateBitsPerSecond == 35e9)  // one cut: 40 · (1 − 1/8)
        #expect(rp.counters.cnpsHandled == 3)
        #expect(rp.nextTimerExpiry == .microseconds(114))  // T = 100 µs from the cut
    }

    @Test func aCNPBringsTheNextCutForwardToTheGrid() {
        var rp = ReactionPoint(parameters: periodic(), lineRateBitsPerSecond: lineRate)
        rp.receiveCNP(at: .microseconds(10))
        rp.advanceTimers(to: .microseconds(14))  // α 1 → 1/16 in four quiet periods
        #expect(rp.currentRateBitsPerSecond == 38.75e9)
        rp.receiveCNP(at: .microseconds(20))
        #expect(rp.nextTimerExpiry == .microseconds(22))  // the grid 10 + 4k, not 20 + 4
        #expect(rp.currentRateBitsPerSecond == 38.75e9)
        // α halves six more times to 1/1024 by 20 µs; at 21 µs the CNP's period ends
        // (1/2048 + 1/2), at 22 µs one quiet period halves it.
        rp.advanceTimers(to: .microseconds(22))
        let alpha = (1.0 / 2048 + 0.5) / 2
        #expect(rp.alpha(at: .microseconds(22)) == alpha)
        #expect(rp.currentRateBitsPerSecond == 38.75e9 * (1 - alpha / 2))
        #expect(rp.targetRateBitsPerSecond == 38.75e9)
    }
}

@Suite struct PresetTests {
    @Test func presetsCarryTheirSourcesNumbers() {
        let first = DCQCNParameters.ns3FirstAuthorDefaults
        #expect(first.alphaGain == 1.0 / 16)
        #expect(first.alphaUpdatePeriod == .microseconds(55))
        #expect(first.rateIncreaseTimer == .microseconds(1500))
        #expect(first.byteCounterBytes == 150_000)
        #expect(first.fastRecoveryThreshold == 5)
        #expect(first.additiveIncreaseBitsPerSecond == 5e6 && first.hyperIncreaseBitsPerSecond == 50e6)
        #expect(first.minimumCNPInterval == .microseconds(50))

        #expect(first.targetRateClamp == .afterByteCounterIncrease)

        // windows/ns-3-dev/x64/Release/mix/config.txt: BYTE_COUNTER 300000000, CLAMP_TARGET_RATE 1.
        let mix = DCQCNParameters.ns3MixConfig
        #expect(mix.alphaGain == 0.00390625)
        #expect(mix.rateIncreaseTimer == .microseconds(60) && mix.byteCounterBytes == 300_000_000)
        #expect(mix.targetRateClamp == .everyCut)
        #expect(mix.additiveIncreaseBitsPerSecond == 40e6 && mix.hyperIncreaseBitsPerSecond == 200e6)

        let mlx5 = DCQCNParameters.mlx5Like
        #expect(mlx5.alphaGain == 5.0 / 1024 && mlx5.initialAlpha == 1023.0 / 1024)
        #expect(mlx5.rateIncreaseTimer == .microseconds(300) && mlx5.byteCounterBytes == 32_767)
        #expect(mlx5.fastRecoveryThreshold == 1)
        #expect(mlx5.targetRateClamp == .afterAnyIncrease)
        #expect(mlx5.rateIncreaseStages == .timerAndByteCounter)

        let hpcc = DCQCNParameters.hpccMellanoxModel
        #expect(hpcc.targetRateClamp == .afterTimerIncrease && hpcc.rateIncreaseStages == .timerOnly)
        #expect(hpcc.minimumCNPInterval == .zero && hpcc.rateDecreasePeriod == .microseconds(4))
        #expect(mlx5.rateDecreasePeriod == nil)

        for (name, parameters) in DCQCNParameters.presets {
            #expect(parameters.problems.isEmpty, "\(name)")
        }
        #expect(ECNMarkingParameters.ns3MixConfig.kMinBytes == 41_200)
        #expect(ECNMarkingParameters.ns3MixConfig.kMaxBytes == 1_030_000)
    }

    @Test func problemsNameTheField() {
        var parameters = DCQCNParameters.mlx5Like
        parameters.alphaGain = 0
        parameters.byteCounterBytes = -1
        #expect(parameters.problems.map(\.field) == ["alphaGain", "byteCounterBytes"])
    }
}

/// Whether a cut lowers R_T: the rule that decides how a flow comes back from a long
/// congestion episode (issue 17: mlx5Like's 16:1 incast used its bottleneck 48 %).
@Suite struct TargetRateClampTests {
    /// `count` CNPs 4 µs apart from t = 0: a run of cuts with no increase event between them.
    private func cutRepeatedly(_ rp: inout ReactionPoint, count: Int) {
        for index in 0..<count { rp.receiveCNP(at: .microseconds(Int64(4 * index))) }
    }

    @Test func mlx5LikeKeepsTheTargetThroughARunOfCutsAndRecoversInOneStep() {
        var rp = ReactionPoint(parameters: .mlx5Like, lineRateBitsPerSecond: lineRate)
        cutRepeatedly(&rp, count: 20)
        #expect(rp.currentRateBitsPerSecond < 40e6)
        // No increase happened between the cuts, so the firmware keeps the target it had.
        #expect(rp.targetRateBitsPerSecond == lineRate)
        // The first timer event (300 µs after the last cut) halves the distance to it.
        rp.advanceTimers(to: .microseconds(76 + 300))
        #expect(rp.currentRateBitsPerSecond > 0.49 * lineRate)
        // The rate rose since the last cut, so the next cut clamps the target to it.
        let beforeCut = rp.currentRateBitsPerSecond
        rp.receiveCNP(at: .microseconds(400))
        #expect(rp.targetRateBitsPerSecond == beforeCut)
    }

    @Test func ns3DefaultsClampOnlyAfterAByteCounterIncrease() {
        var rp = ReactionPoint(parameters: .ns3FirstAuthorDefaults, lineRateBitsPerSecond: lineRate)
        cutRepeatedly(&rp, count: 3)
        #expect(rp.targetRateBitsPerSecond == lineRate)
        // A timer event alone does not count (rpr_cnm_received tests m_rpByteStage only).
        rp.advanceTimers(to: .microseconds(8 + 1500))
        #expect(rp.timerStage == 1)
        rp.receiveCNP(at: .microseconds(1600))
        #expect(rp.targetRateBitsPerSecond == lineRate)
        // A byte-counter event does.
        rp.recordBytesSent(150_000, at: .microseconds(1700))
        #expect(rp.byteCounterStage == 1)
        let beforeCut = rp.currentRateBitsPerSecond
        rp.receiveCNP(at: .microseconds(1800))
        #expect(rp.targetRateBitsPerSecond == beforeCut)
    }

    @Test func hpccRuleClampsOnlyAfterATimerIncrease() {
        var parameters = handParameters(byteCounterBytes: 1000)
        parameters.targetRateClamp = .afterTimerIncrease
        var rp = ReactionPoint(parameters: parameters, lineRateBitsPerSecond: lineRate)
        cutRepeatedly(&rp, count: 2)
        rp.recordBytesSent(1000, at: .microseconds(10))
        rp.receiveCNP(at: .microseconds(20))
        #expect(rp.targetRateBitsPerSecond == lineRate)
        rp.advanceTimers(to: .microseconds(120))
        let beforeCut = rp.currentRateBitsPerSecond
        rp.receiveCNP(at: .microseconds(130))
        #expect(rp.targetRateBitsPerSecond == beforeCut)
    }

    @Test func everyCutIsThePapersRule() {
        var rp = ReactionPoint(parameters: handParameters(), lineRateBitsPerSecond: lineRate)
        #expect(rp.parameters.targetRateClamp == .everyCut)
        rp.receiveCNP(at: .microseconds(0))
        let afterFirst = rp.currentRateBitsPerSecond
        rp.receiveCNP(at: .microseconds(4))
        #expect(rp.targetRateBitsPerSecond == afterFirst)
    }
}
