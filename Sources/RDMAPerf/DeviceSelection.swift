import Foundation
import RDMA

/// Which RDMA implementation a tool runs on (`-d NAME`, `--soft ADDR`, or neither).
///
/// ```swift
/// let opened = try DeviceSelection.open(.automatic, port: 1, gidIndex: nil) { print($0) }
/// print(opened.path)   // "verbs device rxe0: first device with an active port"
/// ```
public enum BackendChoice: Equatable, Sendable, CustomStringConvertible {
    /// A libibverbs device by name: hardware or kernel rxe.
    case verbs(name: String)
    /// The userspace RoCEv2 engine bound to an IPv4 address.
    case soft(address: String)
    /// An active verbs device → a kernel rxe created for the run → the soft engine on loopback.
    case automatic

    public var description: String {
        switch self {
        case .verbs(let name): "-d \(name)"
        case .soft(let address): "--soft \(address)"
        case .automatic: "automatic"
        }
    }
}

/// A device opened for a run: the context, the port and GID index to use, a sentence
/// saying which path was taken and why, and what to undo afterwards.
public final class OpenedDevice: @unchecked Sendable {
    public let context: Context
    public let port: UInt8
    public let gidIndex: Int
    /// "verbs device rxe0 (…): why" — printed by the tools.
    public let path: String
    /// Largest message the port takes.
    public let maxMessageSize: Int
    public let activeMTU: PathMTU
    private var cleanup: (() -> Void)?

    init(context: Context, port: UInt8, gidIndex: Int, path: String, maxMessageSize: Int,
         activeMTU: PathMTU, cleanup: (() -> Void)?) {
        self.context = context
        self.port = port
        self.gidIndex = gidIndex
        self.path = path
        self.maxMessageSize = maxMessageSize
        self.activeMTU = activeMTU
        self.cleanup = cleanup
    }

    /// The loopback peer's device: on the same verbs device; for the soft engine on
    /// 127.x.y.z a second engine on the next loopback address (each side then drives its
    /// own engine), elsewhere the same engine. Same port, GID index and path as this one.
    public func openLoopbackPeer() throws(PerfError) -> OpenedDevice {
        let peerContext: Context
        if let address = softAddress, let next = DeviceSelection.nextLoopbackAddress(after: address) {
            do { peerContext = try Context(soft: softSettings.configuration(address: next, capturing: false)) } catch {
                throw PerfError("cannot start the loopback peer's soft engine on \(next): \(error)")
            }
        } else {
            do { peerContext = try Context(device: context.device) } catch {
                throw PerfError("cannot open \(context.device.name) a second time: \(error)")
            }
        }
        let peer = OpenedDevice(context: peerContext, port: port, gidIndex: gidIndex, path: path,
                                maxMessageSize: maxMessageSize, activeMTU: activeMTU, cleanup: nil)
        peer.completionEvents = completionEvents
        return peer
    }

    /// `-e`: the runs on this device wait for completions on a completion channel
    /// (`ibv_req_notify_cq`, `ibv_get_cq_event`) instead of busy-polling, as perftest's -e.
    public var completionEvents = false

    /// The soft engine's address, nil on verbs.
    public var softAddress: String?
    /// How the soft engine was opened (its loopback peer checks the same way; the capture,
    /// which sees both directions already, stays with the first engine).
    public var softSettings = SoftEngineSettings()

    /// The soft engine progresses only when someone polls; a side that waits on the
    /// exchange instead (the target of WRITE/READ) lets a background thread drive it.
    public func backgroundProgress(_ on: Bool) {
        if on { context.startBackgroundProgress() } else { context.stopBackgroundProgress() }
    }

    /// Closes the context and removes what the run created (a kernel rxe link). Idempotent.
    public func close() {
        try? context.close()
        cleanup?()
        cleanup = nil
    }

    deinit { close() }
}

/// Opens the device a `BackendChoice` names, and explains the choice.
public enum DeviceSelection {
    /// Whether this build contains the userspace engine.
    public static let softEngineAvailable = true

