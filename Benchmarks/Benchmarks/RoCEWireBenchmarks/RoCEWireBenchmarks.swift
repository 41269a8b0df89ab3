import Benchmark
import RoCEWire

// The per-packet receive path of the soft engine — parse, then check the ICRC — on a
// 4 KiB RDMA WRITE, next to the raw CRC-32 (ISA-L) over the same bytes, in the same run, so
// that their ratio is meaningful on a shared machine. Both must allocate nothing.
// tools/bench-rocewire prints the two in GB/s and their ratio.

/// One sealed RC RDMA WRITE MIDDLE packet with a 4 KiB payload (4112 bytes, BTH to ICRC),
/// built once before measuring.
nonisolated(unsafe) let packet4KiB: UnsafeRawBufferPointer = {
    let headers = TransportHeaders(BaseTransportHeader(opcode: .rcRDMAWriteMiddle, destinationQP: 0x12, psn: 77))
    let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 64)
    for index in payload.indices { payload[index] = UInt8(truncatingIfNeeded: index &* 31) }
    let length = RoCEPacket.serializedByteCount(headers: headers, payloadLength: payload.count)
    let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
    do {
        _ = try RoCEPacket.serialize(headers: headers, payload: UnsafeRawBufferPointer(payload), into: bytes)
        try ICRC.seal(transportPacket: bytes, encapsulation: flow)
    } catch {
        fatalError("building the benchmark packet: \(error)")
    }
    payload.deallocate()
    return UnsafeRawBufferPointer(bytes)
}()

let flow = RoCEEncapsulation(
    network: .ipv4(source: .init(10, 0, 0, 1), destination: .init(10, 0, 0, 2)),
    sourcePort: 0xC0DE
)

/// Packets per measured sample: enough that reading the clock is noise.
let packetsPerSample = 1000

let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.throughput, .wallClock, .mallocCountTotal],
        timeUnits: .microseconds,
        warmupIterations: 20,
        maxDuration: .seconds(3),
        maxIterations: 100_000
    )

    Benchmark("parse+ICRC verify 4 KiB", configuration: configuration) { benchmark in
        let bytes = packet4KiB
        benchmark.startMeasurement()
        for _ in 0 ..< packetsPerSample {
            do {
                let packet = try RoCEPacket(parsing: bytes)
                try ICRC.verify(transportPacket: bytes, encapsulation: flow)
                blackHole(packet.payloadRange)
            } catch {
                fatalError("benchmark packet rejected: \(error)")
            }
        }
        benchmark.stopMeasurement()
    }

    Benchmark("crc32 4 KiB", configuration: configuration) { benchmark in
        let bytes = packet4KiB
        benchmark.startMeasurement()
        for _ in 0 ..< packetsPerSample {
            blackHole(CRC32.update(0, bytes))
        }
        benchmark.stopMeasurement()
    }
}
