import Benchmark

let benchmarks: @Sendable () -> Void = {
    Benchmark("placeholder", configuration: .init(metrics: [.mallocCountTotal])) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(1) }
    }
}
