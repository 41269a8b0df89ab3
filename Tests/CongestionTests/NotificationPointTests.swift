import Congestion
import Testing

@Suite struct NotificationPointTests {
    @Test func atMostOneCNPPerIntervalAndOnlyForMarkedPackets() {
        var np = NotificationPoint(minimumCNPInterval: .microseconds(50))
        let arrivals: [(marked: Bool, microseconds: Int64)] = [
            (false, 1), (true, 2), (true, 51), (true, 52), (false, 200), (true, 201),
        ]
        let answers = arrivals.map { np.packetArrived(congestionExperienced: $0.marked, at: .microseconds($0.microseconds)) }
        #expect(answers == [false, true, false, true, false, true])
        #expect(np.cnpsSent == 3)
        #expect(np.markedPacketsReceived == 4)
        #expect(np.lastCNPSent == .microseconds(201))
    }

    @Test func zeroIntervalAnswersEveryMark() {
        var parameters = DCQCNParameters.mlx5Like
        parameters.minimumCNPInterval = .zero
        var np = NotificationPoint(parameters: parameters)
        let answers = (0..<5).map { np.packetArrived(congestionExperienced: true, at: .nanoseconds(Int64($0 / 2))) }
        #expect(answers == [true, true, true, true, true])
    }
}
