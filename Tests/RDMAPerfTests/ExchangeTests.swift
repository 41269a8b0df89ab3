import Foundation
import RDMA
import Testing
@testable import RDMAPerf

@Suite("Out-of-band exchange and bad input without a device")
struct ExchangeTests {
    @Test("a port in use is a clear usage error")
    func portInUse() throws {
        let first = try ControlListener(port: 0)
        defer { first.close() }
        do {
            _ = try ControlListener(port: first.port)
            Issue.record("a second listener on the same port succeeded")
        } catch {
            #expect(error.exitCode == 2)
            #expect(error.message.contains("TCP port \(first.port) is in use"))
        }
    }

    @Test("a server that is not listening fails within the connect timeout")
    func notListening() throws {
        let probe = try ControlListener(port: 0)
        let port = probe.port
        probe.close()
        let start = Date()
        do {
            _ = try connectControl(host: "127.0.0.1", port: port, timeout: 0.5)
            Issue.record("connected to a closed port")
        } catch {
            #expect(error.exitCode == 3)
            #expect(error.message.contains("not answering"))
        }
        #expect(Date().timeIntervalSince(start) < 3)
    }

    @Test("messages round-trip; a silent peer times out; a closed peer is reported")
    func roundTripAndTimeouts() throws {
        let listener = try ControlListener(port: 0)
        let client = try connectControl(host: "127.0.0.1", port: listener.port, timeout: 2)
        let server = try listener.accept(timeout: 2)
        let hello = ControlMessage.hello(Hello(shape: .latency(.read, warmup: 3), sizes: [2, 4], iterations: 100, duration: nil,
                                               endpoints: [], memory: RemoteMemory(address: 0x1000, rkey: 7, length: 128)))
        try client.send(hello)
        let received = try server.receive(timeout: 2, waitingFor: "hello")
        #expect(received == hello)
        #expect(try server.poll() == nil)
        let start = Date()
        #expect(throws: PerfError.self) { _ = try server.receive(timeout: 0.3, waitingFor: "nothing") }
        #expect(Date().timeIntervalSince(start) < 2)
        client.close()
        do {
            _ = try server.receive(timeout: 2, waitingFor: "anything")
            Issue.record("read from a closed peer succeeded")
        } catch {
            #expect(error.message.contains("closed the exchange connection"))
        }
    }

    @Test("a peer that is not ours (e.g. perftest) is named as such")
    func foreignPeer() throws {
        let listener = try ControlListener(port: 0)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = listener.port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let status = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(status == 0)
        let line = "0000:0000:000011:abcdef:00001234:00007f0000001000\n"
        _ = line.withCString { send(fd, $0, strlen($0), 0) }
        let server = try listener.accept(timeout: 2)
        do {
            _ = try server.receive(timeout: 2, waitingFor: "hello")
            Issue.record("parsed a perftest key line as ours")
        } catch {
            #expect(error.refusedField == "message")
            #expect(error.message.contains("not a JSON exchange message"))
        }
        close(fd)
    }

    @Test("unknown device and --soft without the engine: clear message, exit 2")
    func devices() {
        do {
            _ = try DeviceSelection.open(.verbs(name: "no-such-device0"), port: 1, gidIndex: nil) { _ in }
            Issue.record("opened a device that does not exist")
        } catch {
            #expect(error.exitCode == 2)
            #expect(error.message.contains("unknown device \"no-such-device0\""))
        }
        if !DeviceSelection.softEngineAvailable {
            do {
                _ = try DeviceSelection.open(.soft(address: "127.0.0.2"), port: 1, gidIndex: nil) { _ in }
            } catch {
                #expect(error.message.contains("not in this build"))
            }
        }
    }
}

