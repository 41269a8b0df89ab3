import Foundation
import Testing

/// Ctrl-C in the middle of `rdma-throughput --loopback`: the built tool is started, sent
/// SIGINT once its progress line says messages are moving, and must print the figures of
/// what moved and exit with status 130. Each run is bounded: the tool's own -D, and a
/// SIGKILL if it is still there long after.
@Suite("rdma-throughput --loopback: Ctrl-C keeps the figures", .serialized)
struct InterruptTests {
    /// The tool next to the test bundle (`swift build --build-tests` builds both).
    static var tool: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("rdma-throughput")
    }

    struct Outcome {
        var status: Int32
        var output: String
        var errors: String
    }

    /// Runs the tool with `arguments`, sends SIGINT after the first progress line (or never,
    /// if it ends first), and collects what it printed.
    static func interrupt(_ arguments: [String]) throws -> Outcome {
        let process = Process()
        process.executableURL = tool
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["RDMA_PERF_PROGRESS"] = "1"
        process.environment = environment
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // The safety bound: a tool that ignores SIGINT is killed, and the test fails on its status.
        let watchdog = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 120, execute: watchdog)
        defer { watchdog.cancel() }
        var errorText = ""
        let reader = errors.fileHandleForReading
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            errorText += String(decoding: chunk, as: UTF8.self)
            if errorText.contains("progress: ") {
                kill(process.processIdentifier, SIGINT)
                errorText += String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
                break
            }
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, output: text, errors: errorText)
    }

    @Test("the size under way is printed, both sides end cleanly, exit 130", arguments: [
        ["--op", "write"], ["--op", "send"], ["--op", "read"], ["--op", "write", "-b"], ["--op", "send", "-b", "-q", "2"],
        ["--op", "write", "--verify"],
    ])
    func interrupted(flags: [String]) throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.tool.path), "build the tool: swift build --build-tests")
        let outcome = try Self.interrupt(["--loopback", "--soft", "127.0.32.1", "-D", "60", "--json", "-"] + flags)
        #expect(outcome.status == 130, "\(outcome.errors)")
        // One JSON line: the figures of what moved before Ctrl-C.
        let line = try #require(outcome.output.split(separator: "\n").first, "no figures printed; stderr: \(outcome.errors)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let messages = try #require(object["iterations"] as? Int)
        #expect(messages > 0)
        #expect((object["bw_avg_mib_s"] as? Double ?? 0) > 0)
        #expect(outcome.errors.contains("error: interrupted (the figures above are what was measured)"), "\(outcome.errors)")
        #expect(!outcome.errors.contains("loopback server side"), "the server side failed: \(outcome.errors)")
        if flags.contains("--verify") { #expect((object["verified_bytes"] as? Int ?? 0) == messages * 65536) }
    }
}
