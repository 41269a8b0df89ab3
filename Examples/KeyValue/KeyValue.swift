// A key-value RPC service over MessageEndpoint: get/put of small and 1 MiB values.
//
//   swift run KeyValue demo                                           # server and client in one process (soft engine)
//   swift run KeyValue server --soft 127.0.0.1                        # terminal 1
//   swift run KeyValue client --soft 127.0.0.2 --server 127.0.0.1     # terminal 2
//   (without --soft, on kernel rxe or hardware: rdma_cm picks the device from the address)
//
// The client connects by address through rdma_cm (MessageEndpoint.connect); the endpoint
// handshakes travel in the connection request and its accept. Everything after is RDMA.
import ArgumentParser
import RDMA
import RDMAEndpoint

@main
struct KeyValue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A key-value RPC server and client over RDMA message endpoints.",
        subcommands: [Demo.self, Server.self, Client.self])
}

struct DeviceOptions: ParsableArguments {
    @Option(help: "Use the userspace RoCEv2 engine bound to this address (else verbs: the device rdma_cm resolves).")
    var soft: String?
    @Option(help: "The soft engine's UDP port (both sides use the same).")
    var udpPort: UInt16 = 4791
    @Option(help: "The rdma_cm port of the server.")
    var port: UInt16 = 7800
    @Option(help: "Rounds of put+get per value size.")
    var rounds = 20

    /// The soft device, or nil for verbs (rdma_cm opens the device of the address).
    func open() throws -> Context? {
        try soft.map { try Context(soft: SoftDeviceConfiguration(address: $0, port: udpPort)) }
    }
}

extension KeyValue {
    struct Demo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Server and client in this process, on two soft devices (127.0.0.1, 127.0.0.2).")
        @Option(help: "Rounds of put+get per value size.")
        var rounds = 20

        func run() async throws {
            let serverContext = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
            let clientContext = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.2", port: serverContext.softUDPPort!))
            let listener = try MessageEndpointListener(address: ConnectionAddress("127.0.0.1", port: 7800)!, configuration: .keyValue,
                                                       context: serverContext)
            let serving = Task {
                let endpoint = try await listener.nextEndpoint()
                _ = await serveKeyValue(endpoint)
                endpoint.close()
            }
            let client = try await MessageEndpoint.connect(to: "127.0.0.1", port: 7800, configuration: .keyValue, context: clientContext)
            try await runKeyValueClient(client, rounds: rounds)
            client.close()
            try await serving.value
            try listener.close()
            try clientContext.close()
            try serverContext.close()
        }
    }

    struct Server: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Serve clients, each on its own task, until killed (or --count).")
        @OptionGroup var options: DeviceOptions
        @Option(help: "The address to listen on (default: the --soft address, else every device).")
        var address: String?
        @Option(help: "Clients to serve before exiting (0: forever).")
        var count = 0

        func run() async throws {
            let context = try options.open()
            defer { try? context?.close() }
            let address = try ConnectionAddress(host: self.address ?? options.soft ?? "0.0.0.0", port: options.port)
            let listener = try MessageEndpointListener(address: address, configuration: .keyValue, context: context)
            print("key-value server: listening on \(listener.localAddress.map(String.init(describing:)) ?? "\(address)") (rdma_cm), \(context?.device.name ?? "verbs")")
            var served = 0
            try await withThrowingTaskGroup(of: Void.self) { group in
                for try await endpoint in listener {
                    let peer = endpoint.peerAddress.map(String.init(describing:)) ?? "?"
                    group.addTask {
                        let reason = await serveKeyValue(endpoint)
                        print("client \(peer) done: \(reason.map { "\($0)" } ?? "closed")")
                        endpoint.close()
                    }
                    served += 1
                    if count > 0 && served >= count { break }
                }
                try await group.waitForAll()
            }
            try listener.close()
        }
    }

    struct Client: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put and get small and 1 MiB values, check them, print timings.")
        @OptionGroup var options: DeviceOptions
        @Option(help: "The server's address.")
        var server = "127.0.0.1"

        func run() async throws {
            let context = try options.open()
            defer { try? context?.close() }
            let endpoint = try await MessageEndpoint.connect(to: server, port: options.port, configuration: .keyValue, context: context)
            defer { endpoint.close() }
            try await runKeyValueClient(endpoint, rounds: options.rounds)
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
