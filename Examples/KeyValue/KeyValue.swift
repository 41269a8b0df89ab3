// A key-value RPC service over MessageEndpoint: get/put of small and 1 MiB values.
//
//   swift run KeyValue demo                                  # server and client in one process (soft engine)
//   swift run KeyValue server --soft 127.0.0.1               # terminal 1
//   swift run KeyValue client --soft 127.0.0.2 --server 127.0.0.1   # terminal 2
//   (--device rxe0 instead of --soft on kernel rxe or hardware)
//
// The queue pairs' endpoints and the endpoint handshakes travel over a TCP connection
// (the exchange port); everything after that is RDMA.
import ArgumentParser
import RDMA
import RDMAEndpoint
import RDMAPerf

@main
struct KeyValue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A key-value RPC server and client over RDMA message endpoints.",
        subcommands: [Demo.self, Server.self, Client.self])
}

struct DeviceOptions: ParsableArguments {
    @Option(help: "Use the userspace RoCEv2 engine bound to this address.")
    var soft: String?
    @Option(help: "Use this verbs device (e.g. rxe0).")
    var device: String?
    @Option(help: "The soft engine's UDP port (both sides use the same).")
    var udpPort: UInt16 = 4791
    @Option(help: "The TCP port of the exchange.")
    var port: UInt16 = 7800
    @Option(help: "Rounds of put+get per value size.")
    var rounds = 20

    func open() throws -> Context {
        if let device { return try Context(deviceNamed: device) }
        return try Context(soft: SoftDeviceConfiguration(address: soft ?? "127.0.0.1", port: udpPort))
    }
}

extension KeyValue {
    struct Demo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Server and client in this process, on one soft device on 127.0.0.1.")
        @Option(help: "Rounds of put+get per value size.")
        var rounds = 20

        func run() async throws {
            let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
            let (clientPair, serverPair) = try connectedQueuePairs(context)
            let client = try MessageEndpoint(queuePair: clientPair, configuration: .keyValue)
            let server = try MessageEndpoint(queuePair: serverPair, configuration: .keyValue)
            try client.start(peer: server.localHandshake)
            try server.start(peer: client.localHandshake)
            let serving = Task { await serveKeyValue(server) }
            try await runKeyValueClient(client, rounds: rounds)
            client.close()
            _ = await serving.value
            server.close()
            try context.close()
        }
    }

    struct Server: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Serve one client at a time, forever.")
        @OptionGroup var options: DeviceOptions

        func run() async throws {
            let context = try options.open()
            defer { try? context.close() }
            let listener = try ControlListener(port: options.port, address: options.soft ?? "0.0.0.0")
            print("key-value server: exchange on TCP \(listener.address):\(listener.port), \(context.device.name)")
            while true {
                let control = try listener.accept(timeout: 3600)
                do {
                    let endpoint = try exchange(over: control, context: context)
                    let reason = await serveKeyValue(endpoint)
                    print("client \(control.peerDescription) done: \(reason.map { "\($0)" } ?? "closed")")
                    endpoint.close()
                    try? endpoint.queuePair.sendCompletionQueue.close()
                    try? endpoint.queuePair.protectionDomain.close()
                } catch {
                    print("client \(control.peerDescription) refused: \(error)")
                }
                control.close()
            }
        }
    }

    struct Client: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put and get small and 1 MiB values, check them, print timings.")
        @OptionGroup var options: DeviceOptions
        @Option(help: "The server's exchange address.")
        var server = "127.0.0.1"

        func run() async throws {
            let context = try options.open()
            let control = try connectControl(host: server, port: options.port, timeout: 10)
            let endpoint = try exchange(over: control, context: context)
            try await runKeyValueClient(endpoint, rounds: options.rounds)
            endpoint.close()
            control.close()
            try context.close()
        }
    }
}

extension EndpointConfiguration {
    /// 1 MiB values need a rendezvous slot that holds a put (key + value + 3 bytes).
    static var keyValue: EndpointConfiguration {
        var configuration = EndpointConfiguration()
        configuration.receiveSlots = 64
        configuration.sendSlots = 64
        configuration.rendezvousSlots = 2
        configuration.rendezvousSlotSize = (1 << 20) + 4096
        return configuration
    }
}

/// A QP sized for the endpoint's pools, with its own completion queue.
func makeQueuePair(_ context: Context, domain: ProtectionDomain) throws -> QueuePair {
    let queue = try CompletionQueue(context: context, minimumEntries: 512)
    return try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue, receiveCompletionQueue: queue,
                         capabilities: QueuePairCapabilities(maxSendWorkRequests: 128, maxReceiveWorkRequests: 128))
}

func connectedQueuePairs(_ context: Context) throws -> (QueuePair, QueuePair) {
    let domain = try ProtectionDomain(context: context)
    let first = try makeQueuePair(context, domain: domain), second = try makeQueuePair(context, domain: domain)
    let gidIndex = try context.preferredRoCEv2GID().index
    let firstEndpoint = try first.localEndpoint(gidIndex: gidIndex, psn: 1), secondEndpoint = try second.localEndpoint(gidIndex: gidIndex, psn: 2)
    try first.connect(to: secondEndpoint, local: firstEndpoint, options: ConnectionOptions(gidIndex: UInt8(gidIndex)))
    try second.connect(to: firstEndpoint, local: secondEndpoint, options: ConnectionOptions(gidIndex: UInt8(gidIndex)))
    return (first, second)
}

/// Both sides: QP endpoints (30 bytes each way), connect, create the endpoint (its
/// receives are posted), then the endpoint handshakes (40 bytes each way), start.
func exchange(over control: ControlConnection, context: Context) throws -> MessageEndpoint {
    let domain = try ProtectionDomain(context: context)
    let queuePair = try makeQueuePair(context, domain: domain)
    let gidIndex = try context.preferredRoCEv2GID().index
    let local = try queuePair.localEndpoint(gidIndex: gidIndex, psn: UInt32.random(in: 0...0xFF_FFFF))
    try control.sendRaw(local.serialized)
    let remoteBytes = try control.receiveRaw(count: Endpoint.serializedCount, timeout: 10, waitingFor: "queue pair endpoint")
    guard let remote = Endpoint(serialized: remoteBytes) else { throw KeyValueFailure("the peer's queue pair endpoint does not parse") }
    try queuePair.connect(to: remote, local: local, options: ConnectionOptions(gidIndex: UInt8(gidIndex)))
    let endpoint = try MessageEndpoint(queuePair: queuePair, configuration: .keyValue)
    try control.sendRaw(endpoint.localHandshake.serialized)
    let handshake = try control.receiveRaw(count: EndpointHandshake.serializedCount, timeout: 10, waitingFor: "endpoint handshake")
    try endpoint.start(peer: EndpointHandshake(serialized: handshake))
    return endpoint
}