@Suite("perftest's exchange format")
struct PerftestWireTests {
    @Test("key line: 108 bytes in KEY_PRINT_FMT_GID, and back")
    func keyLine() throws {
        let gid = try #require(GID("::ffff:10.239.255.1"))
        let key = PerftestKey(lid: 0, outstandingReads: 1, queuePairNumber: 0x19, psn: 0x1560da, rkey: 0x612,
                              virtualAddress: 0x5639_84c2_e000, gid: gid)
        let message = key.message
        #expect(message.count == PerftestKey.messageSize)
        #expect(message.last == 0)
        let text = String(decoding: message.dropLast(), as: UTF8.self)
        #expect(text == "0000:0001:000019:1560da:00000612:0000563984c2e000:00:00:00:00:00:00:00:00:00:00:ff:ff:0a:ef:ff:01:00000000:")
        #expect(PerftestKey(message: message) == key)
        #expect(PerftestKey(message: Array("{\"cmd\":\"hello\"}".utf8)) == nil)
    }

    @Test("ib_write_lat's marker is the running count as a C char: 1…255, then 0, 1…")
    func writeMarker() {
        #expect(PerftestLatency.writeMarker(1) == 1)
        #expect(PerftestLatency.writeMarker(255) == 255)
        #expect(PerftestLatency.writeMarker(256) == 0)
        #expect(PerftestLatency.writeMarker(257) == 1)
        #expect(PerftestLatency.writeMarker(1000) == UInt8(1000 % 256))
    }

    @Test("key-line exchanges: ib_send_lat 1 + 3 (+ close), ib_write_lat 2 + 2")
    func keyExchanges() {
        #expect(PerftestLatency.keyExchanges(for: .send) == (1, 3))
        #expect(PerftestLatency.keyExchanges(for: .write) == (2, 2))
    }

    @Test("ib_write_bw's report: five 8-byte big-endian fields (doubles as IEEE bits), and back")
    func bandwidthReport() throws {
        let report = PerftestBandwidthReport(size: 65536, iterations: 5000, peakMiBps: 48.25, averageMiBps: 44.8,
                                             messageRateMpps: 0.000717)
        let fields = report.fields
        #expect(fields.count == 5 && fields.allSatisfy { $0.count == 8 })
        #expect(fields[0] == [0, 0, 0, 0, 0, 1, 0, 0])
        #expect(fields[1] == [0, 0, 0, 0, 0, 0, 0x13, 0x88])
        #expect(fields[2] == [0x40, 0x48, 0x20, 0, 0, 0, 0, 0])   // 48.25 as a big-endian double
        #expect(PerftestBandwidthReport(fields: fields) == report)
        #expect(PerftestBandwidthReport(fields: Array(fields.prefix(4))) == nil)
    }
}

@Suite("Device selection")
struct DeviceSelectionTests {
    @Test("a kernel rxe goes on the default-route interface, as tools/rxe-setup puts it")
    func netdevRule() {
        #expect(KernelRXE.defaultRouteInterface("default via 10.0.2.2 dev eth0 proto dhcp src 10.0.2.15 metric 100\n") == "eth0")
        #expect(KernelRXE.defaultRouteInterface("default dev wg0 scope link\ndefault via 10.0.0.1 dev eth1\n") == "wg0")
        #expect(KernelRXE.defaultRouteInterface("10.0.0.0/24 dev eth0 proto kernel scope link\n") == nil)
        #expect(KernelRXE.defaultRouteInterface("") == nil)
    }

    @Test("automatic without any backend names every step it tried and exits 2")
    func automaticWithoutBackend() throws {
        guard (try? Device.all())?.isEmpty ?? true, ProcessInfo.processInfo.environment["RDMA_TEST_DEVICE"] == nil,
              !DeviceSelection.softEngineAvailable else { return }   // a machine with RDMA: nothing to check here
        do {
            _ = try DeviceSelection.open(.automatic, port: 1, gidIndex: nil) { _ in }
            Issue.record("opened a device on a machine without RDMA")
        } catch {
            #expect(error.exitCode == 2)
            #expect(error.message == "no RDMA device to run on")
            #expect(error.hint?.contains("kernel rxe:") == true)
            #expect(error.hint?.contains("not in this build") == true)
        }
    }
}
