/// HPCC's timing of a reaction point's response to CNPs (``DCQCNParameters/rateDecreasePeriod``
/// set), after `RdmaHw::cnp_received_mlx`, `UpdateAlphaMlx` and `CheckRateDecreaseMlx` of the
/// HPCC ns-3 simulator: a CNP only raises two flags. Every α update period K, α ← (1−g)·α + g
/// when a CNP arrived in that period, else α ← (1−g)·α; every rate-decrease period the rate is
/// cut once, with the α of that instant, when a CNP arrived since the last cut. Both grids count
/// from the flow's first CNP, which sets α to its initial value and is not itself counted in α.
///
/// A pure value like ``ReactionPoint``: the periods are applied when asked, not by timers.
/// On an instant both grids share, the α update comes first (HPCC schedules the decrease 1 ns
/// after it for that reason).
struct PeriodicCNPReaction: Hashable, Sendable {
    let origin: Nanoseconds
    let alphaUpdatePeriod: Nanoseconds
    let rateDecreasePeriod: Nanoseconds
    let alphaGain: Double
    /// α after the first `alphaUpdatesApplied` periods.
    private var alpha: Double
    private var alphaUpdatesApplied: Int64 = 0
    private var cnpSinceAlphaUpdate = false
    /// The decrease check that will cut: the first one after a CNP that came since the last cut.
    private(set) var pendingCut: Nanoseconds?

    init(firstCNP: Nanoseconds, parameters: DCQCNParameters, rateDecreasePeriod: Nanoseconds) {
        origin = firstCNP
        alphaUpdatePeriod = parameters.alphaUpdatePeriod
        self.rateDecreasePeriod = rateDecreasePeriod
        alphaGain = parameters.alphaGain
        alpha = parameters.initialAlpha
        pendingCut = firstCNP + rateDecreasePeriod
    }

    /// α at `now`: every α update period that ended at or before `now` applied.
    func alpha(at now: Nanoseconds) -> Double {
        let periods = alphaUpdates(through: now) - alphaUpdatesApplied
        guard periods > 0 else { return alpha }
        let g = alphaGain
        return ((1 - g) * alpha + (cnpSinceAlphaUpdate ? g : 0)) * ReactionPoint.power(1 - g, periods - 1)
    }

    mutating func cnpArrived(at now: Nanoseconds) {
        applyAlphaUpdates(through: now)
        cnpSinceAlphaUpdate = true
        if pendingCut == nil {
            pendingCut = origin + rateDecreasePeriod * ((now - origin).rawValue / rateDecreasePeriod.rawValue + 1)
        }
    }

    /// Clears the pending cut and returns the α to cut with, that of the cut's instant.
    mutating func takePendingCut() -> Double {
        guard let instant = pendingCut else { preconditionFailure("no cut pending") }
        applyAlphaUpdates(through: instant)
        pendingCut = nil
        return alpha
    }

    private mutating func applyAlphaUpdates(through now: Nanoseconds) {
        let periods = alphaUpdates(through: now)
        guard periods > alphaUpdatesApplied else { return }
        alpha = alpha(at: now)
        alphaUpdatesApplied = periods
        cnpSinceAlphaUpdate = false
    }

    private func alphaUpdates(through now: Nanoseconds) -> Int64 {
        (now - origin).rawValue / alphaUpdatePeriod.rawValue
    }
}
