import CFuzzerDriver
#if canImport(Glibc)
import Glibc
#endif
import RDMA
import RDMAPerf

// libFuzzer entry point over the tools' exchange: every input is one line as a server
// reads it. Refusal (a PerfError naming a field) is the expected outcome for most inputs; a
// crash, a sanitizer report or a failed invariant below is a finding.

private let tools = ["rdma-pingpong", "rdma-throughput"]
private let limits = RunLimits.standard

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let line = UnsafeBufferPointer(start: data, count: size)
    guard let message = try? ControlMessage(line: line) else { return 0 }
    // What decodes must encode to a line that decodes to the same message.
    let again = try? ControlMessage(line: message.line.dropLast())
    precondition(again == message, "\(message) did not round-trip through its line")
    switch message {
    case .hello(let hello):
        for tool in tools {
            guard (try? limits.check(hello, server: tool)) != nil else { continue }
            // Accepted: every bound a server relies on before it allocates or slices holds.
            precondition(hello.shape.tool == tool && hello.version == Hello.protocolVersion)
            precondition(!hello.sizes.isEmpty && hello.sizes.count <= limits.maximumSizeCount)
            precondition(hello.sizes.allSatisfy { (1...limits.maximumSize).contains($0) })
            let largest = (max(8, hello.sizes.max()!) + 63) & ~63
            precondition(Int(hello.memory.length) >= 2 * largest, "memory shorter than the run touches")
            _ = hello.memory.slice(offset: UInt32(largest), length: UInt32(hello.sizes.max()!))
            switch hello.shape {
            case .latency(_, let warmup):
                precondition(hello.endpoints.count == 1 && (0...limits.maximumWarmup).contains(warmup))
            case .bandwidth(_, let queuePairs, _, let depth, let moderation):
                precondition(hello.endpoints.count == queuePairs && queuePairs * depth <= limits.maximumOutstanding)
                precondition((1...limits.maximumCompletionModeration).contains(moderation))
                if let iterations = hello.iterations { precondition(iterations.multipliedReportingOverflow(by: queuePairs).overflow == false) }
            }
            if let duration = hello.duration { precondition(duration > 0 && duration <= limits.maximumDuration) }
            for size in hello.sizes { precondition((try? limits.check(go: size, of: hello)) != nil) }
            _ = try? limits.check(go: 0, of: hello)
        }
    case .welcome(let welcome):
        let hello = Hello(shape: .latency(.send, warmup: 0), sizes: [64], iterations: 10, duration: nil,
                          endpoints: welcome.endpoints.isEmpty ? [] : [welcome.endpoints[0]], memory: welcome.memory)
        if (try? RunLimits.check(welcome, answering: hello)) != nil {
            _ = welcome.memory.slice(offset: 64, length: 64)
        }
    case .done(let count, _):
        _ = limits.doneCountLimit(iterations: max(0, min(count, 1 << 20)), queuePairs: 1)
    default:
        break
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOneInput($0, $1) })
