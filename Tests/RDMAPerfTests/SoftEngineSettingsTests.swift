import Congestion
import Foundation
import RDMA
import Testing
@testable import RDMAPerf

/// `--icrc` / `SOFTROCE_ICRC` and `--pcap` / `SOFTROCE_PCAP`: parsed, refused by name when
/// wrong, and carried to the engines a run opens (the path line says which ICRC mode runs).
@Suite("Soft engine settings: --icrc, --pcap and their environment variables")
struct SoftEngineSettingsTests {
    @Test func flagsBeatTheEnvironmentWhichBeatsTheDefault() throws {
        let flags = try PingPongCommand.parse(["--icrc", "assume-id0", "--pcap", "/tmp/x.pcap"])
        #expect(try flags.common.softEngineSettings(environment: ["SOFTROCE_ICRC": "off", "SOFTROCE_PCAP": "/tmp/y.pcap"])
                == SoftEngineSettings(icrc: .assumeZeroIdentification, capture: PacketCapture(path: "/tmp/x.pcap")))
        let none = try PingPongCommand.parse([])
        #expect(try none.common.softEngineSettings(environment: ["SOFTROCE_ICRC": "off", "SOFTROCE_PCAP": "/tmp/y.pcap"])
                == SoftEngineSettings(icrc: .off, capture: PacketCapture(path: "/tmp/y.pcap")))
        #expect(try none.common.softEngineSettings(environment: [:]) == SoftEngineSettings())
    }

    @Test func dcqcnComesFromTheEnvironmentWithItsLineRate() throws {
        let none = try PingPongCommand.parse([])
        #expect(try none.common.softEngineSettings(environment: ["SOFTROCE_DCQCN": "mlx5Like:25"]).congestion
                == .dcqcn(.mlx5Like, lineRateBitsPerSecond: 25e9))
        #expect(try none.common.softEngineSettings(environment: ["SOFTROCE_DCQCN": "ns3MixConfig"]).congestion
                == .dcqcn(.ns3MixConfig, lineRateBitsPerSecond: 10e9))
        #expect(try none.common.softEngineSettings(environment: ["SOFTROCE_DCQCN": "off"]).congestion == .off)
        for bad in ["fastest", "mlx5Like:0", "mlx5Like:fast", "mlx5Like:1:2"] {
            do {
                _ = try none.common.softEngineSettings(environment: ["SOFTROCE_DCQCN": bad])
                Issue.record("SOFTROCE_DCQCN=\(bad) was accepted")
            } catch {
                #expect("\(error)".contains("SOFTROCE_DCQCN"), "\(error)")
            }
        }
    }

    @Test func badModesAreRefusedByName() throws {
        do {
            _ = try PingPongCommand.parse(["--icrc", "sometimes"])
            Issue.record("--icrc sometimes was accepted")
        } catch {
            #expect(PingPongCommand.fullMessage(for: error).contains("--icrc"), "\(PingPongCommand.fullMessage(for: error))")
            #expect(PingPongCommand.exitCode(for: error).rawValue != 0)
        }
        let none = try PingPongCommand.parse([])
        do {
            _ = try none.common.softEngineSettings(environment: ["SOFTROCE_ICRC": "sometimes"])
            Issue.record("SOFTROCE_ICRC=sometimes was accepted")
        } catch {
            #expect("\(error)".contains("SOFTROCE_ICRC"), "\(error)")
        }
    }

    /// A loopback run with --pcap writes a capture of both directions; the path line names the
    /// ICRC mode that runs.
    @Test func aLoopbackRunCapturesAndSaysHowItChecks() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rdmaperf-\(getpid()).pcap").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var lines: [String] = []
        let settings = SoftEngineSettings(icrc: .assumeZeroIdentification, capture: PacketCapture(path: path))
        let opened = try DeviceSelection.open(.soft(address: "127.0.41.1"), port: 1, gidIndex: nil, soft: settings) { lines.append($0) }
        defer { opened.close() }
        #expect(opened.path.contains("ICRC assume-id0"), "\(opened.path)")
        #expect(opened.path.contains("capturing to \(path)"), "\(opened.path)")
        let peer = try opened.openLoopbackPeer()
        defer { peer.close() }
        #expect(peer.context.softICRCVerification == .assumeZeroIdentification)
        // A SEND each way through the two engines, then the capture holds packets of both.
        let pairA = try LoopbackPair(opened), pairB = try LoopbackPair(peer)
        try pairA.connect(to: pairB)
        try pairB.queuePair.postReceive(id: 1, scatterGather: pairB.region.scatterGather(length: 64))
        try pairA.queuePair.post(SendWorkRequest(id: 1), scatterGather: pairA.region.scatterGather(length: 8))
        #expect(try pairB.queue.waitForCompletions(count: 1, timeout: .seconds(5)).count == 1)
        #expect(try pairA.queue.waitForCompletions(count: 1, timeout: .seconds(5)).count == 1)
        opened.close()
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        #expect(size > 24 + 2 * (16 + 28 + 12 + 4), "global header plus a SEND and an ACK: \(size) bytes")
    }
}

/// One RC queue pair with its CQ and a 4 KiB region on an opened device.
final class LoopbackPair {
    let queue: CompletionQueue
    let queuePair: QueuePair
    let region: MemoryRegion
    let opened: OpenedDevice
    init(_ opened: OpenedDevice) throws {
        self.opened = opened
        let domain = try ProtectionDomain(context: opened.context)
        queue = try CompletionQueue(context: opened.context, minimumEntries: 16)
        queuePair = try QueuePair(protectionDomain: domain, kind: .reliableConnected, sendCompletionQueue: queue, receiveCompletionQueue: queue)
        region = try MemoryRegion(protectionDomain: domain, length: 4096, access: .allRemote)
    }
    func connect(to other: LoopbackPair) throws {
        let mine = try queuePair.localEndpoint(gidIndex: opened.gidIndex, psn: 100)
        let theirs = try other.queuePair.localEndpoint(gidIndex: other.opened.gidIndex, psn: 200)
        try queuePair.connect(to: theirs, local: mine, options: ConnectionOptions(gidIndex: UInt8(opened.gidIndex)))
        try other.queuePair.connect(to: mine, local: theirs, options: ConnectionOptions(gidIndex: UInt8(other.opened.gidIndex)))
    }
}
