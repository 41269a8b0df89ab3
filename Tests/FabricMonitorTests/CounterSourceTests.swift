import Foundation
import Testing
@testable import FabricMonitor
import RDMA

/// A fake `/sys/class/infiniband` in a temporary folder.
struct FakeSysfs {
    let root: String

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("fake-ib-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func write(device: String, port: Int, folder: String, _ counters: [String: String]) throws {
        let path = "\(root)/\(device)/ports/\(port)/\(folder)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, value) in counters {
            try value.write(toFile: "\(path)/\(name)", atomically: true, encoding: .utf8)
        }
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}

@Suite struct SysfsSourceTests {
    @Test func readsRxeHardwareCountersAndMlx5Names() throws {
        let sysfs = try FakeSysfs()
        defer { sysfs.remove() }
        try sysfs.write(device: "rxe0", port: 1, folder: "hw_counters",
                        ["sent_pkts": "1200\n", "rcvd_pkts": "1100\n", "rcvd_seq_err": "3\n", "lifespan": "10\n"])
        try sysfs.write(device: "mlx5_0", port: 1, folder: "counters", ["port_rcv_data": "4096\n", "port_xmit_data": "8192\n"])
        try sysfs.write(device: "mlx5_0", port: 1, folder: "hw_counters",
                        ["np_cnp_sent": "17\n", "rp_cnp_handled": "16\n", "np_ecn_marked_roce_packets": "40\n",
                         "out_of_sequence": "2\n", "bogus": "not a number\n"])
        let source = try SysfsRDMASource(root: sysfs.root, node: "host1")
        let ports = try source.read().ports
        #expect(ports.map(\.key) == [PortKey(node: "host1", device: "mlx5_0", port: 1), PortKey(node: "host1", device: "rxe0", port: 1)])
        let mlx5 = ports[0], rxe = ports[1]
        #expect(mlx5.kind == .rdma)
        #expect(mlx5.counters == ["port_rcv_data": 4096, "port_xmit_data": 8192, "np_cnp_sent": 17, "rp_cnp_handled": 16,
                                  "np_ecn_marked_roce_packets": 40, "out_of_sequence": 2])
        #expect(rxe.counters == ["sent_pkts": 1200, "rcvd_pkts": 1100, "rcvd_seq_err": 3])   // lifespan is a setting
    }

    @Test func unknownDeviceNamesTheOnesPresent() throws {
        let sysfs = try FakeSysfs()
        defer { sysfs.remove() }
        try sysfs.write(device: "rxe0", port: 1, folder: "hw_counters", ["sent_pkts": "1\n"])
        #expect(throws: MonitorError("device mlx5_9", "no such RDMA device under \(sysfs.root) (present: rxe0); create one with `rdma link add rxe0 type rxe netdev eth0`, or read a snapshot file")) {
            _ = try SysfsRDMASource(root: sysfs.root, devices: ["mlx5_9"])
        }
        let only = try SysfsRDMASource(root: sysfs.root, devices: ["rxe0"])
        #expect(try only.read().ports.count == 1)
    }

    @Test func missingRootReadsAsNoDevices() throws {
        let source = try SysfsRDMASource(root: "/nonexistent/infiniband")
        #expect(try source.read().ports.isEmpty)
    }
}

@Suite struct EthtoolSourceTests {
    @Test func loopbackAnswersWithNoStatistics() throws {
        let source = try EthtoolSource(interfaces: ["lo"])
        #expect(try source.read().ports.map(\.counters) == [[:]])
        source.close()
        source.close()
        #expect(throws: MonitorError("ethtool lo", "the source was closed")) { _ = try source.read() }
    }

    @Test func unknownInterfaceIsNamed() {
        #expect(throws: MonitorError("SIOCETHTOOL ETHTOOL_GSSET_INFO on nosuch0", "no such network interface (see `ip link`)")) {
            _ = try EthtoolSource(interfaces: ["nosuch0"])
        }
    }

    /// A veth pair gives real ETHTOOL_GSTRINGS/GSTATS answers (its queue counters); needs
    /// root and iproute2, else it is skipped.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip")))
    func vethStatisticsThroughTheIoctl() throws {
        let name = "rmon\(getpid() % 100_000)"
        #expect(run("ip", "link", "add", name, "type", "veth", "peer", "name", "\(name)p") == 0)
        defer { _ = run("ip", "link", "del", name) }
        let source = try EthtoolSource(interfaces: [name], node: "here")
        let port = try source.read().ports[0]
        #expect(port.key == PortKey(node: "here", device: name))
        #expect(port.kind == .ethernet)
        #expect(port.counters["peer_ifindex"] != nil)       // veth's first statistic
        #expect(port.counters.keys.contains { $0.hasPrefix("rx_queue_0_") })
        #expect(port.counters.keys.allSatisfy { $0 == $0.trimmingWhitespace() && !$0.isEmpty })
    }

    func run(_ arguments: String...) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        do { try process.run() } catch { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

@Suite struct SoftEngineSourceTests {
    @Test func readsTheEnginesCountersUnderRxeNames() throws {
        let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
        defer { try? context.close() }
        let ports = try SoftEngineSource(contexts: [context], node: "me").read().ports
        #expect(ports.count == 1)
        #expect(ports[0].kind == .soft)
        #expect(ports[0].key.port == 1)
        #expect(ports[0].counters["sent_pkts"] == 0)
        #expect(ports[0].counters["rcvd_seq_err"] == 0)
        #expect(ports[0].counters["soft_icrc_err"] == 0)
        try context.close()
        #expect(try SoftEngineSource(contexts: [context]).read().ports.isEmpty)
    }
}
