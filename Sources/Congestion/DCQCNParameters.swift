/// The knobs of a DCQCN reaction point (sender) and notification point (receiver).
///
/// Names follow Zhu et al., "Congestion Control for Large-Scale RDMA Deployments"
/// (SIGCOMM 2015): g, K, T, B, F, R_AI, R_HAI, N. Every field carries its unit in its name
/// or its type. Start from a preset and change what you need:
///
/// ```swift
/// var parameters = DCQCNParameters.mlx5Like
/// parameters.rateIncreaseTimer = .microseconds(55)
/// var sender = ReactionPoint(parameters: parameters, lineRateBitsPerSecond: 40e9)
/// ```
///
/// The switch-side marking thresholds (Kmin, Kmax, Pmax) live in ``ECNMarkingParameters``:
/// they belong to a different box.
public struct DCQCNParameters: Hashable, Sendable {
    /// g: weight of the newest observation in α's moving average.
    public var alphaGain: Double
    /// α before the first CNP; the first cut is R_C·(1 − α'/2) with α' = (1−g)·α₀ + g.
    public var initialAlpha: Double
    /// K: α decays by (1−g) once per period that passes without a CNP.
    public var alphaUpdatePeriod: Nanoseconds
    /// T: the rate-increase timer.
    public var rateIncreaseTimer: Nanoseconds
    /// B: bytes sent between two byte-counter increase events.
    public var byteCounterBytes: Int
    /// F: increase events per counter before leaving fast recovery.
    public var fastRecoveryThreshold: Int
    /// R_AI: target-rate step of additive increase.
    public var additiveIncreaseBitsPerSecond: Double
    /// R_HAI: target-rate step of hyper increase (multiplied by the hyper stage number).
    public var hyperIncreaseBitsPerSecond: Double
    /// R_min: a cut never takes the current rate below this.
    public var minimumRateBitsPerSecond: Double
    /// N: the notification point sends at most one CNP per flow per this interval.
    public var minimumCNPInterval: Nanoseconds
    /// nil: each CNP updates α and cuts at once (Zhu et al.; bobzhuyb/ns3-rdma). Set: HPCC's
    /// Mellanox model (`RATE_DECREASE_INTERVAL`; mlx5's `rate_reduce_monitor_period`): α is
    /// updated every K by whether a CNP came in that period, and the rate is cut at most once
    /// per this period, on a grid from the first CNP, when a CNP came since the last cut.
    public var rateDecreasePeriod: Nanoseconds?
    /// Whether a cut also lowers the target rate R_T to R_C; see ``TargetRateClamp``.
    public var targetRateClamp: TargetRateClamp
    /// Which counters' stages choose between fast recovery, additive and hyper increase;
    /// see ``RateIncreaseStages``.
    public var rateIncreaseStages: RateIncreaseStages

    public init(
        alphaGain: Double,
        initialAlpha: Double,
        alphaUpdatePeriod: Nanoseconds,
        rateIncreaseTimer: Nanoseconds,
        byteCounterBytes: Int,
        fastRecoveryThreshold: Int,
        additiveIncreaseBitsPerSecond: Double,
        hyperIncreaseBitsPerSecond: Double,
        minimumRateBitsPerSecond: Double,
        minimumCNPInterval: Nanoseconds,
        targetRateClamp: TargetRateClamp = .everyCut,
        rateIncreaseStages: RateIncreaseStages = .timerAndByteCounter,
        rateDecreasePeriod: Nanoseconds? = nil
    ) {
        self.alphaGain = alphaGain
        self.initialAlpha = initialAlpha
        self.alphaUpdatePeriod = alphaUpdatePeriod
        self.rateIncreaseTimer = rateIncreaseTimer
        self.byteCounterBytes = byteCounterBytes
        self.fastRecoveryThreshold = fastRecoveryThreshold
        self.additiveIncreaseBitsPerSecond = additiveIncreaseBitsPerSecond
        self.hyperIncreaseBitsPerSecond = hyperIncreaseBitsPerSecond
        self.minimumRateBitsPerSecond = minimumRateBitsPerSecond
        self.minimumCNPInterval = minimumCNPInterval
        self.targetRateClamp = targetRateClamp
        self.rateIncreaseStages = rateIncreaseStages
        self.rateDecreasePeriod = rateDecreasePeriod
    }

