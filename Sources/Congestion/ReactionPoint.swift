/// The DCQCN reaction point: the per-flow rate limiter at the sender.
///
/// A pure value: it reads no clock and starts no timer. The owner tells it the time with
/// every call and asks ``nextTimerExpiry`` when it next needs to be woken up — a simulator
/// schedules an event there, a NIC engine arms a timer.
///
/// The rules are those of Zhu et al. (SIGCOMM 2015) as the project's reference states them:
/// - on a CNP: R_T ← R_C; α ← (1−g)·α + g; R_C ← R_C·(1 − α/2), not below R_min (the cut
///   uses the α just updated); the timer, the byte counter and both stage counters restart.
///   Whether R_T ← R_C happens on every cut or only on the first cut after an increase is
///   ``DCQCNParameters/targetRateClamp``: the paper's equations clamp on every cut, the ns-3
///   simulators and the mlx5 firmware defaults do not, and the difference decides whether a
///   flow recovers from a long congestion episode in one fast-recovery step or crawls back
///   from R_min by additive increase;
/// - α ← (1−g)·α for every K that passes without a CNP;
/// - with ``DCQCNParameters/rateDecreasePeriod`` set (HPCC's Mellanox model) a CNP neither
///   moves α nor cuts at once: α is updated every K by whether a CNP came in that period, and
///   the rate is cut at most once per rate-decrease period (see `PeriodicCNPReaction`);
/// - an increase event happens when the timer T expires or B bytes have been sent; it first
///   advances its own stage counter, then: both stages < F → fast recovery
///   (R_C ← (R_T + R_C)/2); both ≥ F → hyper increase (R_T += i·R_HAI, i = min(stages) − F + 1);
///   otherwise additive increase (R_T += R_AI); after either increase R_C ← (R_T + R_C)/2.
///   ``DCQCNParameters/rateIncreaseStages`` `.timerOnly` is HPCC's variant: no byte counter,
///   the timer's stage alone picks the step;
/// - R_C never exceeds the line rate.
///
/// Choices the reference leaves open, made here:
/// - Before the first CNP the flow is not rate limited: it sends at line rate, α stays at its
///   initial value and no timer runs (hardware allocates the rate limiter on the first CNP).
///   Once limited, the timer keeps running even after R_C is back at line rate.
/// - R_T is held at line rate as well; ns-3 lets it grow without bound, which only matters
///   until the next CNP sets R_T ← R_C, and makes a target above the link meaningless.
/// - α's decay is computed when α is needed, as (1−g)^n for the n whole periods since the
///   last CNP — the same value per-period timers would give, without their events.
/// - Bytes beyond B carry over into the next byte-counter period.
/// - Timer expiries at or before a call's `now` are applied before that call's own effect.
///
/// ```swift
/// var rp = ReactionPoint(parameters: .mlx5Like, lineRateBitsPerSecond: 40e9)
/// rp.receiveCNP(at: .microseconds(10))         // α ≈ 1, R_C ≈ 20 Gb/s
/// rp.advanceTimers(to: .microseconds(310))     // T expired: timer stage 1 ≥ F = 1 → additive
/// rp.recordBytesSent(1000, at: .microseconds(311))
/// let pacingRate = rp.currentRateBitsPerSecond
/// ```
public struct ReactionPoint: Hashable, Sendable {
    public let parameters: DCQCNParameters
    public let lineRateBitsPerSecond: Double

    /// R_C: the rate the sender paces at.
    public private(set) var currentRateBitsPerSecond: Double
    /// R_T: the rate fast recovery climbs back to.
    public private(set) var targetRateBitsPerSecond: Double
    /// Increase events caused by the timer since the last CNP.
    public private(set) var timerStage: Int = 0
    /// Increase events caused by the byte counter since the last CNP.
    public private(set) var byteCounterStage: Int = 0
    /// Bytes still to send before the next byte-counter event.
    public private(set) var byteCounterRemainingBytes: Int
    public private(set) var counters = ReactionPointCounters()

