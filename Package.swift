// swift-tools-version: 6.1
// The RDMA toolkit for Swift. Module map and dependency rules: see README.md and DESIGN.md.
import PackageDescription

let package = Package(
    name: "swift-rdma",
    products: [
        .library(name: "RDMA", targets: ["RDMA"]),
        .library(name: "RoCEWire", targets: ["RoCEWire"]),
        .library(name: "Congestion", targets: ["Congestion"]),
        .library(name: "FabricSim", targets: ["FabricSim"]),
        .library(name: "RDMAPerf", targets: ["RDMAPerf"]),
        .executable(name: "rdma-devices", targets: ["rdma-devices"]),
        .executable(name: "fabric-sim", targets: ["fabric-sim"]),
        .executable(name: "rdma-pingpong", targets: ["rdma-pingpong"]),
        .executable(name: "rdma-throughput", targets: ["rdma-throughput"]),
        .library(name: "FabricMonitor", targets: ["FabricMonitor"]),
        .library(name: "RDMAEndpoint", targets: ["RDMAEndpoint"]),
        .executable(name: "rdma-monitor", targets: ["rdma-monitor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    ],
    targets: [
        // MARK: verbs (issue 2)
        .systemLibrary(
            name: "CIBVerbs",
            pkgConfig: "libibverbs",
            providers: [.apt(["libibverbs-dev", "librdmacm-dev"])]
        ),
        // <sys/epoll.h>, which Glibc's module map leaves out (the rdma_cm event poller).
        .systemLibrary(name: "CEpoll", path: "Sources/CEpoll"),
        .target(name: "RDMA", dependencies: ["CIBVerbs", "CEpoll", "SoftRoCE", "Congestion"]),
        .executableTarget(
            name: "rdma-devices",
            dependencies: ["RDMA", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "RDMATests", dependencies: ["RDMA", "CIBVerbs"]),
        // rdma_cm example (issue 13): a server and a client that connect by address.
        .executableTarget(
            name: "ConnectByAddress",
            dependencies: ["RDMA", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/ConnectByAddress"
        ),
        // The peers and checks of tools/cm-lab (rping's protocol, connect/disconnect cycles).
        .executableTarget(
            name: "rdma-cm-lab",
            dependencies: ["RDMA", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // MARK: wire format (issue 3)
        .systemLibrary(name: "CISAL", pkgConfig: "libisal", providers: [.apt(["libisal-dev"])]),
        .target(name: "RoCEWire", dependencies: ["CISAL"]),
        .testTarget(name: "RoCEWireTests", dependencies: ["RoCEWire"], resources: [.copy("Vectors")]),

        // MARK: soft RoCE engine (issue 5)
        .target(name: "CSocketBatch"),
        .target(name: "SoftRoCE", dependencies: ["RoCEWire", "CSocketBatch", "Congestion"]),
        .testTarget(name: "SoftRoCETests", dependencies: ["SoftRoCE", "RoCEWire", "Congestion", "FabricSim"], resources: [.copy("Traces")]),
        .executableTarget(name: "softroce-bench", dependencies: ["RDMA"]),
        .executableTarget(name: "rdma-interop", dependencies: ["RDMA"]),
        // The engine's connection manager against kernel rdma_cm peers (rping) in the TAP lab,
        // directly (SoftRoCE) and through the public API (RDMA).
        .executableTarget(name: "rdma-cm-interop", dependencies: ["RDMA", "SoftRoCE"]),
        // The congestion lab's flows (tools/congestion-lab, issue 17).
        .executableTarget(
            name: "softroce-flows",
            dependencies: ["RDMA", "Congestion", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // MARK: congestion control and fabric simulation (issue 7)
        .target(name: "Congestion"),
        .target(name: "FabricSim", dependencies: ["Congestion"]),
        .executableTarget(
            name: "fabric-sim",
            dependencies: ["FabricSim", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "CongestionTests", dependencies: ["Congestion"]),
        .testTarget(name: "FabricSimTests", dependencies: ["FabricSim"]),

        // MARK: perf tools (issue 6)
        .target(
            name: "RDMAPerf",
            dependencies: [
                "RDMA",
                "Congestion",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "rdma-pingpong", dependencies: ["RDMAPerf"]),
        .executableTarget(name: "rdma-throughput", dependencies: ["RDMAPerf"]),
        .testTarget(name: "RDMAPerfTests", dependencies: ["RDMAPerf", "Congestion"]),

        // MARK: fabric monitor (issue 15)
        // FabricMonitor is the analysis (sources, rates, watchdog, deadlocks) and stays free of
        // server packages; FabricMonitorExporter adds Prometheus, the HTTP server and logging.
        .target(name: "CEthtool"),
        .target(name: "FabricMonitor", dependencies: ["RDMA", "CEthtool"]),
        .target(
            name: "FabricMonitorExporter",
            dependencies: [
                "FabricMonitor",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "rdma-monitor",
            dependencies: [
                "FabricMonitorExporter",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "FabricMonitorTests", dependencies: ["FabricMonitor", "FabricSim", "Congestion"]),
        .testTarget(name: "FabricMonitorExporterTests", dependencies: ["FabricMonitorExporter"]),
    
        // MARK: message and RPC endpoints (issue 14)
        // Over a connected RC queue pair; swift-log and swift-metrics enter here, above RDMA.
        .target(
            name: "RDMAEndpoint",
            dependencies: [
                "RDMA",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "RDMAEndpointTests",
            dependencies: ["RDMAEndpoint", .product(name: "MetricsTestKit", package: "swift-metrics")]
        ),
        .executableTarget(name: "endpoint-bench", dependencies: ["RDMAEndpoint"]),
        .executableTarget(
            name: "KeyValue",
            dependencies: ["RDMAEndpoint", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/KeyValue"
        ),
    ]
)
