@testable import FabricSim
import Testing

@Suite struct EngineTests {
    @Test func eventsComeOutByTimeThenInSchedulingOrder() {
        var queue = EventQueue(capacity: 2)
        let times: [Int64] = [50, 10, 30, 10, 70, 30, 10, 0, 90, 30]
        for (index, time) in times.enumerated() { queue.schedule(.flowStart(flow: Int32(index)), at: time) }
        var order: [Int32] = []
        var previous = Int64.min
        while let next = queue.popFirst() {
            #expect(next.time >= previous)
            previous = next.time
            guard case .flowStart(let flow) = next.event else { Issue.record("wrong event"); continue }
            order.append(flow)
        }
        #expect(order == [7, 1, 3, 6, 2, 5, 9, 0, 4, 8])
    }

    @Test func ringBufferKeepsOrderAcrossWrapAndGrowth() {
        var ring = RingBuffer(filler: -1, capacity: 2)
        var expected: [Int] = []
        var next = 0
        for round in 0..<50 {
            for _ in 0..<(round % 5 + 1) {
                ring.append(next)
                expected.append(next)
                next += 1
            }
            for _ in 0..<(round % 3) where !expected.isEmpty {
                #expect(ring.popFirst() == expected.removeFirst())
            }
            #expect(ring.count == expected.count)
        }
        while let value = ring.popFirst() { #expect(value == expected.removeFirst()) }
        #expect(expected.isEmpty)
    }
}
