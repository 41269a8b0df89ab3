#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where and how much a soft device captures: every datagram it sends and receives, as a
/// pcap file (link type raw IP) with the real IP and UDP headers around each RoCEv2 packet,
/// so Wireshark and tshark decode it as RoCE (UDP 4791).
///
/// ```swift
/// var configuration = SoftDeviceConfiguration(address: "127.0.0.2")
/// configuration.capture = PacketCapture(path: "/tmp/engine.pcap")   // tshark -r /tmp/engine.pcap
/// ```
public struct PacketCapture: Sendable, Equatable {
    public var path: String
    /// The file stops growing at this size: the first packets are kept, later ones are
    /// counted (`soft_pcap_dropped`), not written. Default 64 MiB.
    public var maxBytes: Int
    public init(path: String, maxBytes: Int = 64 << 20) {
        self.path = path
        self.maxBytes = maxBytes
    }
}

/// A wire that writes what another wire sends and receives to a pcap file (`PacketCapture`).
/// Records are built in a preallocated buffer and written with `write(2)` once 64 KiB wait,
/// or 100 ms after the oldest unwritten one (checked in each engine round), and on close —
/// so a process that exits without closing loses at most the last 100 ms. Nothing is
/// allocated per packet. Timestamps are CLOCK_REALTIME.
package final class CapturingWire: Wire {
    package let inner: any Wire
    private var descriptor: Int32
    private let limit: Int
    private var written = 0
    package private(set) var droppedRecords: UInt64 = 0
    private let buffer: UnsafeMutableRawPointer
    private static let bufferSize = 1 << 20
    private var buffered = 0
    /// When the oldest unwritten record was buffered (monotonic ns; 0: nothing waits).
    private var oldestUnwritten: UInt64 = 0
    private static let flushBytes = 64 << 10
    private static let flushDelay: UInt64 = 100_000_000

    /// Creates (truncates) the file and writes the pcap global header.
    package init(wrapping inner: any Wire, capture: PacketCapture) throws(SoftRoCEError) {
        self.inner = inner
        limit = max(capture.maxBytes, 24)
        let fd = open(capture.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SoftRoCEError("open \(capture.path)", errno: errno, "cannot create the packet capture file") }
        descriptor = fd
        buffer = .allocate(byteCount: Self.bufferSize, alignment: 16)
        // pcap global header: magic, version 2.4, zone 0, sigfigs 0, snaplen, LINKTYPE_RAW (101).
        let header: [UInt32] = [0xA1B2_C3D4, 0x0004_0002, 0, 0, 65535, 101]
        header.withUnsafeBytes { bytes in
            // The version is two 16-bit fields (major 2, minor 4) in host order.
            buffer.copyMemory(from: bytes.baseAddress!, byteCount: 24)
            buffer.storeBytes(of: UInt16(2), toByteOffset: 4, as: UInt16.self)
            buffer.storeBytes(of: UInt16(4), toByteOffset: 6, as: UInt16.self)
        }
        buffered = 24
        written = 24
    }

    deinit {
        close()
        buffer.deallocate()
    }

    package var local: WireEndpoint { inner.local }
    package var pollDescriptor: Int32? { inner.pollDescriptor }
    package var deliversRealHeaders: Bool { inner.deliversRealHeaders }
    package func service(now: UInt64) {
        inner.service(now: now)
        if oldestUnwritten != 0 && EngineClock.monotonicNanoseconds() - oldestUnwritten >= Self.flushDelay { flush() }
    }

    package var choosesSourcePort: Bool { inner.choosesSourcePort }

    package func send(_ datagram: UnsafeRawBufferPointer, from sourcePort: UInt16, to destination: WireEndpoint,
                      trafficClass: TrafficClass) -> WireSendResult {
        let result = inner.send(datagram, from: sourcePort, to: destination, trafficClass: trafficClass)
        let port = inner.choosesSourcePort ? sourcePort : local.port
        if result == .sent {
            record(datagram, from: WireEndpoint(local.address, port: port), to: destination, ipv4: .softSender, trafficClass: trafficClass)
        }
        return result
    }

    package func receive(into batch: ReceiveBatch) {
        inner.receive(into: batch)
        for index in 0..<batch.count {
            record(batch.datagram(index), from: batch.source(index), to: local, ipv4: batch.ipv4Header(index),
                   trafficClass: batch.trafficClass(index))
        }
    }

    /// Flushes and closes the file. Idempotent.
    package func close() {
        inner.close()
        guard descriptor >= 0 else { return }
        flush()
        _ = Glibc.close(descriptor)
        descriptor = -1
    }

    private func flush() {
        var offset = 0
        while offset < buffered {
            let result = write(descriptor, buffer + offset, buffered - offset)
            if result <= 0 { break }   // a full disk loses the tail of the capture, never the engine
            offset += result
        }
        buffered = 0
        oldestUnwritten = 0
    }

    /// One pcap record: timestamp, lengths, then an IPv4 or IPv6 header, a UDP header and
    /// the RoCEv2 datagram.
    private func record(_ datagram: UnsafeRawBufferPointer, from source: WireEndpoint, to destination: WireEndpoint, ipv4: IPv4HeaderFields,
                        trafficClass: TrafficClass) {
        guard descriptor >= 0 else { return }
        let ipHeaderLength: Int
        switch source.address {
        case .ipv4: ipHeaderLength = 20
        case .ipv6: ipHeaderLength = 40
        }
        let packetLength = ipHeaderLength + 8 + datagram.count
        let recordLength = 16 + packetLength
        guard written + recordLength <= limit, recordLength <= Self.bufferSize else { droppedRecords += 1; return }
        if buffered + recordLength > Self.bufferSize { flush() }
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        let out = buffer + buffered
        out.storeBytes(of: UInt32(truncatingIfNeeded: time.tv_sec), as: UInt32.self)
        out.storeBytes(of: UInt32(truncatingIfNeeded: time.tv_nsec / 1000), toByteOffset: 4, as: UInt32.self)
        out.storeBytes(of: UInt32(packetLength), toByteOffset: 8, as: UInt32.self)
        out.storeBytes(of: UInt32(packetLength), toByteOffset: 12, as: UInt32.self)
        let ip = out + 16
        let udp = ip + ipHeaderLength
        switch (source.address, destination.address) {
        case (.ipv4(let from), .ipv4(let to)):
            IPv4UDPHeader.write(into: ip, totalLength: packetLength, fields: ipv4, trafficClass: trafficClass, source: from, destination: to,
                                sourcePort: source.port, destinationPort: destination.port)
        default:
            Self.writeIPv6Header(ip, payloadLength: 8 + datagram.count, trafficClass: trafficClass, source: source.address, destination: destination.address)
            IPv4UDPHeader.writeUDP(into: udp, length: 8 + datagram.count, sourcePort: source.port, destinationPort: destination.port)
        }
        if let bytes = datagram.baseAddress { (udp + 8).copyMemory(from: bytes, byteCount: datagram.count) }
        buffered += recordLength
        written += recordLength
        if oldestUnwritten == 0 { oldestUnwritten = EngineClock.monotonicNanoseconds() }
        if buffered >= Self.flushBytes { flush() }
    }

    private static func writeIPv6Header(_ ip: UnsafeMutableRawPointer, payloadLength: Int, trafficClass: TrafficClass,
                                        source: SoftAddress, destination: SoftAddress) {
        ip.storeBytes(of: (UInt32(0x6000_0000) | UInt32(trafficClass.rawValue) << 20).bigEndian, as: UInt32.self)
        ip.storeBytes(of: UInt16(payloadLength).bigEndian, toByteOffset: 4, as: UInt16.self)
        ip.storeBytes(of: UInt8(17), toByteOffset: 6, as: UInt8.self)
        ip.storeBytes(of: UInt8(64), toByteOffset: 7, as: UInt8.self)
        let from = source.ipv6Value, to = destination.ipv6Value
        ip.storeBytes(of: from.high.bigEndian, toByteOffset: 8, as: UInt64.self)
        ip.storeBytes(of: from.low.bigEndian, toByteOffset: 16, as: UInt64.self)
        ip.storeBytes(of: to.high.bigEndian, toByteOffset: 24, as: UInt64.self)
        ip.storeBytes(of: to.low.bigEndian, toByteOffset: 32, as: UInt64.self)
    }
}
