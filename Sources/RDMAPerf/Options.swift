import ArgumentParser
import Congestion
import Foundation
import RDMA

/// What a latency run measures (`--op`).
public enum LatencyOperation: String, CaseIterable, Sendable, Codable, ExpressibleByArgument {
    case send, write, read, atomic
    /// Ping-pong operations: one sample is a round trip, reported halved.
    public var isPingPong: Bool { self == .send || self == .write }
}

/// What a bandwidth run moves (`--op`). `atomic` is an 8-byte FETCH_AND_ADD, as
/// `ib_atomic_bw` posts by default.
public enum BandwidthOperation: String, CaseIterable, Sendable, Codable, ExpressibleByArgument {
    case write, send, read, atomic

    /// The size every atomic moves (`ib_atomic_bw` fixes its -s at 8).
    public static let atomicSize = 8
}

/// perftest's `-c`: the transport of the test QPs. UD (unreliable datagram) only for
/// SEND over perftest's exchange.
public enum ConnectionKind: String, CaseIterable, Sendable, ExpressibleByArgument {
    case RC, UD

    var queuePairKind: QueuePairKind { self == .UD ? .unreliableDatagram : .reliableConnected }
}

/// perftest's `--output=` choices: print one number instead of the table.
public enum OutputChoice: String, CaseIterable, Sendable, ExpressibleByArgument {
    case bandwidth, message_rate, latency
}

/// A byte count typed as perftest takes it (`65536`) or with a binary suffix (`64K`, `8M`).
public struct ByteCount: ExpressibleByArgument, Sendable, Equatable {
    public var value: Int
    public init(_ value: Int) { self.value = value }
    public init?(argument: String) {
        let text = argument.trimmingCharacters(in: " ")
        guard let last = text.last else { return nil }
        var multiplier = 1
        var digits = Substring(text)
        switch last {
        case "k", "K": multiplier = 1 << 10; digits = digits.dropLast()
        case "m", "M": multiplier = 1 << 20; digits = digits.dropLast()
        case "g", "G": multiplier = 1 << 30; digits = digits.dropLast()
        default: break
        }
        guard let number = Int(digits), number > 0 else { return nil }
        let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return nil }
        value = product
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}

/// The flags both tools share, spelled and meaning what they mean in perftest.
///
/// perftest flag → here: `-d` device, `-i` port, `-x` GID index (automatic: the
/// IPv4-mapped RoCEv2 entry), `-s` size, `-n` iterations, `-a` sweep 2…2^23, `-D`
/// duration, `-m` MTU, `-u` QP timeout exponent, `-I` max inline size, `-F` (accepted,
/// no CPU-frequency check to silence: the clock is CLOCK_MONOTONIC_RAW), `-p` TCP port,
/// `-R` rdma_cm (perftest's: the exchange and the test QP both through the CM on `-p`),
/// `-t` send-queue depth, `-e` completion events, `--output=`, `--report_gbits`.
public struct CommonOptions: ParsableArguments, Sendable {
    @Argument(help: "The server to connect to (client side). Without it: be the server and wait.")
    public var server: String?

    @Option(name: [.customShort("d"), .customLong("ib-dev")], help: "Verbs device name (e.g. rxe0, mlx5_0).")
    public var device: String?

    @Option(name: .customLong("soft"), help: "Use the userspace RoCEv2 engine bound to this IPv4 address.")
    public var softAddress: String?

    @Option(name: .customLong("icrc"), help: ArgumentHelp(
        "How the userspace engine checks received ICRCs: automatic (strict where raw sockets are permitted), strict (the real IPv4 header, needs CAP_NET_RAW), assume-id0 (kernel rxe's packets fail) or off. Default: $SOFTROCE_ICRC, else automatic.",
        valueName: "MODE"))
    public var icrc: ICRCVerification?

    @Option(name: .customLong("pcap"), help: ArgumentHelp(
        "Write every packet the userspace engine sends and receives to FILE as a pcap with real IP/UDP headers (the first 64 MiB). Default: $SOFTROCE_PCAP.",
        valueName: "FILE"))
    public var pcap: String?

    @Option(name: [.customShort("i"), .customLong("ib-port")], help: "Device port.")
    public var ibPort: UInt8 = 1

    @Option(name: [.customShort("x"), .customLong("gid-index")], help: "GID index (default: the IPv4-mapped RoCEv2 entry).")
    public var gidIndex: Int?

    @Option(name: [.customShort("n"), .customLong("iters")], help: "Iterations per size.")
    public var iterations: Int?

    @Flag(name: [.customShort("a"), .customLong("all")], help: "Sweep sizes 2 … 2^23 (powers of two).")
    public var all = false

    @Option(name: [.customShort("D"), .customLong("duration")], help: "Run each size for this many seconds instead of -n.")
    public var duration: Double?

    @Option(name: [.customShort("c"), .customLong("connection")], help: "Transport of the test QPs, as perftest's -c: RC, or UD for SEND over perftest's exchange (--perftest; our server uses it for perftest's clients, which need it given too: it is not exchanged). A datagram must fit the path MTU; -a sweeps 2 B … the MTU.")
    public var connection: ConnectionKind = .RC