    /// `softFallback`: where the automatic choice puts the soft engine (127.0.0.1 for a
    /// server or a loopback run, 127.0.0.2 for a client, so both fit on one host).
    public static func open(_ choice: BackendChoice, port: UInt8, gidIndex: Int?, softFallback: String = "127.0.0.1",
                            soft settings: SoftEngineSettings = SoftEngineSettings(), log: (String) -> Void) throws(PerfError) -> OpenedDevice {
        switch choice {
        case .verbs(let name):
            let context: Context
            do { context = try Context(deviceNamed: name) } catch {
                throw .usage("unknown device \"\(name)\"", hint: error.hint ?? "\(error)")
            }
            return try finish(context, port: port, gidIndex: gidIndex, why: "named with -d", cleanup: nil)
        case .soft(let address):
            return try openSoft(address: address, gidIndex: gidIndex, settings: settings, why: "named with --soft")
        case .automatic:
            var reasons: [String] = []
            if let (context, why) = firstActiveVerbsDevice(port: port, reasons: &reasons) {
                let opened = try finish(context, port: port, gidIndex: gidIndex, why: why, cleanup: nil)
                return opened
            }
            switch KernelRXE.create(log: log) {
            case .created(let name, let netdev):
                do {
                    let context = try Context(deviceNamed: name)
                    return try finish(context, port: port, gidIndex: gidIndex,
                                      why: "no active verbs device (\(reasons.joined(separator: "; "))): created kernel rxe \(name) on \(netdev) for this run; removed afterwards",
                                      cleanup: { KernelRXE.remove(name) })
                } catch let error as PerfError {
                    KernelRXE.remove(name)
                    throw error
                } catch {
                    KernelRXE.remove(name)
                    throw PerfError("kernel rxe \(name) was created but cannot be opened: \(error)")
                }
            case .impossible(let why):
                reasons.append("kernel rxe: \(why)")
            }
            if softEngineAvailable {
                return try openSoft(address: softFallback, gidIndex: gidIndex, settings: settings,
                                    why: "no verbs device and no kernel rxe (\(reasons.joined(separator: "; "))): the userspace engine on loopback")
            }
            throw PerfError("no RDMA device to run on",
                            hint: "\(reasons.joined(separator: "; ")); the userspace engine (--soft) is not in this build. Load rdma_rxe (tools/rxe-setup) or run inside tools/rxe-lab",
                            exitCode: 2)
        }
    }

    static func openSoft(address: String, gidIndex: Int?, settings: SoftEngineSettings, why: String) throws(PerfError) -> OpenedDevice {
        let context: Context
        do { context = try Context(soft: settings.configuration(address: address)) } catch {
            throw .usage("--soft \(address): cannot start the userspace engine: \(error)",
                         hint: "give an address of this host that no other soft engine uses (UDP 4791)")
        }
        let checking = context.softICRCVerification.map { "ICRC \($0)" } ?? ""
        let capturing = settings.capture.map { ", capturing to \($0.path)" } ?? ""
        let opened = try finish(context, port: 1, gidIndex: gidIndex, why: why, cleanup: nil,
                                kind: "userspace RoCEv2 engine (soft) on \(address):4791, \(checking)\(capturing)")
        opened.softAddress = address
        opened.softSettings = settings
        return opened
    }

    /// 127.a.b.c → 127.a.b.(c+1); nil outside 127/8.
    static func nextLoopbackAddress(after address: String) -> String? {
        let parts = address.split(separator: ".").compactMap { UInt8($0) }
        guard parts.count == 4, parts[0] == 127, parts[3] < 254 else { return nil }
        return "127.\(parts[1]).\(parts[2]).\(parts[3] + 1)"
    }

    private static func firstActiveVerbsDevice(port: UInt8, reasons: inout [String]) -> (Context, String)? {
        let devices: [Device]
        do { devices = try Device.all() } catch {
            reasons.append("verbs: \(error.hint ?? "\(error)")")
            return nil
        }
        if devices.isEmpty { reasons.append("verbs: no device") }
        for device in devices {
            guard let context = try? Context(device: device) else {
                reasons.append("\(device.name): cannot be opened")
                continue
            }
            if let attributes = try? context.portAttributes(port: port), attributes.state == .active {
                return (context, "first verbs device with port \(port) active")
            }
            reasons.append("\(device.name): port \(port) not active")
            try? context.close()
        }
        return nil
    }

