import Congestion
import Testing

@Suite struct NanosecondsTests {
    @Test func unitsConvertExactly() {
        #expect(Nanoseconds.microseconds(55).rawValue == 55_000)
        #expect(Nanoseconds.milliseconds(2).rawValue == 2_000_000)
        #expect(Nanoseconds.roundedMicroseconds(0.5).rawValue == 500)
        #expect(Nanoseconds.microseconds(1500).milliseconds == 1.5)
        #expect((Nanoseconds.microseconds(1) * 3 + .nanoseconds(7)).rawValue == 3_007)
        #expect(Nanoseconds.microseconds(50).description == "50 µs")
        #expect(Nanoseconds.nanoseconds(1_500).description == "1500 ns")
    }
}