    @Option(name: [.customShort("m"), .customLong("mtu")], help: "Path MTU: 256, 512, 1024, 2048 or 4096 (default: the port's active MTU).")
    public var mtu: Int?

    @Option(name: [.customShort("u"), .customLong("qp-timeout")], help: "QP timeout exponent (4.096 µs × 2^u).")
    public var qpTimeout: UInt8 = 14

    @Option(name: [.customShort("I"), .customLong("inline_size")], help: "Max inline size (default: what the device grants).")
    public var inlineSize: Int?

    @Flag(name: [.customShort("F"), .customLong("CPU-freq")], help: "Accepted for perftest compatibility (no effect).")
    public var ignoreCPUFrequency = false

    @Option(name: [.customShort("p"), .customLong("port")], help: "Port of the out-of-band exchange: TCP, or with -R rdma_cm's.")
    public var port: UInt16 = 18515

    @Flag(name: [.customShort("R"), .customLong("rdma_cm")], help: "Connect through rdma_cm as perftest's -R does (the exchange and the test QP, both on -p): against perftest -R or ourselves with -R; one size, -n.")
    public var rdmaCM = false

    @Flag(name: .customLong("loopback"), help: "Run server and client in this process.")
    public var loopback = false

    @Option(name: .customLong("json"), help: ArgumentHelp("Write one JSON object per size (JSON lines) to FILE, or '-' for stdout.", valueName: "FILE"))
    public var json: String?

    @Option(name: .customLong("plot"), help: ArgumentHelp("Write an SVG plot.", valueName: "FILE.svg"))
    public var plot: String?

    @Option(name: .customLong("output"), help: "Print only this figure (perftest's --output=).")
    public var output: OutputChoice?

    @Flag(name: [.customShort("e"), .customLong("events")], help: "Wait for completions on a completion channel (ibv_req_notify_cq + ibv_get_cq_event) instead of busy-polling, as perftest's -e. Each side chooses for itself.")
    public var completionEvents = false

    @Flag(name: .customLong("spin"), help: "Busy-poll without ever yielding the CPU (perftest's behaviour); by default the loops call sched_yield() after 256 empty polls so a kernel rxe sharing the cores is not starved.")
    public var spin = false

    @Option(name: .customLong("bind"), help: ArgumentHelp("The server listens on this IPv4 address only (default: the --soft address; otherwise all addresses, like perftest; 0.0.0.0 says so explicitly).", valueName: "ADDRESS"))
    public var bindAddress: String?

    @Option(name: .customLong("timeout"), help: "Seconds without progress before a run is abandoned (peer gone).")
    public var progressTimeout: Double = 10

    @Option(name: .customLong("connect-timeout"), help: "Seconds the client keeps trying to reach the server; the server's wait for a client.")
    public var connectTimeout: Double = 10

    public init() {}

    /// Which device path the user asked for.
    public func backendChoice() throws(PerfError) -> BackendChoice {
        if device != nil, softAddress != nil {
            throw .usage("-d and --soft name two different devices", hint: "give one of them")
        }
        if let device { return .verbs(name: device) }
        if let softAddress { return .soft(address: softAddress) }
        return .automatic
    }

    /// Where a server listens: `--bind`, else the soft engine's address (a client of a
    /// soft engine must reach that address anyway), else every address.
    func listenAddress(_ opened: OpenedDevice) -> String {
        bindAddress ?? opened.softAddress ?? "0.0.0.0"
    }

    /// Sizes to measure: `-s`, or the perftest sweep 2 … 2^23 with `-a`.
    public func sizes(defaultSize: Int, explicit: ByteCount?) -> [Int] {
        if all { return (1...23).map { 1 << $0 } }
        return [explicit?.value ?? defaultSize]
    }