    /// When the timer T next expires; nil until the first cut.
    private var nextRateIncrease: Nanoseconds?
    /// HPCC's periodic reaction, from the first CNP on; nil when each CNP cuts at once.
    private var periodicReaction: PeriodicCNPReaction?
    private var alphaAtLastCNP: Double
    private var lastCNP: Nanoseconds = .zero

    public init(parameters: DCQCNParameters, lineRateBitsPerSecond: Double) {
        precondition(parameters.problems.isEmpty, "invalid DCQCN parameters: \(parameters.problems)")
        precondition(lineRateBitsPerSecond > 0, "line rate must be positive")
        self.parameters = parameters
        self.lineRateBitsPerSecond = lineRateBitsPerSecond
        self.currentRateBitsPerSecond = lineRateBitsPerSecond
        self.targetRateBitsPerSecond = lineRateBitsPerSecond
        self.byteCounterRemainingBytes = parameters.byteCounterBytes
        self.alphaAtLastCNP = parameters.initialAlpha
    }

    /// True once a CNP has arrived: from then on the timers run.
    public var isRateLimited: Bool { nextRateIncrease != nil || periodicReaction != nil }

    /// When ``advanceTimers(to:)`` next has something to do: the timer T's next expiry, or a
    /// cut the periodic reaction has pending, whichever is first; nil until the first CNP.
    /// A CNP can bring it forward under ``DCQCNParameters/rateDecreasePeriod``.
    public var nextTimerExpiry: Nanoseconds? {
        guard let cut = periodicReaction?.pendingCut else { return nextRateIncrease }
        return min(cut, nextRateIncrease ?? cut)
    }

    /// α at `now`, with the decay of every whole period K since the last CNP applied (under
    /// ``DCQCNParameters/rateDecreasePeriod``: every update period K up to `now`).
    public func alpha(at now: Nanoseconds) -> Double {
        if let periodicReaction { return periodicReaction.alpha(at: now) }
        guard isRateLimited, now > lastCNP else { return alphaAtLastCNP }
        let periods = (now - lastCNP).rawValue / parameters.alphaUpdatePeriod.rawValue
        guard periods > 0 else { return alphaAtLastCNP }
        return alphaAtLastCNP * Self.power(1 - parameters.alphaGain, periods)
    }

    /// Reacts to a congestion notification packet received at `now`.
    public mutating func receiveCNP(at now: Nanoseconds) {
        advanceTimers(to: now)
        counters.cnpsHandled += 1
        if let period = parameters.rateDecreasePeriod {
            if periodicReaction == nil {
                periodicReaction = PeriodicCNPReaction(firstCNP: now, parameters: parameters, rateDecreasePeriod: period)
            } else {
                periodicReaction!.cnpArrived(at: now)
            }
            return
        }
        let g = parameters.alphaGain
        let alpha = (1 - g) * alpha(at: now) + g
        cutRate(alpha: alpha, at: now)
        alphaAtLastCNP = alpha
        lastCNP = now
    }

    /// R_C ← R_C·(1 − α/2), not below R_min; the timer, the byte counter and both stage
    /// counters restart.
    private mutating func cutRate(alpha: Double, at now: Nanoseconds) {
        if clampsTargetRate { targetRateBitsPerSecond = currentRateBitsPerSecond }
        currentRateBitsPerSecond = max(
            parameters.minimumRateBitsPerSecond,
            currentRateBitsPerSecond * (1 - alpha / 2)
        )
        timerStage = 0
        byteCounterStage = 0
        byteCounterRemainingBytes = parameters.byteCounterBytes
        nextRateIncrease = now + parameters.rateIncreaseTimer
    }

    /// Whether the cut happening now also sets R_T ← R_C: the stage counters still hold the
    /// increase events since the previous cut.
    private var clampsTargetRate: Bool {
        switch parameters.targetRateClamp {
        case .everyCut: true
        case .afterByteCounterIncrease: byteCounterStage != 0
        case .afterTimerIncrease: timerStage != 0
        case .afterAnyIncrease: byteCounterStage != 0 || timerStage != 0
        }
    }

