import CFuzzerDriver
#if canImport(Glibc)
import Glibc
#endif
import RoCEWire

// libFuzzer entry point: every input is tried as a UDP payload (BTH onward) and as a whole
// IP packet. Rejection with a RoCEWireError is the expected outcome for most inputs; a
// crash, a sanitizer report or a failed invariant below is a finding.

private let flows = [
    RoCEEncapsulation(network: .ipv4(source: .init(10, 0, 0, 1), destination: .init(10, 0, 0, 2)), sourcePort: 0xC000),
    RoCEEncapsulation(network: .ipv6(source: .init(high: 0xFE80 << 48, low: 1), destination: .init(high: 0xFE80 << 48, low: 2)),
                      sourcePort: 0xC001),
]

/// Scratch for re-serializing what was parsed; allocated once, not per input.
private nonisolated(unsafe) let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 17, alignment: 16)

// Exported under libFuzzer's name as well: its (unused) main() refers to it.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    checkTransportPacket(bytes)
    checkIPPacket(bytes)
    return 0
}

private func checkTransportPacket(_ bytes: UnsafeRawBufferPointer) {
    for flow in flows {
        _ = try? ICRC.verify(transportPacket: bytes, encapsulation: flow)
    }
    guard let packet = try? RoCEPacket(parsing: bytes) else { return }
    let payload = packet.payload(in: bytes)
    precondition(packet.byteCount == bytes.count, "parsed length disagrees with the input")
    precondition(payload.count + packet.headers.byteCount + packet.padCount + ICRC.byteCount == bytes.count)
    // Whatever parses must serialize back to a packet that parses to the same headers and
    // payload, and that differs from the input only in reserved bits.
    do {
        let written = try RoCEPacket.serialize(headers: packet.headers, payload: payload, into: scratch)
        precondition(written == bytes.count, "serialized length \(written) != parsed length \(bytes.count)")
        let again = try RoCEPacket(parsing: UnsafeRawBufferPointer(rebasing: scratch[..<written]))
        precondition(again.headers == packet.headers && again.payloadRange == packet.payloadRange)
        precondition(UnsafeRawBufferPointer(rebasing: scratch[again.payloadRange]).elementsEqual(payload))
    } catch {
        preconditionFailure("a parsed packet failed to round-trip: \(error)")
    }
}

private func checkIPPacket(_ bytes: UnsafeRawBufferPointer) {
    guard let (flow, range) = try? RoCEEncapsulation.parse(ipPacket: bytes) else { return }
    precondition(range.lowerBound >= 28 && range.upperBound <= bytes.count)
    let transport = UnsafeRawBufferPointer(rebasing: bytes[range])
    let computed = try? ICRC.compute(transportPacket: transport, encapsulation: flow)
    let whole = try? ICRC.compute(ipPacket: bytes)
    precondition(computed == whole, "the two ICRC entry points disagree")
    _ = try? RoCEPacket(parsing: transport)
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOneInput($0, $1) })
