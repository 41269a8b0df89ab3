import Foundation
import Congestion
@testable import FabricSim
import RoCEWire
import Testing
@testable import SoftRoCE

/// One algorithm, two drivers: the engine's paced queue pair and FabricSim's paced flow, fed
/// the same CNP arrival times (written by hand, and recorded in the congestion lab), must hold
/// the same rate at the same instants. Both wrap `Congestion.ReactionPoint`; what could differ
/// is how each counts bytes, paces packets and applies timers — which is what this compares.
@Suite("SoftRoCE reaction point against FabricSim's")
struct ReactionPointTraceTests {
    /// A WRITE_ONLY of 1024 bytes is 1056 bytes BTH to ICRC, 1098 on an Ethernet link: at
    /// 8.784 Gb/s exactly 1 µs, so FabricSim's link and pacing clocks stay on whole nanoseconds.
    static let packetBytes = 1098
    static let lineRate: Int64 = 8_784_000_000
    static let sampleInterval: Int64 = 10_000
    static let duration: Int64 = 3_000_000

    /// CNP arrival times (ns after the flow starts), written by hand in the shape a congested
    /// queue gives: bursts one CNP interval (50 µs) apart while the queue stays above Kmin, then
    /// quiet stretches long enough for the timer and byte counter to raise the rate. Odd
    /// nanoseconds, so that no CNP coincides with a packet or a sample instant.
    static let handWrittenArrivals: [Int64] = [
        100_003, 150_017, 200_029, 250_041, 300_059,
        700_011, 750_023, 800_037,
        1_400_007, 1_450_019, 1_500_031, 1_550_043, 1_600_057, 1_650_061,
        2_300_013, 2_350_027,
    ]

    /// CNP arrivals recorded at a real sender (Traces/congestion-lab-cnp-arrivals.txt: flow 0
    /// of four through the lab VM's RED queue, whose DCQCN ran with timers ×100). The 300 ms
    /// from 5 s on (38 CNPs, two in one batch; the flows had settled), brought back to the
    /// preset's own time scale (÷100) so the 3 ms run sees them; + 3 ns keeps each off the
    /// whole-µs packet and sample grid.
    static func recordedArrivals() throws -> [Int64] {
        let url = try #require(Bundle.module.url(forResource: "congestion-lab-cnp-arrivals", withExtension: "txt", subdirectory: "Traces"))
        let microseconds = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("#") }.compactMap { Int64($0) }
        let start: Int64 = 5_000_000, timeScale: Int64 = 100
        return microseconds.filter { $0 >= start && $0 < start + duration * timeScale / 1000 }
            .map { ($0 - start) * 1000 / timeScale + 3 }
    }

    enum Trace: String, CaseIterable { case handWritten, recorded }

    @Test(arguments: DCQCNParameters.presets.map(\.name), Trace.allCases)
    func engineAndSimulatorHoldTheSameRates(preset: String, trace: Trace) throws {
        let parameters = try #require(DCQCNParameters.presets.first { $0.name == preset }?.parameters)
        let arrivals = trace == .handWritten ? Self.handWrittenArrivals : try Self.recordedArrivals()
        #expect(arrivals.count >= 10, "the trace has \(arrivals.count) CNPs in the window")
        let simulated = simulatorRates(parameters, arrivals: arrivals)
        let engine = try engineRates(parameters, arrivals: arrivals)
        #expect(simulated.count == engine.count)
        #expect(simulated.count >= Int(Self.duration / Self.sampleInterval))
        var mismatches: [String] = []
        for (index, (simulatedRate, engineRate)) in zip(simulated, engine).enumerated() where simulatedRate.rate != engineRate.rate {
            mismatches.append("t=\(simulatedRate.time) ns: FabricSim \(simulatedRate.rate), engine \(engineRate.rate) (sample \(index))")
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5).joined(separator: "; "))")
        // The trace really moved the rate: cut, then recovered part of the way at least.
        let rates = simulated.map(\.rate)
        #expect(rates.min()! < Double(Self.lineRate) * 0.6)
        #expect(Set(rates).count > 10)
    }

    /// FabricSim: two hosts on one link, one endless flow, the CNPs scheduled as arrivals at the
    /// sender's port; R_C read from its time series.
    func simulatorRates(_ parameters: DCQCNParameters, arrivals: [Int64]) -> [(time: Int64, rate: Double)] {
        let scenario = FabricScenario(
            name: "trace", duration: Nanoseconds(Self.duration), packetSizeBytes: Self.packetBytes, dcqcn: parameters,
            marking: ECNMarkingParameters(kMinBytes: 1 << 30, kMaxBytes: 1 << 31, maximumMarkingProbability: 0),
            pfc: FabricScenario.PFC(enabled: false, xoffBytes: 1 << 30, xonBytes: 1 << 29),
            sampleInterval: Nanoseconds(Self.sampleInterval),
            nodes: [.init(name: "sender", kind: .host), .init(name: "receiver", kind: .host)],
            links: [.init(nodeA: 0, nodeB: 1, rateBitsPerSecond: Self.lineRate, propagationDelay: .microseconds(1))],
            flows: [.init(name: "flow", route: [0, 1])])
        var simulator = FabricSimulator(scenario: scenario)
        for arrival in arrivals {
            simulator.events.schedule(.arrival(port: 0, packet: Packet(flow: 0, sizeBytes: 64, hop: 0, kind: .cnp)), at: arrival)
        }
        let series = simulator.run().timeSeries
        return zip(series.times, series.flowRateBitsPerSecond[0]).map { ($0.rawValue, $1) }
    }

    /// The engine: a paced QP streaming one-packet WRITEs to a scripted peer that ACKs at once;
    /// the clock jumps from event to event (the pacer's next send, a CNP, a sample).
    func engineRates(_ parameters: DCQCNParameters, arrivals: [Int64]) throws -> [(time: Int64, rate: Double)] {
        let congestion = SoftCongestionControl(reactionPoint: parameters, lineRateBitsPerSecond: Double(Self.lineRate))
        let peer = try ScriptedPeer(mtu: 1024, depth: 64, congestion: congestion)
        let start = peer.clock.nanoseconds
        var posted: UInt64 = 0
        func refill() throws {
            _ = peer.completions()
            while peer.qp.outstandingSends < 64 {
                try peer.post(SoftSendRequest(id: posted, opcode: .write, remoteAddress: 0x1000, remoteKey: 0x1234), peer.element(0, 1024))
                posted += 1
            }
        }
        try refill()
        var samples: [(time: Int64, rate: Double)] = []
        var cnps = arrivals[...]
        var nextSample = Self.sampleInterval
        var steps = 0
        while nextSample <= Self.duration && steps < 1_000_000 {
            steps += 1
            let deadline = peer.device.nextDeadline().map { Int64($0 - start) } ?? .max
            let next = min(nextSample, cnps.first ?? .max, max(deadline, Int64(peer.clock.nanoseconds - start)))
            peer.clock.nanoseconds = start + UInt64(next)
            if next == cnps.first {
                cnps.removeFirst()
                peer.deliver(CongestionControlTests.congestionNotification(to: peer.qp.queuePairNumber))
            }
            peer.device.progress()
            if let last = peer.sent().last { peer.acknowledge(last.psn) }
            try refill()
            if next == nextSample {
                samples.append((next, peer.device.snapshotCounters().queuePairRates.first?.currentRateBitsPerSecond ?? .nan))
                nextSample += Self.sampleInterval
            }
        }
        return samples
    }
}