    /// Checks every flag both tools share before anything is opened; each refusal names
    /// the flag and its bounds (exit status 2). `maximumIterations` is the tool's `-n` bound.
    public func validate(explicitSize: ByteCount?, maximumIterations: Int, limits: RunLimits = .standard) throws(PerfError) {
        if rdmaCM, loopback || all || duration != nil {
            throw .usage("-R speaks perftest's rdma_cm exchange: one size (-s), -n iterations, no --loopback/-a/-D")
        }
        if all, explicitSize != nil { throw .usage("-a and -s both choose sizes", hint: "give one of them") }
        if let size = explicitSize?.value, size > limits.maximumSize {
            throw .usage("-s \(size): at most \(limits.maximumSize) B (1G)",
                         hint: "each side registers twice the size and a remote key covers at most 4 GiB")
        }
        if let iterations, !(limits.minimumIterations...maximumIterations).contains(iterations) {
            throw .usage("-n \(iterations): give \(limits.minimumIterations)…\(maximumIterations) iterations")
        }
        if let duration, !(duration > 0 && duration <= limits.maximumDuration) {
            throw .usage("-D \(duration): give seconds in (0, \(Int(limits.maximumDuration))]")
        }
        if iterations != nil, duration != nil { throw .usage("-n and -D both bound the run", hint: "give one of them") }
        if let mtu, ![256, 512, 1024, 2048, 4096].contains(mtu) { throw .usage("-m \(mtu): MTU must be 256, 512, 1024, 2048 or 4096") }
        if let gidIndex, gidIndex < 0 || gidIndex > 255 { throw .usage("-x \(gidIndex): GID index must be 0…255") }
        if ibPort == 0 { throw .usage("-i 0: ports are numbered from 1") }
        if qpTimeout > 31 { throw .usage("-u \(qpTimeout): the QP timeout exponent is 0…31 (4.096 µs × 2^u; 0 waits forever)") }
        if let inlineSize, !(0...Self.maximumInline).contains(inlineSize) {
            throw .usage("-I \(inlineSize): give 0…\(Self.maximumInline) bytes of inline data")
        }
        if loopback, server != nil { throw .usage("--loopback runs both sides here; do not name a server") }
        if connection == .UD, loopback || rdmaCM {
            throw .usage("-c UD is spoken over perftest's exchange only (a --perftest client, or our server answering perftest's)", hint: "drop --loopback/-R")
        }
        if completionEvents, spin { throw .usage("-e and --spin both choose how to wait for completions", hint: "give one of them") }
        if server != nil, port == 0 { throw .usage("-p 0: a client needs the server's port") }
        for (flag, value) in [("--timeout", progressTimeout), ("--connect-timeout", connectTimeout)]
        where !(value >= Self.timeoutRange.lowerBound && value <= Self.timeoutRange.upperBound) {
            throw .usage("\(flag) \(value): give seconds in \(Self.timeoutRange.lowerBound)…\(Int(Self.timeoutRange.upperBound))")
        }
    }

    /// `--timeout` and `--connect-timeout` bounds: a tenth of a second to a day.
    public static let timeoutRange = 0.1...86_400.0
    /// `-I` bound: more inline data than any device grants.
    public static let maximumInline = 1024
}

extension ICRCVerification: ExpressibleByArgument {}

/// What the tools pass to every soft engine they open: ICRC checking and packet capture,
/// from `--icrc`/`--pcap`, else `SOFTROCE_ICRC`/`SOFTROCE_PCAP`; DCQCN from
/// `SOFTROCE_DCQCN=PRESET[:LINE_GBPS]` (e.g. `mlx5Like:10`; default off).
public struct SoftEngineSettings: Sendable, Equatable {
    public var icrc: ICRCVerification
    public var capture: PacketCapture?
    public var congestion: SoftCongestionControl
    /// `icrc` nil: automatic; `congestion` nil: off.
    public init(icrc: ICRCVerification? = nil, capture: PacketCapture? = nil, congestion: SoftCongestionControl? = nil) {
        self.icrc = icrc ?? .automatic
        self.capture = capture
        self.congestion = congestion ?? .off
    }

    func configuration(address: String, capturing: Bool = true) -> SoftDeviceConfiguration {
        SoftDeviceConfiguration(address: address, port: 4791, icrc: icrc, capture: capturing ? capture : nil, congestion: congestion)
    }

    /// `SOFTROCE_DCQCN`'s value: a preset name, then optionally `:` and the line rate in Gb/s (default 10).
    static func congestion(_ text: String) throws(PerfError) -> SoftCongestionControl {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let names = DCQCNParameters.presets.map(\.name)
        guard parts.count <= 2, let preset = DCQCNParameters.presets.first(where: { $0.name == parts[0] })?.parameters else {
            throw .usage("SOFTROCE_DCQCN=\(text) names no DCQCN preset", hint: names.joined(separator: ", ") + ", optionally :LINE_GBPS")
        }
        let gigabits = parts.count == 2 ? Double(parts[1]) : 10
        guard let gigabits, gigabits >= 0.001, gigabits <= 10_000 else {
            throw .usage("SOFTROCE_DCQCN=\(text): the line rate after ':' must be 0.001…10000 Gb/s", hint: "e.g. mlx5Like:25")
        }
        return .dcqcn(preset, lineRateBitsPerSecond: gigabits * 1e9)
    }
}

extension CommonOptions {
    /// `--icrc`/`--pcap`, else the environment; a bad `SOFTROCE_ICRC` is refused by name.
    public func softEngineSettings(environment: [String: String] = ProcessInfo.processInfo.environment) throws(PerfError) -> SoftEngineSettings {
        var settings = SoftEngineSettings()
        if let icrc {
            settings.icrc = icrc
        } else if let text = environment["SOFTROCE_ICRC"], !text.isEmpty {
            guard let mode = ICRCVerification(rawValue: text) else {
                throw .usage("SOFTROCE_ICRC=\(text) is not an ICRC mode", hint: "automatic, strict, assume-id0 or off")
            }
            settings.icrc = mode
        }
        if let path = pcap ?? environment["SOFTROCE_PCAP"], !path.isEmpty {
            settings.capture = PacketCapture(path: path)
        }
        if let text = environment["SOFTROCE_DCQCN"], !text.isEmpty, text != "off" {
            settings.congestion = try SoftEngineSettings.congestion(text)
        }
        return settings
    }
}
