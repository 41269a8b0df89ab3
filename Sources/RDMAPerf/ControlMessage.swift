import Foundation
import RDMA

/// One message of the out-of-band exchange, typed: each case carries exactly the fields
/// it needs, and a line from the network becomes one only through `init(line:)`, which
/// names the field that is missing or malformed.
///
/// Sequence (client → server unless marked ←):
/// 1. `hello` — the run's shape, the client's QP endpoints and memory;
///    ← `welcome` — the server's endpoints and memory (or ← `error`).
/// 2. per size: `go` ← `ready` … the RDMA run (`alive` now and then) … `done`;
///    bandwidth: ← `result` and `result` (with -b both ways). With `--verify` the
///    bandwidth run goes in rounds, each followed by `check` ← `checked`.
/// 3. `bye`.
///
/// On the wire each message is one JSON object on one line, `{"cmd": "hello", …}`.
/// Not perftest's format (see `PerftestExchange` for that one).
///
/// ```swift
/// let line = ControlMessage.go(size: 64).line            // {"cmd":"go","size":64}\n
/// let back = try ControlMessage(line: line.dropLast())   // .go(size: 64)
/// ```
public enum ControlMessage: Sendable, Equatable {
    case hello(Hello)
    case welcome(Welcome)
    case go(size: Int)
    case ready
    /// The client of a run whose server is passive says it is still there.
    case alive
    /// The sender finished a size: how many messages (bandwidth) or samples (latency),
    /// and the latency figures for the server to print.
    case done(count: Int, latency: LatencyStatistics?)
    /// Bandwidth figures of one side, after `done`.
    case result(BandwidthStatistics)
    /// `rdma-throughput --verify`: the client's round of `messages` per QP completed; the
    /// server checks what landed (WRITE, SEND) or refills what is read next (READ).
    case check(messages: Int)
    /// ← the answer to `check`: how many bytes the server compared (0 for READ).
    case checked(bytes: Int)
    case bye
    /// The peer refused or failed; the text says why.
    case error(String)

    /// The wire name (`cmd`), for messages that say what arrived.
    public var name: String {
        switch self {
        case .hello: "hello"
        case .welcome: "welcome"
        case .go: "go"
        case .ready: "ready"
        case .alive: "alive"
        case .done: "done"
        case .result: "result"
        case .check: "check"
        case .checked: "checked"
        case .bye: "bye"
        case .error: "error"
        }
    }

    /// Longest line a peer may send (a hello with 1024 QPs' endpoints is ~150 KiB).
    public static let maximumLineLength = 1 << 18
}

/// Which tool a client is, and the shape of the run it asks for.
public enum RunShape: Sendable, Equatable {
    /// rdma-pingpong.
    case latency(LatencyOperation, warmup: Int)
    /// rdma-throughput.
    case bandwidth(BandwidthOperation, queuePairs: Int, bidirectional: Bool, sendDepth: Int, completionModeration: Int)

    public var tool: String {
        switch self {
        case .latency: "rdma-pingpong"
        case .bandwidth: "rdma-throughput"
        }
    }
}

/// The client's opening message: what to run and how to reach its QPs and memory.
public struct Hello: Sendable, Equatable {
    public var version: Int
    public var shape: RunShape
    public var sizes: [Int]
    /// Per size; nil in a `-D` run.
    public var iterations: Int?
    public var duration: Double?
    public var endpoints: [Endpoint]
    public var memory: RemoteMemory
    /// The client checks every received byte (--verify): the server fills what it sends.
    public var verify: Bool

    public init(version: Int = Hello.protocolVersion, shape: RunShape, sizes: [Int], iterations: Int?, duration: Double?,
                endpoints: [Endpoint], memory: RemoteMemory, verify: Bool = false) {
        self.version = version
        self.shape = shape
        self.sizes = sizes
        self.iterations = iterations
        self.duration = duration
        self.endpoints = endpoints
        self.memory = memory
        self.verify = verify
    }

    /// 2: typed messages, every field checked against the server's limits.
    public static let protocolVersion = 2
}

/// The server's answer to an acceptable hello.
public struct Welcome: Sendable, Equatable {
    public var endpoints: [Endpoint]
    public var memory: RemoteMemory
    /// Which device path the server runs on (printed by the client).
    public var path: String
}

// MARK: - Wire form

/// The JSON object on the wire: every field any message uses, all optional. Only
/// `ControlMessage` reads and writes it.
private struct WireObject: Codable {
    var cmd: String
    var tool: String?
    var version: Int?
    var op: String?
    var sizes: [Int]?
    var size: Int?
    var iterations: Int?
    var duration: Double?
    var warmup: Int?
    var qps: Int?
    var bidirectional: Bool?
    var txDepth: Int?
    var cqMod: Int?
    var verify: Bool?
    var endpoints: [Endpoint]?
    var memory: RemoteMemory?
    var count: Int?
    var latency: LatencyStatistics?
    var bandwidth: BandwidthStatistics?
    var error: String?
    var path: String?

    init(cmd: String) { self.cmd = cmd }
}

