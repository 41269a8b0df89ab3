import RoCEWire

// # The Wire seam
//
// The engine never touches a socket: it hands finished RoCEv2 datagrams (BTH onward, ICRC
// sealed) to a `Wire` and takes received ones from it in batches. Three wires exist:
// `UDPWire` (the only file with `sockaddr`), `FaultInjectingWire` (wraps another and drops,
// duplicates, reorders, corrupts or delays what is sent — seeded, so a run repeats), and
// `InMemoryWire` (a process-local network: two engines in one thread, an injected clock,
// crafted packets from tests). Batching (recvmmsg, GSO) belongs inside a wire.

/// Where a datagram comes from or goes to: an IP address and a UDP port.
package struct WireEndpoint: Hashable, Sendable, CustomStringConvertible {
    package var address: SoftAddress
    package var port: UInt16
    package init(_ address: SoftAddress, port: UInt16) {
        self.address = address
        self.port = port
    }
    package var description: String {
        if case .ipv6 = address { return "[\(address)]:\(port)" }
        return "\(address):\(port)"
    }
}

/// What became of one datagram handed to a wire. The failures are those a UDP socket
/// reports; each is counted separately (`SoftCounters`), none is counted as sent.
package enum WireSendResult: Equatable, Sendable {
    case sent
    /// EAGAIN: the socket's send buffer is full; the requester's timer will resend.
    case wouldBlock
    /// ENOBUFS: the kernel had no memory for the datagram.
    case noBuffers
    /// ECONNREFUSED: an earlier datagram drew an ICMP port-unreachable.
    case refused
    /// Any other errno (or a wire that is closed: EBADF).
    case failed(errno: Int32)
}

/// The IPv4 header fields the ICRC covers and a UDP socket hides. A soft sender's kernel
/// writes ID 0 with DF (`IP_PMTUDISC_DO`); kernel rxe writes a non-zero ID.
package struct IPv4HeaderFields: Equatable, Sendable {
    package var identification: UInt16 = 0
    package var flagsAndFragmentOffset: UInt16 = 0x4000
    package init(identification: UInt16 = 0, flagsAndFragmentOffset: UInt16 = 0x4000) {
        self.identification = identification
        self.flagsAndFragmentOffset = flagsAndFragmentOffset
    }
    /// What a soft sender's kernel writes.
    package static let softSender = IPv4HeaderFields()
}

/// The IP header's DSCP and ECN bits of a datagram (IPv4 TOS, IPv6 traffic class): what the
/// engine sends with, and what a bottleneck left in a received one (a CE mark).
///
/// ```swift
/// let data = TrafficClass(dscp: 26, ecn: .ect0)     // 0x6A
/// let cnp = TrafficClass.congestionNotification   // DSCP 48 + ECT(0): 0xC2, as mlx5 sends CNPs
/// ```
package struct TrafficClass: Hashable, Sendable {
    package var rawValue: UInt8
    package init(rawValue: UInt8) { self.rawValue = rawValue }
    package init(dscp: UInt8, ecn: ExplicitCongestionNotification) {
        rawValue = (dscp & 0x3F) << 2 | ecn.rawValue
    }
    /// The ECN codepoints (RFC 3168).
    package enum ExplicitCongestionNotification: UInt8, Sendable {
        case notCapable = 0, ect1 = 1, ect0 = 2, congestionExperienced = 3
    }
    package var dscp: UInt8 { rawValue >> 2 }
    package var ecn: ExplicitCongestionNotification { ExplicitCongestionNotification(rawValue: rawValue & 3)! }
    /// A router on the path set CE instead of dropping.
    @inline(__always) package var congestionExperienced: Bool { rawValue & 3 == 3 }
    /// Best effort, not ECN-capable: what a socket sends unless told otherwise.
    package static let unmarked = TrafficClass(rawValue: 0)
    /// How mlx5 sends a CNP: DSCP 48 (network control) with ECT(0).
    package static let congestionNotification = TrafficClass(dscp: 48, ecn: .ect0)
}