    private static func finish(_ context: Context, port: UInt8, gidIndex: Int?, why: String,
                               cleanup: (() -> Void)?, kind: String? = nil) throws(PerfError) -> OpenedDevice {
        let name = context.device.name
        let attributes: PortAttributes
        do { attributes = try context.portAttributes(port: port) } catch {
            try? context.close()
            throw .usage("\(name) has no port \(port)", hint: error.hint ?? "\(error)")
        }
        guard attributes.state == .active else {
            try? context.close()
            throw .usage("\(name) port \(port) is \(attributes.state), not active",
                         hint: "bring its netdev up (ip link set … up)")
        }
        let table = (try? context.gidTable(port: port)) ?? []
        let index: Int
        let gidWhy: String
        if let gidIndex {
            guard let entry = table.first(where: { $0.index == gidIndex }), !entry.gid.isZero else {
                try? context.close()
                let valid = table.filter { !$0.gid.isZero }.map { "\($0.index) (\($0.type), \($0.gid))" }
                throw .usage("bad GID index \(gidIndex) on \(name) port \(port)",
                             hint: "valid entries: \(valid.isEmpty ? "none" : valid.joined(separator: ", ")); omit -x to pick the IPv4-mapped RoCEv2 one")
            }
            index = gidIndex
            gidWhy = "GID index \(index) (-x)"
        } else if let entry = GIDEntry.preferredRoCEv2(in: table) {
            index = entry.index
            gidWhy = "GID index \(index) \(entry.gid) (the IPv4-mapped RoCEv2 entry; -x overrides)"
        } else if let entry = table.first(where: { !$0.gid.isZero }) {
            index = entry.index
            gidWhy = "GID index \(index) \(entry.gid) (no IPv4-mapped RoCEv2 entry; first valid one)"
        } else {
            try? context.close()
            throw .usage("\(name) port \(port) has no usable GID", hint: "give its netdev an IP address")
        }
        return OpenedDevice(context: context, port: port, gidIndex: index,
                            path: "\(kind ?? "verbs device \(name) port \(port)"), \(gidWhy): \(why)",
                            maxMessageSize: Int(attributes.maxMessageSize),
                            activeMTU: attributes.activeMTU ?? .mtu1024, cleanup: cleanup)
    }
}

/// Creating a kernel Soft-RoCE device for one run (what `tools/rxe-setup` does), when the
/// kernel has rdma_rxe and we are root.
enum KernelRXE {
    enum Outcome { case created(name: String, netdev: String), impossible(String) }

    static func create(log: (String) -> Void) -> Outcome {
        guard geteuid() == 0 else { return .impossible("not root") }
        let hasModule = FileManager.default.fileExists(atPath: "/sys/module/rdma_rxe")
            || run("/sbin/modprobe", ["rdma_rxe"]).status == 0
        guard hasModule else { return .impossible("the kernel has no rdma_rxe module") }
        guard let netdev = defaultRouteInterface(run("/sbin/ip", ["-4", "route", "show", "default"]).output) else {
            return .impossible("no IPv4 default route to pick an interface from (tools/rxe-setup --netdev IF picks one by hand)")
        }
        let name = "perfrxe\(getpid() % 1000)"
        let result = run("/usr/bin/rdma", ["link", "add", name, "type", "rxe", "netdev", netdev])
        guard result.status == 0 else {
            return .impossible("`rdma link add \(name) type rxe netdev \(netdev)` failed: \(result.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        log("created kernel rxe \(name) on \(netdev) (removed at exit)")
        return .created(name: name, netdev: netdev)
    }

    /// The interface carrying the IPv4 default route (`dev X` in `ip -4 route show
    /// default`): the same rule as `tools/rxe-setup`, so the tools and the setup script put
    /// rxe on the same netdev.
    static func defaultRouteInterface(_ routes: String) -> String? {
        for line in routes.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.first == "default", let index = words.firstIndex(of: "dev"), index + 1 < words.count else { continue }
            return String(words[index + 1])
        }
        return nil
    }

    static func remove(_ name: String) {
        _ = run("/usr/bin/rdma", ["link", "delete", name])
    }

    /// Runs a short system command, bounded to 10 s.
    static func run(_ path: String, _ arguments: [String]) -> (status: Int32, output: String) {
        guard FileManager.default.isExecutableFile(atPath: path) else { return (127, "\(path) not found") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (127, "\(error)") }
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate(); return (124, "timed out") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

extension CommonOptions {
    /// Opens the device these options choose and prints the path taken (`<tool>: …`). A
    /// client falls back to the soft engine on 127.0.0.2 so that a server on 127.0.0.1 can
    /// share the machine.
    func openDevice(tool: String) throws(PerfError) -> OpenedDevice {
        let opened = try DeviceSelection.open(try backendChoice(), port: ibPort, gidIndex: gidIndex,
                                              softFallback: server != nil && !loopback ? "127.0.0.2" : "127.0.0.1",
                                              soft: try softEngineSettings(), log: printError)
        opened.completionEvents = completionEvents
        printError("\(tool): \(opened.path)\(completionEvents ? "; waiting on completion events (-e)" : "")")
        return opened
    }
}
