import ArgumentParser
import Foundation
import Testing
@testable import RDMAPerf

/// Every bad value of every flag is refused before anything is opened, with a non-zero exit
/// status and a message that names the flag (and its bounds).
@Suite("Flag table: bad values refused at parse time, naming the flag")
struct FlagTableTests {
    /// The message and exit status a command line ends with when it is refused before any
    /// device is opened; nil when it is accepted.
    static func refusal<Command: ParsableCommand>(_ type: Command.Type, _ arguments: [String],
                                                  parameters: (Command) throws(PerfError) -> Void) -> (message: String, status: Int32)? {
        let command: Command
        do { command = try type.parse(arguments) } catch {
            return (type.fullMessage(for: error), type.exitCode(for: error).rawValue)
        }
        do throws(PerfError) { try parameters(command) } catch { return ("\(error)", error.exitCode) }
        return nil
    }

    @Test("rdma-pingpong", arguments: [
        (["-s", "2G"], "-s"), (["-s", "1025M"], "-s"), (["-s", "0"], "-s"), (["-s", "-1"], "-s"),
        (["--timeout", "1e300"], "--timeout"), (["--timeout", "0"], "--timeout"), (["--timeout=-1"], "--timeout"),
        (["--timeout", "nan"], "--timeout"), (["--connect-timeout", "1e300"], "--connect-timeout"),
        (["--connect-timeout=-5"], "--connect-timeout"),
        (["-n", "4611686018427387904"], "-n"), (["-n", "99999999999999999999999"], "-n"), (["-n=-1"], "-n"), (["-n", "1"], "-n"),
        (["-I=-1"], "-I"), (["-I", "100000"], "-I"), (["-u", "255"], "-u"), (["-u", "32"], "-u"),
        (["-D", "0"], "-D"), (["-D", "1e300"], "-D"), (["-D=-1"], "-D"), (["--warmup=-1"], "--warmup"),
        (["--warmup", "99999999999"], "--warmup"), (["-x", "300"], "-x"), (["-m", "1000"], "-m"), (["-i", "0"], "-i"),
        (["-i", "256"], "-i"), (["-p", "0", "127.0.0.1"], "-p"), (["-p", "70000"], "-p"),
        (["--op", "teleport"], "--op"),
    ])
    func pingpong(arguments: [String], flag: String) throws {
        let refusal = try #require(Self.refusal(PingPongCommand.self, arguments) { command throws(PerfError) in _ = try command.parameters() },
                                   "\(arguments) was accepted")
        #expect(refusal.status != 0)
        #expect(refusal.message.contains(flag), "\(arguments): \(refusal.message)")
    }

    @Test("rdma-throughput", arguments: [
        (["-n", "1000000000", "-q", "1024"], "-n"), (["-q", "20000"], "-q"), (["-q", "0"], "-q"), (["-t=-1"], "-t"),
        (["-q", "1024", "-t", "8192"], "-q"), (["-Q", "0"], "-Q"), (["-Q", "70000"], "-Q"), (["-s", "2G"], "-s"),
        (["-n", "4611686018427387904"], "-n"), (["--timeout", "1e300"], "--timeout"), (["-I=-1"], "-I"), (["-u", "255"], "-u"),
        (["--timeout", "0"], "--timeout"),
        // ib_atomic_bw: "Message size cannot be changed for Atomic tests" (-a included).
        (["--op", "atomic", "-s", "64"], "-s"), (["--op", "atomic", "-a"], "-a"), (["--op", "atomic", "--verify"], "--verify"),
        // perftest refuses -D with -a; -D with SEND -b is not spoken over its exchange.
        (["--perftest", "-D", "2", "-a", "127.0.0.1"], "-a"), (["--perftest", "--op", "send", "-D", "2", "-b", "127.0.0.1"], "-b"),
    ])
    func throughput(arguments: [String], flag: String) throws {
        let refusal = try #require(Self.refusal(ThroughputCommand.self, arguments) { command throws(PerfError) in _ = try command.parameters() },
                                   "\(arguments) was accepted")
        #expect(refusal.status != 0)
        #expect(refusal.message.contains(flag), "\(arguments): \(refusal.message)")
    }

    @Test("the limits themselves are accepted: -s 1G, -n at its bound, -q 1024 at the default depth, -u 31")
    func bounds() throws {
        #expect(try PingPongCommand.parse(["-s", "1G", "-n", "\(1 << 24)", "-u", "31", "-I", "0"]).parameters().sizes == [1 << 30])
        #expect(try ThroughputCommand.parse(["-q", "1024", "-n", "\((1 << 32) / 1024)"]).parameters().queuePairs == 1024)
        #expect(try PingPongCommand.parse(["--timeout", "0.1", "--connect-timeout", "86400"]).parameters().progressTimeout == 0.1)
        #expect(try ThroughputCommand.parse(["--op", "atomic"]).parameters().sizes == [8], "an atomic moves 8 B")
        #expect(try ThroughputCommand.parse(["--op", "atomic", "-s", "8"]).parameters().sizes == [8])
    }
}
