import Congestion

extension SimulationResult {
    /// The first sample time from which every named transmitter (`"node->peer"`) stays held
    /// by PAUSE to the end of the run: when a deadlock among them locked for good. Nil when
    /// they are not all paused at the end, or a name is not a port.
    ///
    /// ```swift
    /// let onset = result.pausedThroughEnd(["T1->Lb", "Lb->T0", "T0->La", "La->T1"])
    /// ```
    public func pausedThroughEnd(_ transmitters: [String]) -> Nanoseconds? {
        var indices: [Int] = []
        for name in transmitters {
            guard let index = ports.firstIndex(where: { $0.name == name }) else { return nil }
            indices.append(index)
        }
        var first: Int?
        for sample in timeSeries.times.indices {
            if indices.allSatisfy({ timeSeries.paused[$0][sample] }) { first = first ?? sample } else { first = nil }
        }
        return first.map { timeSeries.times[$0] }
    }
}
