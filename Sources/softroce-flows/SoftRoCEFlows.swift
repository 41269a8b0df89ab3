// softroce-flows: N soft-engine RC flows of RDMA WRITEs through a real network path, for the
// congestion lab (tools/congestion-lab). `receive` opens one soft device with N QPs; `send`
// opens N soft devices (one address and one QP each, like N hosts), keeps each QP's send
// queue full and reports every interval what each flow delivered and its DCQCN rate. The two
// sides exchange endpoints through files in --dir (they run in different network namespaces).
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Congestion
import Foundation
import RDMA

@main
struct SoftRoCEFlows: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "softroce-flows",
        abstract: "Soft-engine RC WRITE flows for the congestion lab (tools/congestion-lab).",
        subcommands: [Receive.self, Send.self])
}

/// What both sides agree on.
struct FlowOptions: ParsableArguments {
    @Option(help: "Folder both sides exchange endpoints and results through.")
    var dir: String
    @Option(help: "Number of flows (1…64).")
    var flows: Int = 2
    @Option(help: "DCQCN preset (\(DCQCNParameters.presets.map(\.name).joined(separator: ", "))) or off.")
    var dcqcn: String = "off"
    @Option(help: "The senders' line rate in Mb/s: a paced flow's rate before its first CNP and its ceiling.")
    var lineRateMbps: Double = 100
    @Option(help: "Runs the preset this many times slower: its timers (K, T, N) times this.")
    var timeScale: Double = 1
    @Option(help: "For a link this many times slower than the preset's: its rate steps (R_AI, R_HAI, R_min) divided by this, its byte counter B times time-scale / rate-scale (default: time-scale).")
    var rateScale: Double?
    @Option(help: "Path MTU in bytes (256, 512, 1024, 2048, 4096).")
    var mtu: Int = 1024
    @Option(help: "ACK timeout code (4.096 µs × 2^code; 17 ≈ 0.5 s: a TCG VM stalls for longer than perftest's 67 ms).")
    var ackTimeout: UInt8 = 17
    @Option(help: "Seconds to wait for the other side's files.")
    var waitSeconds: Double = 30
    @Flag(help: "With --dcqcn off: still pace each flow at --line-rate-mbps, as a NIC sends at most its line rate, with no ECN and no CNPs (a fabric without congestion control). Without it an off flow is not paced at all.")
    var paceAtLineRate = false

    func validate() throws {
        guard (1...64).contains(flows) else { throw ValidationError("--flows \(flows): give 1…64") }
        guard dcqcn == "off" || parameters != nil else { throw ValidationError("--dcqcn \(dcqcn): not a preset") }
        guard lineRateMbps >= 0.1 && lineRateMbps <= 1e7 else { throw ValidationError("--line-rate-mbps: give 0.1…10000000") }
        guard PathMTU(bytes: mtu) != nil else { throw ValidationError("--mtu \(mtu): give 256, 512, 1024, 2048 or 4096") }
        guard (8...24).contains(ackTimeout) else { throw ValidationError("--ack-timeout \(ackTimeout): give 8…24") }
        guard timeScale >= 1 && timeScale <= 1e6 else { throw ValidationError("--time-scale: give 1…1000000") }
        guard (rateScale ?? 1) >= 1 && (rateScale ?? 1) <= 1e6 else { throw ValidationError("--rate-scale: give 1…1000000") }
    }

    var parameters: DCQCNParameters? {
        DCQCNParameters.presets.first { $0.name == dcqcn }?.parameters.scaled(time: timeScale, rate: rateScale ?? timeScale)
    }

    func configuration(address: String) -> SoftDeviceConfiguration {
        var configuration = SoftDeviceConfiguration(address: address, port: 4791, icrc: .assumeZeroIdentification)
        if let parameters {
            configuration.congestion = .dcqcn(parameters, lineRateBitsPerSecond: lineRateMbps * 1e6)
        } else if paceAtLineRate {
            // A reaction point that never hears a CNP (no ECT, no notification point) holds
            // its flow at the line rate.
            configuration.congestion = SoftCongestionControl(reactionPoint: .mlx5Like, lineRateBitsPerSecond: lineRateMbps * 1e6)
        }
        return configuration
    }

