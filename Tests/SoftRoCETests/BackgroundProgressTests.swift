import Testing
@testable import SoftRoCE

/// The background progress thread's rule after each round (`SoftDevice.afterBackgroundRound`):
/// a stream keeps it polling for a while, a lone packet or silence lets it sleep.
@Suite("SoftRoCE background progress")
struct BackgroundProgressTests {
    typealias Step = SoftDevice.BackgroundStep
    let spin = SoftDevice.streamSpinNanoseconds

    @Test func aStreamsRoundKeepsTheThreadPollingForTheSpinThenItSleeps() {
        let streamed = SoftDevice.afterBackgroundRound(receivedPackets: SoftDevice.streamPackets, spinUntil: 0, now: { 1_000 })
        #expect(streamed == .runAgain(spinUntil: 1_000 + spin))
        // Empty rounds inside the spin run again; the first one after it sleeps.
        #expect(SoftDevice.afterBackgroundRound(receivedPackets: 0, spinUntil: 1_000 + spin, now: { 1_000 + spin - 1 })
                == .runAgain(spinUntil: 1_000 + spin))
        #expect(SoftDevice.afterBackgroundRound(receivedPackets: 0, spinUntil: 1_000 + spin, now: { 1_000 + spin }) == .sleep)
    }

    @Test func aLonePacketRunsOneMoreRoundButStartsNoSpin() {
        var clockReads = 0
        let step = SoftDevice.afterBackgroundRound(receivedPackets: 1, spinUntil: 0, now: { clockReads += 1; return 5 })
        #expect(step == .runAgain(spinUntil: 0))
        #expect(clockReads == 0, "a round that received a packet or two reads no clock")
        // Then silence: it sleeps at once, as a ping-pong's or an RPC's thread should.
        #expect(SoftDevice.afterBackgroundRound(receivedPackets: 0, spinUntil: 0, now: { 5 }) == .sleep)
    }

    @Test func aLonePacketDuringASpinDoesNotProlongIt() {
        #expect(SoftDevice.afterBackgroundRound(receivedPackets: 2, spinUntil: 900, now: { 100 }) == .runAgain(spinUntil: 900))
    }
}
