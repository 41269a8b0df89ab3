import Testing
@testable import RDMAPerf

@Suite("perftest flags")
struct OptionsTests {
    @Test("perftest's common flags mean what they mean there")
    func perftestFlags() throws {
        let command = try PingPongCommand.parse(["-d", "rxe0", "-i", "1", "-x", "3", "-s", "64", "-n", "500", "-m", "1024",
                                                 "-u", "16", "-I", "32", "-F", "-p", "20000", "10.0.0.1"])
        #expect(command.common.device == "rxe0")
        #expect(command.common.gidIndex == 3)
        #expect(command.size == ByteCount(64))
        #expect(command.common.iterations == 500)
        #expect(command.common.mtu == 1024)
        #expect(command.common.qpTimeout == 16)
        #expect(command.common.inlineSize == 32)
        #expect(command.common.port == 20000)
        #expect(command.common.server == "10.0.0.1")
        let parameters = try command.parameters()
        #expect(parameters.sizes == [64])
        #expect(parameters.iterations == 500)
        #expect(parameters.warmup == 50)
        #expect(try command.common.backendChoice() == .verbs(name: "rxe0"))
    }

    @Test("bandwidth flags, sweep and units")
    func bandwidthFlags() throws {
        let command = try ThroughputCommand.parse(["-a", "-q", "4", "-b", "-t", "64", "--report_gbits", "-D", "2", "--output", "bandwidth", "--soft", "127.0.0.2"])
        let parameters = try command.parameters()
        #expect(parameters.sizes.first == 2 && parameters.sizes.last == 1 << 23 && parameters.sizes.count == 23)
        #expect(parameters.queuePairs == 4 && parameters.bidirectional && parameters.sendDepth == 64)
        #expect(parameters.iterations == nil && parameters.duration == 2)
        #expect(command.reportGbits)
        #expect(command.common.output == .bandwidth)
        #expect(try command.common.backendChoice() == .soft(address: "127.0.0.2"))
        let defaults = try ThroughputCommand.parse([]).parameters()
        #expect(defaults.sizes == [65536] && defaults.iterations == 5000 && defaults.operation == .write)
        #expect(try ThroughputCommand.parse([]).common.backendChoice() == .automatic)
    }

    @Test("sizes take binary suffixes")
    func byteCounts() {
        #expect(ByteCount(argument: "64K")?.value == 65536)
        #expect(ByteCount(argument: "8M")?.value == 8 << 20)
        #expect(ByteCount(argument: "2")?.value == 2)
        #expect(ByteCount(argument: "0") == nil)
        #expect(ByteCount(argument: "x") == nil)
    }

    @Test("contradictions and unsupported flags are usage errors (exit 2)", arguments: [
        ["-a", "-s", "64"], ["-R", "-a"], ["-R", "--loopback"], ["-R", "-D", "2"], ["-n", "1"], ["-n", "100", "-D", "1"], ["-m", "1000"], ["--loopback", "host"],
        ["-d", "rxe0", "--soft", "127.0.0.1"], ["--op", "atomic", "-a"], ["-x", "300"],
        ["--perftest", "-a", "-D", "2", "h"], ["--perftest", "--op", "atomic", "-a", "h"],
        ["--perftest", "-c", "UD", "--op", "read", "h"], ["-c", "UD", "h"], ["-c", "UD", "--loopback"], ["-c", "UD", "-R", "h"],
        ["--perftest"],
    ])
    func usageErrors(arguments: [String]) throws {
        let command = try PingPongCommand.parse(arguments)
        #expect(throws: PerfError.self) {
            _ = try command.parameters()
            _ = try command.common.backendChoice()
        }
        do {
            _ = try command.parameters()
            _ = try command.common.backendChoice()
        } catch {
            #expect(error.exitCode == 2)
        }
    }
}