    /// Applies every expiry of the timer T, and every pending periodic cut, at or before
    /// `now`, in time order.
    public mutating func advanceTimers(to now: Nanoseconds) {
        while true {
            let cut = periodicReaction?.pendingCut.flatMap { $0 <= now ? $0 : nil }
            if let expiry = nextRateIncrease, expiry <= now, expiry <= cut ?? expiry {
                nextRateIncrease = expiry + parameters.rateIncreaseTimer
                timerStage += 1
                increaseRate()
            } else if let cut {
                cutRate(alpha: periodicReaction!.takePendingCut(), at: cut)
            } else {
                return
            }
        }
    }

    /// Counts bytes the sender put on the wire at `now`; each B of them is an increase event
    /// (none under ``RateIncreaseStages/timerOnly``).
    public mutating func recordBytesSent(_ bytes: Int, at now: Nanoseconds) {
        advanceTimers(to: now)
        guard isRateLimited, parameters.rateIncreaseStages == .timerAndByteCounter else { return }
        byteCounterRemainingBytes -= bytes
        while byteCounterRemainingBytes <= 0 {
            byteCounterRemainingBytes += parameters.byteCounterBytes
            byteCounterStage += 1
            increaseRate()
        }
    }

    private mutating func increaseRate() {
        switch increaseStep {
        case .fastRecovery:
            counters.fastRecoveryEvents += 1
        case .additiveIncrease:
            targetRateBitsPerSecond += parameters.additiveIncreaseBitsPerSecond
            counters.additiveIncreaseEvents += 1
        case .hyperIncrease(let multiple):
            targetRateBitsPerSecond += Double(multiple) * parameters.hyperIncreaseBitsPerSecond
            counters.hyperIncreaseEvents += 1
        }
        targetRateBitsPerSecond = min(targetRateBitsPerSecond, lineRateBitsPerSecond)
        currentRateBitsPerSecond = min(
            lineRateBitsPerSecond,
            (targetRateBitsPerSecond + currentRateBitsPerSecond) / 2
        )
    }

    private enum IncreaseStep {
        case fastRecovery
        case additiveIncrease
        case hyperIncrease(multiple: Int)
    }

    /// The step of the increase event whose stage counter was just advanced.
    private var increaseStep: IncreaseStep {
        let threshold = parameters.fastRecoveryThreshold
        switch parameters.rateIncreaseStages {
        case .timerAndByteCounter:
            if timerStage < threshold && byteCounterStage < threshold { return .fastRecovery }
            if timerStage >= threshold && byteCounterStage >= threshold {
                return .hyperIncrease(multiple: min(timerStage, byteCounterStage) - threshold + 1)
            }
            return .additiveIncrease
        case .timerOnly:
            // RateIncEventMlx reads m_rpTimeStage before RateIncEventTimerMlx counts the event.
            let stageBefore = timerStage - 1
            if stageBefore < threshold { return .fastRecovery }
            if stageBefore == threshold { return .additiveIncrease }
            return .hyperIncrease(multiple: 1)
        }
    }

    /// Exponentiation by squaring: exact for the small powers that matter and cheap for the
    /// large ones a long quiet period produces.
    static func power(_ base: Double, _ exponent: Int64) -> Double {
        var result = 1.0
        var factor = base
        var remaining = exponent
        while remaining > 0 {
            if remaining & 1 == 1 { result *= factor }
            factor *= factor
            remaining >>= 1
        }
        return result
    }
}

/// What a reaction point has done, for monitors and tests.
public struct ReactionPointCounters: Hashable, Sendable {
    public var cnpsHandled = 0
    public var fastRecoveryEvents = 0
    public var additiveIncreaseEvents = 0
    public var hyperIncreaseEvents = 0
    public init() {}
}
