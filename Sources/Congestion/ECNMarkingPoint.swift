/// The DCQCN congestion point: decides whether a packet leaving a switch queue gets the CE mark,
/// from the instantaneous queue length.
///
/// The random source is injected, so a seeded generator makes marking reproducible.
///
/// ```swift
/// let cp = ECNMarkingPoint(.ns3MixConfig)
/// var random = SplitMix64(seed: 42)
/// let mark = cp.shouldMark(queueBytes: 500_000, using: &random)
/// ```
public struct ECNMarkingPoint: Hashable, Sendable {
    public let parameters: ECNMarkingParameters

    public init(_ parameters: ECNMarkingParameters) {
        precondition(parameters.problems.isEmpty, "invalid ECN marking parameters: \(parameters.problems)")
        self.parameters = parameters
    }

    /// 0 below Kmin, Pmax·(q − Kmin)/(Kmax − Kmin) from Kmin to Kmax, 1 above Kmax.
    @inlinable
    public func markingProbability(queueBytes: Int) -> Double {
        if queueBytes < parameters.kMinBytes { return 0 }
        if queueBytes > parameters.kMaxBytes { return 1 }
        let span = parameters.kMaxBytes - parameters.kMinBytes
        guard span > 0 else { return 0 }
        return parameters.maximumMarkingProbability * Double(queueBytes - parameters.kMinBytes) / Double(span)
    }

    /// Draws from `random` only when the probability is strictly between 0 and 1, so the
    /// generator's stream depends only on the queue lengths in the RED range.
    @inlinable
    public func shouldMark<R: RandomNumberGenerator>(queueBytes: Int, using random: inout R) -> Bool {
        let probability = markingProbability(queueBytes: queueBytes)
        if probability <= 0 { return false }
        if probability >= 1 { return true }
        return Double(random.next() >> 11) * 0x1p-53 < probability
    }
}