@Suite("rdma-pingpong --perftest")
struct PingPongPerftestOptionTests {
    @Test("-D over ib_send_lat's, ib_read_lat's and ib_atomic_lat's exchange", arguments: ["send", "read", "atomic"])
    func duration(operation: String) throws {
        let parameters = try PingPongCommand.parse(["--perftest", "--op", operation, "-D", "3", "h"]).parameters()
        #expect(parameters.duration == 3 && parameters.iterations == nil)
    }

    @Test("-a over perftest's exchange (ib_send_lat, ib_write_lat, ib_read_lat -a): 2 B … 8 MiB", arguments: ["send", "write", "read"])
    func allSizes(operation: String) throws {
        let parameters = try PingPongCommand.parse(["--perftest", "--op", operation, "-a", "-n", "10", "h"]).parameters()
        #expect(parameters.sizes == (1...23).map { 1 << $0 })
        #expect(parameters.iterations == 10)
    }
}

@Suite("rdma-throughput --perftest")
struct ThroughputPerftestOptionTests {
    @Test("ib_*_bw's exchange only: as a client; no -D with -a (perftest refuses it), nor with SEND -b; -c UD only with SEND, without -b; no --verify", arguments: [
        ["--perftest", "-a", "-D", "2", "h"], ["--perftest", "--op", "send", "-b", "-D", "2", "h"],
        ["--perftest", "--loopback"], ["--perftest"], ["--perftest", "--verify", "h"],
        ["--perftest", "-c", "UD", "h"], ["-c", "UD", "--op", "send", "h"], ["--perftest", "-c", "UD", "--op", "send", "-b", "h"],
        ["-c", "UD", "--op", "send", "--loopback"], ["--op", "atomic", "-s", "16"],
    ])
    func refused(arguments: [String]) throws {
        let command = try ThroughputCommand.parse(arguments)
        do {
            _ = try command.parameters()
            Issue.record("\(arguments) accepted")
        } catch {
            #expect(error.exitCode == 2)
        }
    }

    @Test("-b over every ib_*_bw's exchange, with -a too", arguments: ["write", "read", "send", "atomic"])
    func bidirectional(operation: String) throws {
        let command = try ThroughputCommand.parse(["--perftest", "--op", operation, "-b", "-q", "2", "h"])
        #expect(try command.parameters().bidirectional)
        if operation != "atomic" { #expect(try ThroughputCommand.parse(["--perftest", "--op", operation, "-a", "-b", "h"]).parameters().sizes.count == 23) }
    }

    @Test("-D over every ib_*_bw's exchange; -c UD with SEND", arguments: ["write", "read", "send", "atomic"])
    func durationAndDatagrams(operation: String) throws {
        #expect(try ThroughputCommand.parse(["--perftest", "--op", operation, "-D", "2", "h"]).parameters().duration == 2)
        if operation == "send" { #expect(try ThroughputCommand.parse(["--perftest", "--op", "send", "-c", "UD", "h"]).parameters().sizes == [65536]) }
    }

    @Test("a plain WRITE, READ or SEND client is accepted (ib_write_bw, ib_read_bw, ib_send_bw)", arguments: ["write", "read", "send"])
    func accepted(operation: String) throws {
        let command = try ThroughputCommand.parse(["--perftest", "--op", operation, "-s", "4096", "-n", "100", "h"])
        #expect(try command.parameters().sizes == [4096])
    }

    @Test("-a over ib_write_bw's, ib_read_bw's and ib_send_bw's exchange (sizes 2 … 2^23)", arguments: ["write", "read", "send"])
    func allSizes(operation: String) throws {
        let command = try ThroughputCommand.parse(["--perftest", "--op", operation, "-a", "-n", "20", "h"])
        #expect(try command.parameters().sizes == (1...23).map { 1 << $0 })
    }

    @Test("-q > 1 over perftest's exchange (ib_*_bw -q N: a key line per QP)", arguments: ["write", "read", "send"])
    func severalQueuePairs(operation: String) throws {
        let command = try ThroughputCommand.parse(["--perftest", "--op", operation, "-q", "4", "-n", "100", "h"])
        #expect(try command.parameters().queuePairs == 4)
    }
}
