// swift-tools-version: 6.1
// Benchmarks live in a nested package so that the main package does not depend on
// ordo-one/benchmark (and its malloc interposer) for its users.
// Run: cd Benchmarks && swift package --allow-writing-to-package-directory benchmark
import PackageDescription


let package = Package(
    name: "swift-rdma-benchmarks",
    dependencies: [
        // Named explicitly: SwiftPM would otherwise name it after the clone's folder.
        .package(name: "swift-rdma", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "RDMABenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "RDMA", package: "swift-rdma"),
            ],
            path: "Benchmarks/RDMABenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "RoCEWireBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "RoCEWire", package: "swift-rdma"),
            ],
            path: "Benchmarks/RoCEWireBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "FabricSimBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "FabricSim", package: "swift-rdma"),
            ],
            path: "Benchmarks/FabricSimBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