/// Received datagrams: preallocated buffers a wire fills, read in place by the engine.
/// One per device; nothing is allocated per packet.
package final class ReceiveBatch {
    /// Datagrams one `receive(into:)` may return.
    package let capacity: Int
    /// Bytes per datagram buffer (a RoCEv2 packet of a 4096-byte MTU fits with room).
    package let bufferSize: Int
    private let storage: UnsafeMutableRawPointer
    private let lengths: UnsafeMutablePointer<Int>
    private let sources: UnsafeMutablePointer<WireEndpoint>
    private let offsets: UnsafeMutablePointer<Int>
    private let headers: UnsafeMutablePointer<IPv4HeaderFields>
    private let trafficClasses: UnsafeMutablePointer<TrafficClass>
    private let segmentLengths: UnsafeMutablePointer<Int>
    /// How many datagrams the last receive returned.
    @exclusivity(unchecked) package internal(set) var count = 0
    /// The errno of a receive failure other than "nothing waiting" (0 when none).
    @exclusivity(unchecked) package var error: Int32 = 0

    /// `bufferSize`: a GSO super-datagram (up to 64 KiB) arrives whole on loopback.
    package init(capacity: Int = 64, bufferSize: Int = 65_536 + 512) {
        self.capacity = capacity
        self.bufferSize = bufferSize
        storage = .allocate(byteCount: capacity * bufferSize, alignment: 64)
        lengths = .allocate(capacity: capacity)
        lengths.initialize(repeating: 0, count: capacity)
        sources = .allocate(capacity: capacity)
        sources.initialize(repeating: WireEndpoint(.ipv4(0), port: 0), count: capacity)
        offsets = .allocate(capacity: capacity)
        offsets.initialize(repeating: 0, count: capacity)
        headers = .allocate(capacity: capacity)
        headers.initialize(repeating: .softSender, count: capacity)
        trafficClasses = .allocate(capacity: capacity)
        trafficClasses.initialize(repeating: .unmarked, count: capacity)
        segmentLengths = .allocate(capacity: capacity)
        segmentLengths.initialize(repeating: 0, count: capacity)
    }

    deinit {
        storage.deallocate()
        lengths.deallocate()
        sources.deinitialize(count: capacity)
        sources.deallocate()
        offsets.deallocate()
        headers.deallocate()
        trafficClasses.deallocate()
        segmentLengths.deallocate()
    }

    /// The writable buffer of slot `index` (for a wire filling the batch).
    package func buffer(_ index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + index * bufferSize, count: bufferSize)
    }

    /// Records that slot `count` holds a datagram of `length` bytes starting `offset` bytes
    /// into its buffer (after an IP/UDP header a raw socket delivered), from `source`, with the
    /// IPv4 fields its sender wrote (when the wire knows them) and the DSCP/ECN it arrived
    /// with (`.unmarked` when the wire cannot tell); `segmentLength` is the GSO segment size
    /// of a super-datagram when the socket said it (UDP_GRO), else 0. False when full.
    @discardableResult
    package func append(length: Int, offset: Int = 0, from source: WireEndpoint, ipv4: IPv4HeaderFields = .softSender,
                        trafficClass: TrafficClass = .unmarked, segmentLength: Int = 0) -> Bool {
        guard count < capacity, offset >= 0, offset <= bufferSize else { return false }
        lengths[count] = min(length, bufferSize - offset)
        offsets[count] = offset
        sources[count] = source
        headers[count] = ipv4
        trafficClasses[count] = trafficClass
        segmentLengths[count] = segmentLength
        count += 1
        return true
    }

    package func reset() {
        count = 0
        error = 0
    }

    package func datagram(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage + index * bufferSize + offsets[index], count: lengths[index])
    }

    /// The IPv4 Identification and flags of datagram `index` (a soft sender's when unknown).
    package func ipv4Header(_ index: Int) -> IPv4HeaderFields { headers[index] }

    package func source(_ index: Int) -> WireEndpoint { sources[index] }

    /// The segment size of super-datagram `index` when its wire knew it (0: one packet, or unknown).
    package func segmentLength(_ index: Int) -> Int { segmentLengths[index] }

    /// The DSCP and ECN bits datagram `index` arrived with (a CE mark is congestion on the path).
    package func trafficClass(_ index: Int) -> TrafficClass { trafficClasses[index] }
}