extension ControlMessage {
    /// The message as one JSON line, newline included.
    public var line: [UInt8] {
        var object = WireObject(cmd: name)
        switch self {
        case .hello(let hello):
            object.tool = hello.shape.tool
            object.version = hello.version
            object.sizes = hello.sizes
            object.iterations = hello.iterations
            object.duration = hello.duration
            object.endpoints = hello.endpoints
            object.memory = hello.memory
            object.verify = hello.verify ? true : nil
            switch hello.shape {
            case .latency(let operation, let warmup):
                object.op = operation.rawValue
                object.warmup = warmup
            case .bandwidth(let operation, let queuePairs, let bidirectional, let sendDepth, let completionModeration):
                object.op = operation.rawValue
                object.qps = queuePairs
                object.bidirectional = bidirectional
                object.txDepth = sendDepth
                object.cqMod = completionModeration
            }
        case .welcome(let welcome):
            object.endpoints = welcome.endpoints
            object.memory = welcome.memory
            object.path = welcome.path
        case .go(let size):
            object.size = size
        case .done(let count, let latency):
            object.count = count
            object.latency = latency
        case .result(let bandwidth):
            object.bandwidth = bandwidth
        case .check(let messages):
            object.count = messages
        case .checked(let bytes):
            object.count = bytes
        case .error(let text):
            object.error = text
        case .ready, .alive, .bye:
            break
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Every field is a plain number, string, bool or array of them: encoding cannot fail
        // except for a non-finite double, which no message carries.
        var bytes = (try? encoder.encode(object)).map { Array($0) } ?? Array("{\"cmd\":\"error\",\"error\":\"unencodable \(name)\"}".utf8)
        bytes.append(0x0A)
        return bytes
    }

    /// Parses one line (without its newline). Throws a refusal naming the field that is
    /// missing or malformed; never traps. Values are checked for shape here (a known
    /// tool, operation, command) and against the server's limits by `ServerLimits`.
    public init(line: some Collection<UInt8>) throws(PerfError) {
        guard line.count <= Self.maximumLineLength else {
            throw .refused("message", "a line of \(line.count) bytes (at most \(Self.maximumLineLength))")
        }
        let object: WireObject
        do {
            object = try JSONDecoder().decode(WireObject.self, from: Data(line))
        } catch {
            throw .refused("message", "not a JSON exchange message (\(Self.describe(error))): \"\(String(decoding: line.prefix(80), as: UTF8.self))\"")
        }
        func required<T>(_ value: T?, _ field: String) throws(PerfError) -> T {
            guard let value else { throw .refused("\(object.cmd).\(field)", "missing") }
            return value
        }
        switch object.cmd {
        case "hello":
            let tool = try required(object.tool, "tool")
            let op = try required(object.op, "op")
            let shape: RunShape
            switch tool {
            case "rdma-pingpong":
                guard let operation = LatencyOperation(rawValue: op) else {
                    throw .refused("hello.op", "\"\(op.prefix(40))\" is not a latency operation (send, write, read, atomic)")
                }
                shape = .latency(operation, warmup: try required(object.warmup, "warmup"))
            case "rdma-throughput":
                guard let operation = BandwidthOperation(rawValue: op) else {
                    throw .refused("hello.op", "\"\(op.prefix(40))\" is not a bandwidth operation (write, send, read)")
                }
                shape = .bandwidth(operation, queuePairs: try required(object.qps, "qps"),
                                   bidirectional: object.bidirectional ?? false,
                                   sendDepth: try required(object.txDepth, "txDepth"),
                                   completionModeration: try required(object.cqMod, "cqMod"))
            default:
                throw .refused("hello.tool", "\"\(tool.prefix(40))\" is not rdma-pingpong or rdma-throughput")
            }
            self = .hello(Hello(version: try required(object.version, "version"), shape: shape,
                                sizes: try required(object.sizes, "sizes"), iterations: object.iterations,
                                duration: object.duration, endpoints: try required(object.endpoints, "endpoints"),
                                memory: try required(object.memory, "memory"), verify: object.verify ?? false))
        case "welcome":
            self = .welcome(Welcome(endpoints: try required(object.endpoints, "endpoints"),
                                    memory: try required(object.memory, "memory"), path: object.path ?? "?"))
        case "go": self = .go(size: try required(object.size, "size"))
        case "ready": self = .ready
        case "alive": self = .alive
        case "done": self = .done(count: try required(object.count, "count"), latency: object.latency)
        case "result": self = .result(try required(object.bandwidth, "bandwidth"))
        case "check": self = .check(messages: try required(object.count, "count"))
        case "checked": self = .checked(bytes: try required(object.count, "count"))
        case "bye": self = .bye
        case "error": self = .error(String((object.error ?? "an error").prefix(2000)))
        default: throw .refused("cmd", "unknown command \"\(object.cmd.prefix(40))\"")
        }
    }

    /// A decoding error in a few words, naming the JSON path (e.g. `sizes[0]`).
    private static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return keys.isEmpty ? "" : "field \(keys.dropFirst(keys.hasPrefix(".") ? 1 : 0)): "
        }
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return path(context) + context.debugDescription
        case .keyNotFound(let key, let context):
            return path(context) + "missing \(key.stringValue)"
        @unknown default:
            return "\(error)"
        }
    }
}
