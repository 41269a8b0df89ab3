import Benchmark
import FabricSim

// The simulator's speed: events processed per second of wall time, and the wall time to
// simulate the yardstick, 100 ms of 16 flows at 40 Gb/s (the 16:1 incast with DCQCN).
// Only `run()` is measured; building the scenario and the simulator's arrays is not.

private let eventsPerSecond = BenchmarkMetric.custom("events/s", polarity: .prefersLarger, useScalingFactor: false)
private let events = BenchmarkMetric.custom("events", polarity: .prefersSmaller, useScalingFactor: false)

private func measureRun(_ benchmark: Benchmark, _ scenario: FabricScenario) {
    var simulator = FabricSimulator(scenario: scenario)
    let started = ContinuousClock.now
    benchmark.startMeasurement()
    let result = simulator.run()
    benchmark.stopMeasurement()
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    benchmark.measurement(events, result.eventsProcessed)
    benchmark.measurement(eventsPerSecond, Int(Double(result.eventsProcessed) / seconds))
    blackHole(result)
}

let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal, events, eventsPerSecond],
        timeUnits: .milliseconds,
        warmupIterations: 1,
        maxDuration: .seconds(30),
        maxIterations: 10
    )

    Benchmark("Simulate 100 ms, 16 flows at 40 Gb/s (incast 16:1, DCQCN)", configuration: configuration) { benchmark in
        measureRun(benchmark, .incast(senderCount: 16, duration: .milliseconds(100)))
    }

    Benchmark("Simulate 100 ms, 16 flows at 40 Gb/s (incast 16:1, PFC only)", configuration: configuration) { benchmark in
        var scenario = FabricScenario.incast(senderCount: 16, duration: .milliseconds(100))
        scenario.dcqcnEnabled = false
        measureRun(benchmark, scenario)
    }

    Benchmark("Simulate 20 ms, victim flow over two switches (DCQCN)", configuration: configuration) { benchmark in
        measureRun(benchmark, .victimFlow(duration: .milliseconds(20)))
    }
}