/// Moves RoCEv2 datagrams between this engine and its peers.
/// What a datagram may do in a GSO batch (`TransmitBatch`), told to `Wire.prepareSend`.
package enum BatchRole: Sendable {
    /// It may join a pending batch of its flow (as its next or last segment) but not open one.
    case none
    /// A full-MTU packet whose segment size a receiver can tell from its header (12-byte BTH,
    /// MTU payload, ICRC): it may open a batch.
    case opens
    /// The first packet of a long message, longer than the rest by its RETH or AETH: the batch
    /// its message opens next may take it along in the same system call.
    case leads
    /// It leaves as a datagram of its own, after any pending batch: a fault injector sends a
    /// duplicate twice but seals it once, so it may not carry a segment's Identification.
    case alone
}

package protocol Wire: AnyObject {
    /// The local address and UDP port datagrams are sent from and received on.
    var local: WireEndpoint { get }
    /// A descriptor that becomes readable when datagrams wait (for `poll(2)`), or nil when
    /// the wire has none (in memory).
    var pollDescriptor: Int32? { get }
    /// True when the batch carries each datagram's real IPv4 Identification and flags (or
    /// the path is IPv6, which has none), so the ICRC can be checked over everything it covers.
    var deliversRealHeaders: Bool { get }
    /// True when `send` can use any UDP source port (rxe gives each QP its own, so ECMP
    /// fabrics spread flows); false when every datagram leaves from `local.port`.
    var choosesSourcePort: Bool { get }
    /// Sends one datagram (BTH onward, ICRC sealed over `sourcePort`) from `sourcePort`
    /// (ignored unless `choosesSourcePort`) with `trafficClass` in its IP header (the ICRC
    /// masks it, so it needs no resealing). Never blocks.
    func send(_ datagram: UnsafeRawBufferPointer, from sourcePort: UInt16, to destination: WireEndpoint,
              trafficClass: TrafficClass) -> WireSendResult
    /// Says where the datagram about to be handed to `send` goes, before its ICRC is sealed:
    /// the IPv4 Identification and flags its header will carry (`TransmitBatch`: segment `k`
    /// of a GSO batch carries ID `k`). `batchRole`: what the datagram may do in a batch.
    func prepareSend(length: Int, from sourcePort: UInt16, to destination: WireEndpoint, trafficClass: TrafficClass,
                     batchRole: BatchRole) -> IPv4HeaderFields
    /// From now on `send` may hold datagrams back to send them as one GSO super-datagram.
    func holdSends()
    /// Sends what was held back and stops holding; the outcome of that send (`.sent` when
    /// nothing was held).
    func releaseSends() -> WireSendResult
    /// GSO super-datagrams this wire sent (0 for a wire that never batches).
    var superDatagramsSent: UInt64 { get }
    /// System calls that sent datagrams (the wires that make none say 0).
    var sendSystemCalls: UInt64 { get }
    /// Resets `batch` and fills it with what has arrived, up to its capacity. Never blocks.
    func receive(into batch: ReceiveBatch)
    /// Lets a wire that holds datagrams back (fault injection) release the ones now due.
    func service(now: UInt64)
    /// Releases the wire's resources. Idempotent.
    func close()
}

extension Wire {
    package func service(now: UInt64) {}
    /// A wire that never batches: every datagram leaves on its own, as a soft sender's.
    package func prepareSend(length: Int, from sourcePort: UInt16, to destination: WireEndpoint, trafficClass: TrafficClass,
                             batchRole: BatchRole) -> IPv4HeaderFields { .softSender }
    package func holdSends() {}
    package func releaseSends() -> WireSendResult { .sent }
    package var superDatagramsSent: UInt64 { 0 }
    package var sendSystemCalls: UInt64 { 0 }
}