    /// The fields that make the algorithm meaningless, with the reason; empty when usable.
    /// Field names are the Swift property names.
    public var problems: [(field: String, problem: String)] {
        var found: [(String, String)] = []
        if !(alphaGain > 0 && alphaGain <= 1) { found.append(("alphaGain", "must be in (0, 1]")) }
        if !(initialAlpha >= 0 && initialAlpha <= 1) { found.append(("initialAlpha", "must be in [0, 1]")) }
        if alphaUpdatePeriod <= .zero { found.append(("alphaUpdatePeriod", "must be positive")) }
        if rateIncreaseTimer <= .zero { found.append(("rateIncreaseTimer", "must be positive")) }
        if byteCounterBytes <= 0 { found.append(("byteCounterBytes", "must be positive")) }
        if fastRecoveryThreshold < 0 { found.append(("fastRecoveryThreshold", "must not be negative")) }
        if !(additiveIncreaseBitsPerSecond >= 0) { found.append(("additiveIncreaseBitsPerSecond", "must not be negative")) }
        if !(hyperIncreaseBitsPerSecond >= 0) { found.append(("hyperIncreaseBitsPerSecond", "must not be negative")) }
        if !(minimumRateBitsPerSecond > 0) { found.append(("minimumRateBitsPerSecond", "must be positive")) }
        if minimumCNPInterval < .zero { found.append(("minimumCNPInterval", "must not be negative")) }
        if let period = rateDecreasePeriod, period <= .zero { found.append(("rateDecreasePeriod", "must be positive")) }
        return found
    }
}

/// When a rate cut also sets the target rate R_T to the current rate R_C.
///
/// The paper's equations set R_T ← R_C on every cut. Every implementation we could read lets a
/// run of cuts with no increase between them keep the target from before the run, so fast
/// recovery climbs back towards the rate that preceded the congestion episode instead of the
/// rate the last of many cuts left:
///
/// | case | source |
/// |---|---|
/// | ``everyCut`` | Zhu et al. (SIGCOMM 2015), the equations; QCN's `clamp_tgt_rate = 1` |
/// | ``afterByteCounterIncrease`` | bobzhuyb/ns3-rdma `QbbNetDevice::rpr_cnm_received` with its defaults (`ClampTargetRate` and `ClampTargetRateAfterTimeInc` false): clamps only `if (m_rpByteStage != 0)` |
/// | ``afterTimerIncrease`` | HPCC simulator `RdmaHw::CheckRateDecreaseMlx` with `CLAMP_TARGET_RATE 0`: no clamp `if (q->mlx.m_rpTimeStage == 0)` |
/// | ``afterAnyIncrease`` | mlx5 firmware defaults `clamp_tgt_rate 0`, `clamp_tgt_rate_after_time_inc 1`; ns3-rdma with `ClampTargetRateAfterTimeInc` |
///
/// ```swift
/// var parameters = DCQCNParameters.mlx5Like
/// parameters.targetRateClamp = .everyCut   // the paper's equations
/// ```
public enum TargetRateClamp: String, Hashable, Sendable, CaseIterable {
    case everyCut
    case afterByteCounterIncrease
    case afterTimerIncrease
    case afterAnyIncrease
}

/// Which increase events count towards the stage that picks an increase event's step: fast
/// recovery (R_T kept), additive increase (R_T += R_AI) or hyper increase (R_T += R_HAI).
///
/// | case | rule | source |
/// |---|---|---|
/// | ``timerAndByteCounter`` | after the event: both stages < F fast recovery, both ≥ F hyper (i·R_HAI, i = min(stages) − F + 1), else additive | Zhu et al. (SIGCOMM 2015); bobzhuyb/ns3-rdma `QbbNetDevice::rpr_timer_wrapper` |
/// | ``timerOnly`` | the byte counter does not count; the timer's stage before the event: < F fast recovery, = F additive, > F hyper (R_HAI) | HPCC simulator `RdmaHw::RateIncEventMlx` (`RateIncEventTimerMlx` is its only increase event) |
///
/// With ``timerAndByteCounter`` a byte counter that never fires (B larger than a run sends)
/// keeps its stage at 0, so a flow never reaches hyper increase: once cut it climbs by R_AI
/// per T for good. ``timerOnly`` reaches hyper increase from the timer alone, F + 1 periods
/// after a cut.
///
/// ```swift
/// var parameters = DCQCNParameters.mlx5Like
/// parameters.rateIncreaseStages = .timerOnly   // HPCC's Mellanox model
/// ```
public enum RateIncreaseStages: String, Hashable, Sendable, CaseIterable {
    case timerAndByteCounter
    case timerOnly
}
