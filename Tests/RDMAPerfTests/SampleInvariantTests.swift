import Foundation
import RDMA
import SoftRoCE
import Testing
@testable import RDMAPerf

/// A latency sample is never shorter than what happened on the wire.
///
/// The client's soft engine holds every packet it sends for 300 µs (its seeded fault
/// injection, `delay`), so no round trip can be shorter than that. Every third post is made
/// to return only after the round trip has progressed inside it — the hook drives the
/// client's engine for 3 ms, so the response is received and its completion queued before
/// the loop reads anything — as kernel rxe does when it runs the whole round trip in its
/// post_send system call, or as a thread preempted right after its sendto sees it. With
/// the clock read after the post (the old loop) the sample after such a post is a poll plus
/// a post, tens of µs; with the read before the post every sample holds its round trip.
@Suite("Samples: never shorter than the wire allows", .serialized)
struct SampleInvariantTests {
    static let floorMicroseconds = 300.0

    @Test("every sample ≥ the injected 300 µs floor, over short runs of each operation, with posts that complete the round trip", arguments: [
        (LatencyOperation.send, "127.0.22.1"), (.write, "127.0.23.1"), (.read, "127.0.24.1"), (.atomic, "127.0.25.1"),
    ])
    func noSampleBelowTheWire(operation: LatencyOperation, address: String) throws {
        let opened = try DeviceSelection.open(.soft(address: address), port: 1, gidIndex: nil) { _ in }
        defer { opened.close() }
        let engine = try #require(opened.context.softEngine)
        let server = try LoopbackServer(opened: opened, connectTimeout: 60) { peer, control, admission throws(PerfError) in
            try LatencySession.serve(opened: peer, control: control, admission: admission, progressTimeout: 20,
                                     inlineSize: nil, mtu: nil, qpTimeout: 14, log: { _ in }, report: { _, _, _ in })
        }
        let control = try server.connect(timeout: 10)
        defer { control.close() }
        engine.setFaults(SoftFaultInjection(seed: 7, delay: 1, delayMicroseconds: Int(Self.floorMicroseconds)))
        let sizes = operation == .atomic ? [8] : [8, 64, 512, 4096]
        let results = try LatencySession.runClient(
            opened: opened, control: control,
            parameters: LatencyParameters(operation: operation, sizes: sizes, iterations: 30, duration: nil, warmup: 2),
            afterPost: { iteration in
                guard iteration % 3 == 1 else { return }
                let end = MonotonicClock.nanoseconds() + 3_000_000
                while MonotonicClock.nanoseconds() < end { engine.progress() }
            }, report: { _ in })
        engine.setFaults(.none)
        try server.finish(tool: "test", clientError: nil, wait: 60)
        #expect(results.count == sizes.count)
        for result in results {
            // Ping-pong figures are RTT/2: the floor applies to the whole round trip.
            let shortest = result.statistics.minMicroseconds * (operation.isPingPong ? 2 : 1)
            // 0.1 µs of slack: the engine times its hold with CLOCK_MONOTONIC, we with _RAW.
            #expect(shortest >= Self.floorMicroseconds - 0.1,
                    "\(operation) \(result.size) B: a sample of \(shortest) µs, shorter than the \(Self.floorMicroseconds) µs every round trip takes")
        }
    }
}