    var connection: ConnectionOptions {
        var options = ConnectionOptions(gidIndex: 0)
        options.pathMTU = PathMTU(bytes: mtu)
        options.timeout = ackTimeout
        return options
    }

    func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    func write<T: Encodable>(_ value: T, to name: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(value).write(to: URL(fileURLWithPath: path(name + ".tmp")))
        _ = rename(path(name + ".tmp"), path(name))   // the reader never sees half a file
    }

    /// Waits (bounded) for the other side's file.
    func read<T: Decodable>(_ type: T.Type, from name: String) throws -> T {
        let deadline = Date().addingTimeInterval(waitSeconds)
        while Date() < deadline {
            if let data = FileManager.default.contents(atPath: path(name)) { return try JSONDecoder().decode(type, from: data) }
            usleep(20_000)
        }
        throw ValidationError("no \(path(name)) after \(waitSeconds) s: is the other side running?")
    }
}

/// The receiver's half of the exchange.
struct ReceiverFile: Codable {
    var endpoints: [Endpoint]
    var regions: [RemoteMemory]
}

/// The sender's half.
struct SenderFile: Codable {
    var endpoints: [Endpoint]
}

/// A device's DCQCN and loss counters at the end of a run.
func counterTable(_ context: Context) -> [String: UInt64] {
    let wanted: Set = ["sent_pkts", "rcvd_pkts", "np_ecn_marked_roce_packets", "np_cnp_sent", "rp_cnp_handled", "rp_cnp_ignored",
                       "rcvd_seq_err", "out_of_seq_request", "duplicate_request", "completer_retry_err", "retry_exceeded_err",
                       "soft_send_eagain", "soft_send_enobufs"]
    return Dictionary(uniqueKeysWithValues: (context.softCounters?.named ?? []).filter { wanted.contains($0.name) }.map { ($0.name, $0.value) })
}

struct Receive: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One soft device with one RC QP per flow, targets of the WRITEs.")
    @OptionGroup var options: FlowOptions
    @Option(help: "The receiver's address (one of this namespace's).")
    var address: String
    @Option(help: "Stop after this many seconds even if the sender never says so.")
    var maxSeconds: Double = 120

    func run() throws {
        let context = try Context(soft: options.configuration(address: address))
        let domain = try ProtectionDomain(context: context)
        let queue = try CompletionQueue(context: context, minimumEntries: 256)
        let region = try MemoryRegion(protectionDomain: domain, length: options.flows << 20, access: .allRemote)
        var pairs: [QueuePair] = []
        for _ in 0..<options.flows {
            pairs.append(try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue, receiveCompletionQueue: queue,
                                       capabilities: QueuePairCapabilities(maxSendWorkRequests: 16, maxReceiveWorkRequests: 16)))
        }
        let endpoints = try pairs.enumerated().map { index, pair in try pair.localEndpoint(gidIndex: 0, psn: UInt32(0x1000 + index)) }
        let regions = (0..<options.flows).map { RemoteMemory(address: region.address + UInt64($0 << 20), rkey: region.rkey, length: 1 << 20) }
        try options.write(ReceiverFile(endpoints: endpoints, regions: regions), to: "receiver.json")
        let senders = try options.read(SenderFile.self, from: "sender.json")
        guard senders.endpoints.count == pairs.count else { throw ValidationError("sender.json has \(senders.endpoints.count) flows, not \(pairs.count)") }
        for (index, pair) in pairs.enumerated() {
            try pair.connect(to: senders.endpoints[index], local: endpoints[index], options: options.connection)
        }
        try options.write(["ready": true], to: "ready.json")
        // Drive the engine (ACKs, CNPs) until the sender is done.
        let deadline = Date().addingTimeInterval(maxSeconds)
        var rounds = 0
        while Date() < deadline {
            // A WRITE completes nothing here: each poll is one engine round. The nap leaves the
            // CPU to the kernel's forwarding (the lab's VM has two).
            _ = try queue.pollOne()
            usleep(200)
            rounds += 1
            if rounds % 256 == 0 && FileManager.default.fileExists(atPath: options.path("stop")) { break }
        }
        try options.write(counterTable(context), to: "receiver-counters.json")
    }
}

struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "N soft devices, one RC QP each, writing to the receiver as fast as allowed.")
    @OptionGroup var options: FlowOptions
    @Option(help: "Comma-separated sender addresses, one per flow (this namespace's).")
    var addresses: String
    @Option(help: "Seconds of traffic.")
    var seconds: Double = 5
    @Option(help: "Report interval in milliseconds.")
    var intervalMs: Double = 100
    @Option(help: "Bytes per RDMA WRITE.")
    var messageBytes: Int = 16384
    @Option(help: "Capture what flow 0 sends and receives (its CNPs among them) to this pcap file, the first 64 MiB.")
    var capture: String?
    @Option(help: "WRITEs kept outstanding per flow.")
    var depth: Int = 8

    struct Flow {
        let context: Context
        let queue: CompletionQueue
        let pair: QueuePair
        let region: MemoryRegion
        var remote: RemoteMemory
        var outstanding = 0
        var bytesThisInterval = 0
        var failed: String?
    }

    struct Report: Codable {
        var flows: Int
        var dcqcn: String
        var intervalSeconds: Double
        /// When the traffic started (seconds since 1970), to line up other samples with `times`.
        var startEpoch: Double = 0
        var times: [Double] = []
        /// Per flow, per interval: WRITE bytes completed, in Mb/s.
        var goodputMbps: [[Double]]
        /// Per flow, per interval: the reaction point's R_C in Mb/s (the line rate when unpaced).
        var rateMbps: [[Double]]
        var counters: [[String: UInt64]] = []
        var failures: [String] = []
    }

    func run() throws {
        let list = addresses.split(separator: ",").map(String.init)
        guard list.count == options.flows else { throw ValidationError("--addresses names \(list.count) addresses for \(options.flows) flows") }
        guard (1...(1 << 20)).contains(messageBytes), (1...64).contains(depth) else { throw ValidationError("--message-bytes 1…1048576, --depth 1…64") }
        let receiver = try options.read(ReceiverFile.self, from: "receiver.json")
        guard receiver.endpoints.count == options.flows else { throw ValidationError("receiver.json has \(receiver.endpoints.count) flows") }
        var flows: [Flow] = []
        var endpoints: [Endpoint] = []
        for (index, address) in list.enumerated() {
            var configuration = options.configuration(address: address)
            if index == 0, let capture { configuration.capture = PacketCapture(path: capture) }
            let context = try Context(soft: configuration)
            let domain = try ProtectionDomain(context: context)
            let queue = try CompletionQueue(context: context, minimumEntries: 256)
            let pair = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue, receiveCompletionQueue: queue,
                                     capabilities: QueuePairCapabilities(maxSendWorkRequests: 64, maxReceiveWorkRequests: 16))
            let region = try MemoryRegion(protectionDomain: domain, length: messageBytes, access: .allRemote)
            let local = try pair.localEndpoint(gidIndex: 0, psn: UInt32(0x2000 + index))
            try pair.connect(to: receiver.endpoints[index], local: local, options: options.connection)
            endpoints.append(local)
            flows.append(Flow(context: context, queue: queue, pair: pair, region: region, remote: receiver.regions[index]))
        }
        try options.write(SenderFile(endpoints: endpoints), to: "sender.json")
        _ = try options.read([String: Bool].self, from: "ready.json")

        var report = Report(flows: flows.count, dcqcn: options.dcqcn, intervalSeconds: intervalMs / 1000,
                            goodputMbps: Array(repeating: [], count: flows.count), rateMbps: Array(repeating: [], count: flows.count))
        let start = Date()
        report.startEpoch = start.timeIntervalSince1970
        var nextReport = start.addingTimeInterval(intervalMs / 1000)
        let end = start.addingTimeInterval(seconds)
        let completions = UnsafeMutableBufferPointer<WorkCompletion>.allocate(capacity: 16)
        defer { completions.deallocate() }
        while true {
            var completed = 0
            for index in flows.indices where flows[index].failed == nil {
                do throws(RDMAError) { completed += try service(&flows[index], completions) } catch { flows[index].failed = "\(error)" }
            }
            if completed == 0 { usleep(200) }   // see Receive: the kernel needs the CPU too
            let now = Date()
            if now >= nextReport {
                report.times.append(now.timeIntervalSince(start))
                let elapsed = intervalMs / 1000
                for index in flows.indices {
                    report.goodputMbps[index].append(Double(flows[index].bytesThisInterval) * 8 / elapsed / 1e6)
                    flows[index].bytesThisInterval = 0
                    let rate = flows[index].context.softCounters?.queuePairRates.first?.currentRateBitsPerSecond ?? options.lineRateMbps * 1e6
                    report.rateMbps[index].append(rate / 1e6)
                }
                nextReport = nextReport.addingTimeInterval(intervalMs / 1000)
                if now >= end { break }
            }
        }
        _ = FileManager.default.createFile(atPath: options.path("stop"), contents: Data())
        report.counters = flows.map { counterTable($0.context) }
        report.failures = flows.compactMap(\.failed)
        try options.write(report, to: "sender-report.json")
    }

    /// Polls one flow's completions (which drives its engine) and tops its send queue up.
    /// Returns how many WRITEs completed.
    func service(_ flow: inout Flow, _ completions: UnsafeMutableBufferPointer<WorkCompletion>) throws(RDMAError) -> Int {
        let count = try flow.queue.poll(into: completions)
        for index in 0..<count {
            let completion = completions[index]
            flow.outstanding -= 1
            guard completion.status == .success else { throw RDMAError(operation: "WRITE completion", kind: .unsupported, hint: "\(completion.status)") }
            flow.bytesThisInterval += messageBytes
        }
        while flow.outstanding < depth {
            let request = SendWorkRequest(id: 1, operation: .write(flow.remote.slice(offset: 0, length: UInt32(messageBytes))))
            try flow.pair.post(request, scatterGather: flow.region.scatterGather(offset: 0, length: messageBytes))
            flow.outstanding += 1
        }
        return count
    }
}

