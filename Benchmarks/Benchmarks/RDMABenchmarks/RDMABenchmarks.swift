import Benchmark
import RDMA

// The data path of the verbs backend is: build work requests into the C structs, post,
// poll. Posting and polling are single calls into libibverbs; what Swift adds is the
// building, so that is what is measured here — and it must not allocate. The control
// benchmark builds the same requests into a fresh Swift array, to show that the malloc
// counter does see allocations when there are some.

let benchmarks: @Sendable () -> Void = {
    let remote = RemoteMemory(address: 0x10_0000, rkey: 0x1234, length: 1 << 20)
    let chainLength = 16
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        scalingFactor: .kilo,
        maxDuration: .seconds(3)
    )

    Benchmark("SendRequestChain: 16 WRITE/SEND requests into ibv_send_wr", configuration: configuration) { benchmark in
        let chain = SendRequestChain(capacity: chainLength)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            chain.removeAll()
            for index in 0..<chainLength {
                let element = ScatterGatherElement(address: 0x20_0000 + UInt64(index) * 64, length: 64, lkey: 7)
                let operation: SendOperation = index.isMultiple(of: 2)
                    ? .write(remote.slice(offset: UInt32(index) * 64, length: 64)) : .sendWithImmediate(UInt32(index))
                try chain.append(SendWorkRequest(id: UInt64(index), operation: operation,
                                                 flags: index == chainLength - 1 ? .signaled : []),
                                 scatterGather: element)
            }
            blackHole(chain.count)
        }
    }

    Benchmark("ReceiveRequestChain: 16 receives into ibv_recv_wr", configuration: configuration) { benchmark in
        let chain = ReceiveRequestChain(capacity: chainLength)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            chain.removeAll()
            for index in 0..<chainLength {
                try chain.append(id: UInt64(index),
                                 scatterGather: ScatterGatherElement(address: 0x20_0000 + UInt64(index) * 4096, length: 4096, lkey: 7))
            }
            blackHole(chain.count)
        }
    }

    Benchmark("Control: 16 requests into a fresh Swift array (allocates)", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            var requests = [SendWorkRequest]()
            for index in 0..<chainLength {
                requests.append(SendWorkRequest(id: UInt64(index), operation: .write(remote)))
            }
            blackHole(requests)
        }
    }

    softDataPathBenchmarks()
}
