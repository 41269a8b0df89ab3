// A minimal rdma_cm server and client: connect by IP address and port, exchange one
// message each way over SEND/RECV, disconnect. See the README ("Connect by address").
//
//   swift run ConnectByAddress server --port 7471
//   swift run ConnectByAddress client 10.0.0.1 --port 7471 --message hello
//
// The server echoes what it receives, so it also answers rdma-core's `rdma_client`, and the
// client (with a message of at most 16 bytes) talks to `rdma_server`.
import ArgumentParser
import RDMA

@main
struct ConnectByAddress: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect by address through rdma_cm and exchange a message.",
        subcommands: [Server.self, Client.self])
}

struct Server: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Accept connections; echo each one's message.")

    @Option(help: "Address to listen on (default: every RDMA device).") var address = "0.0.0.0"
    @Option(help: "Port to listen on.") var port: UInt16 = 7471
    @Option(help: "Connections to serve before exiting (0: forever).") var count = 1
    @Option(help: "Seconds to wait for each step.") var timeout = 10

    func run() async throws {
        let listener = try ConnectionListener(address: try ConnectionAddress(host: address, port: port))
        print("listening on \(listener.localAddress.map(String.init(describing:)) ?? "?")")
        var served = 0
        for try await request in listener {
            let greeting = Message.text(request.privateData)
            print("request from \(request.peerAddress.map(String.init(describing:)) ?? "?"), private data \(greeting)")
            let endpoint = try Endpoint(on: request.identifier)
            defer { try? endpoint.close() }
            try endpoint.postReceive()
            let connection = try await request.accept(queuePair: endpoint.queuePair,
                                                      parameters: ConnectionParameters(privateData: Array("welcome".utf8)),
                                                      timeout: .seconds(timeout))
            let message = try await endpoint.receive(connection: connection, timeout: .seconds(timeout))
            print("received \(Message.text(message)), echoing it")
            var echoFailure: (any Error)?
            do {
                try await endpoint.send(message, connection: connection, timeout: .seconds(timeout))
            } catch {
                echoFailure = error
            }
            let reason: RDMAError
            do {
                reason = try await connection.waitForDisconnection(timeout: .seconds(timeout))
            } catch {
                throw echoFailure ?? error
            }
            if let echoFailure {
                // rdma_client disconnects as soon as the echo arrives; its QP can reach the error
                // state before its ACK of our SEND leaves, and our SEND is then flushed
                // (WR_FLUSH_ERR). Whether the echo arrived only the peer can tell; it has left.
                print("the echo was not acknowledged before the peer disconnected: \(echoFailure)")
            }
            print("disconnected: \(reason.hint ?? "\(reason)")")
            try connection.close()
            served += 1
            if count > 0 && served >= count { break }
        }
        try listener.close()
    }
}

struct Client: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Connect, send a message, print the answer.")

    @Argument(help: "The server's address (or host name).") var host: String
    @Option(help: "The server's port.") var port: UInt16 = 7471
    @Option(help: "The message to send.") var message = "hello"
    @Option(help: "Seconds to wait for each step.") var timeout = 10

    func run() async throws {
        var endpoint: Endpoint?
        defer { try? endpoint?.close() }
        let connection = try await Connection.connect(to: host, port: port, timeout: .seconds(timeout),
                                                      parameters: ConnectionParameters(privateData: Array("hello".utf8))) { identifier in
            let created = try Endpoint(on: identifier)
            endpoint = created
            try created.postReceive()
            return created.queuePair
        }
        defer { try? connection.close() }
        guard let endpoint else { return }
        print("connected to \(connection.identifier.peerAddress.map(String.init(describing:)) ?? host) via \(connection.identifier.deviceName ?? "?"), accept data \(Message.text(connection.peerPrivateData))")
        try await endpoint.send(Array(message.utf8), connection: connection, timeout: .seconds(timeout))
        let answer = try await endpoint.receive(connection: connection, timeout: .seconds(timeout))
        print("received \(Message.text(answer))")
        try await connection.disconnect()
    }
}

/// The verbs objects of one side: a context on the identifier's device, one completion
/// queue, one registered buffer (first half receives, second half sends) and the QP.
final class Endpoint {
    let context: Context
    let protectionDomain: ProtectionDomain
    let completionQueue: CompletionQueue
    let region: MemoryRegion
    let queuePair: QueuePair
    static let half = 2048

    init(on identifier: ConnectionIdentifier) throws {
        context = try Context(deviceNamed: identifier.deviceName ?? "")
        protectionDomain = try ProtectionDomain(context: context)
        completionQueue = try CompletionQueue(context: context, minimumEntries: 8)
        region = try MemoryRegion(protectionDomain: protectionDomain, length: 2 * Self.half, access: [.localWrite])
        queuePair = try identifier.createQueuePair(protectionDomain: protectionDomain, sendCompletionQueue: completionQueue,
                                                   receiveCompletionQueue: completionQueue)
    }

    func postReceive() throws {
        try queuePair.postReceive(id: 1, scatterGather: region.scatterGather(offset: 0, length: Self.half))
    }

    func send(_ message: [UInt8], connection: Connection, timeout: Duration) async throws {
        let bytes = Array(message.prefix(Self.half))
        UnsafeMutableRawBufferPointer(rebasing: region.bytes[Self.half...]).copyBytes(from: bytes)
        try queuePair.post(SendWorkRequest(id: 2), scatterGather: region.scatterGather(offset: Self.half, length: bytes.count))
        _ = try await completion(connection: connection, timeout: timeout)
    }

    func receive(connection: Connection, timeout: Duration) async throws -> [UInt8] {
        let completion = try await completion(connection: connection, timeout: timeout)
        return Array(region.bytes[0..<Int(completion.byteLength)])
    }

    /// Polls for one completion without blocking a thread: yields between polls, bounded
    /// by `timeout`. A failed completion throws why (the peer disconnected, …).
    private func completion(connection: Connection, timeout: Duration) async throws -> WorkCompletion {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let completion = try completionQueue.pollOne() {
                guard completion.status == .success else { throw connection.disconnection ?? Message.failed(completion) }
                return completion
            }
            try await Task.sleep(for: .microseconds(100))
        }
        throw connection.disconnection ?? Message.timedOut(timeout)
    }

    /// Closes the QP (if the connection has not), then everything else. Idempotent.
    func close() throws {
        try queuePair.close()
        try context.close()
    }
}

enum Message: Error, CustomStringConvertible {
    case failed(WorkCompletion)
    case timedOut(Duration)

    var description: String {
        switch self {
        case .failed(let completion): "work request failed: \(completion)"
        case .timedOut(let timeout): "no completion within \(timeout)"
        }
    }

    /// Bytes up to the first zero, as text (private data arrives zero-padded).
    static func text(_ bytes: [UInt8]) -> String {
        "\"" + String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self) + "\""
    }
}