extension DCQCNParameters {
    /// The preset for a link `rate` times slower, running `time` times slower: every timer
    /// lasts `time` times longer, every rate step is `rate` times smaller, and B covers the
    /// same share of a timer period (× time / rate); g, α and F stay. With `time == rate` the
    /// lab is the original fabric in slow motion, packet for packet — too slow to watch when a
    /// 40 Gb/s preset meets a link of a few Mb/s, hence the two factors.
    func scaled(time: Double, rate: Double) -> DCQCNParameters {
        var scaled = self
        func longer(_ span: Nanoseconds) -> Nanoseconds { Nanoseconds(Int64((Double(span.rawValue) * time).rounded())) }
        scaled.alphaUpdatePeriod = longer(alphaUpdatePeriod)
        scaled.rateIncreaseTimer = longer(rateIncreaseTimer)
        scaled.minimumCNPInterval = longer(minimumCNPInterval)
        scaled.additiveIncreaseBitsPerSecond = additiveIncreaseBitsPerSecond / rate
        scaled.hyperIncreaseBitsPerSecond = hyperIncreaseBitsPerSecond / rate
        scaled.minimumRateBitsPerSecond = minimumRateBitsPerSecond / rate
        scaled.byteCounterBytes = max(1, Int((Double(byteCounterBytes) * time / rate).rounded()))
        return scaled
    }
}
