// swift-tools-version: 6.1
// Benchmarks live in a nested package so that the main package does not depend on
// ordo-one/benchmark (and its malloc interposer) for its users.
// Run: cd Benchmarks && swift package --allow-writing-to-package-directory benchmark
import PackageDescription

// SwiftPM names a path dependency after its folder, which is whatever the clone is called.
let rootPackage = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "swift-rdma")

let package = Package(
    name: "swift-rdma-benchmarks",
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "RDMABenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "RDMA", package: rootPackage),
            ],
            path: "Benchmarks/RDMABenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "RoCEWireBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "RoCEWire", package: rootPackage),
            ],
            path: "Benchmarks/RoCEWireBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "FabricSimBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "FabricSim", package: rootPackage),
            ],
            path: "Benchmarks/FabricSimBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
