// swift-tools-version: 6.1
// libFuzzer targets, in a nested package so that the main package's build is unaffected.
// Build and run: tools/fuzz-rocewire, tools/fuzz-tools (need -sanitize=fuzzer, which only this package uses).
import PackageDescription

let package = Package(
    name: "swift-rdma-fuzz",
    dependencies: [
        // Named, because a path dependency's identity is otherwise its directory name (a worktree
        // or checkout folder), which the product reference below could not know.
        .package(name: "swift-rdma", path: ".."),
    ],
    targets: [
        // SwiftPM on Linux renames an executable's main (to <module>_main, for @testable), so
        // libFuzzer's own main() cannot be used; main.swift calls LLVMFuzzerRunDriver instead.
        .target(name: "CFuzzerDriver"),
        .executableTarget(
            name: "RoCEWireFuzzer",
            dependencies: ["CFuzzerDriver", .product(name: "RoCEWire", package: "swift-rdma")]
        ),
        .executableTarget(
            name: "ControlMessageFuzzer",
            dependencies: ["CFuzzerDriver", .product(name: "RDMAPerf", package: "swift-rdma"), .product(name: "RDMA", package: "swift-rdma")]
        ),
        .executableTarget(
            name: "ScenarioFuzzer",
            dependencies: ["CFuzzerDriver", .product(name: "FabricSim", package: "swift-rdma"), .product(name: "Congestion", package: "swift-rdma")]
        ),
    ]
)
