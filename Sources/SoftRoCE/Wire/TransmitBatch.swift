/// Datagrams a wire holds back during one engine round to send them as one UDP GSO
/// super-datagram (`UDP_SEGMENT`): one system call and one trip through the IP stack for up
/// to 64 packets, which the kernel (or the NIC) cuts into ordinary datagrams — or, on
/// loopback and veth, delivers whole to a receiver that cuts them itself (`Receive.swift`).
///
/// The rules, and why each exists:
/// - Only consecutive datagrams of one flow (source port, destination, traffic class) join.
/// - Every segment but the last has the same length — the kernel's GSO contract.
/// - A batch opens only with a packet whose length the receiver can tell from its own header:
///   a full-MTU SEND FIRST/MIDDLE, WRITE MIDDLE or READ RESPONSE MIDDLE (12-byte BTH, MTU
///   payload, ICRC). A raw socket sees a loopback super-datagram without its segment size;
///   the receiver reads the first segment's opcode and its QP's MTU to find it.
/// - Segment `k` leaves with IPv4 Identification `k`: an unconnected DF socket writes ID 0
///   and segmentation numbers the segments upwards (`inet_gso_segment`), so the ICRC is sealed
///   over ID `k` (`Wire.prepareSend`). IPv6 has no Identification.
///
/// Preallocated once; nothing is allocated per datagram.
package final class TransmitBatch {
    /// The most segments one GSO send may carry (the kernel's UDP_MAX_SEGMENTS is 64 or more).
    package static let maxSegments = 64
    /// The most bytes of UDP payload one super-datagram may carry (65,535 less IP/UDP headers, rounded down).
    package static let maxBytes = 65_000

    package let storage: UnsafeMutableRawPointer
    @exclusivity(unchecked) package private(set) var count = 0
    @exclusivity(unchecked) package private(set) var byteCount = 0
    /// The length of every segment but the last.
    @exclusivity(unchecked) package private(set) var segmentLength = 0
    package private(set) var sourcePort: UInt16 = 0
    package private(set) var destination = WireEndpoint(.ipv4(0), port: 0)
    /// False once a shorter segment ended the batch.
    @exclusivity(unchecked) private var open = false
    /// True between `Wire.holdSends()` and `Wire.releaseSends()`.
    @exclusivity(unchecked) package var holding = false
    /// The index `prepare` gave the next datagram (−1: it leaves on its own).
    @exclusivity(unchecked) private var prepared = -1

    package init() {
        storage = .allocate(byteCount: Self.maxBytes, alignment: 64)
    }

    deinit { storage.deallocate() }

    /// Where the next datagram goes: its index in the batch, or nil when it must leave on its
    /// own. `flush` is called first when the pending batch cannot take it. `canOpen` says whether
    /// this datagram may open a batch (the rule above) and the flow can be batched; `canJoin`
    /// false keeps it out of a pending one too.
    package func prepare(length: Int, sourcePort: UInt16, destination: WireEndpoint, canOpen: Bool, canJoin: Bool = true,
                         flush: () -> Void) -> Int? {
        prepared = -1
        guard holding else { return nil }
        if canJoin, count > 0, open, sourcePort == self.sourcePort, destination == self.destination, length <= segmentLength,
           count < Self.maxSegments, byteCount + length <= Self.maxBytes {
            prepared = count
            return count
        }
        if count > 0 { flush() }
        guard canOpen, length <= Self.maxBytes else { return nil }
        self.sourcePort = sourcePort
        self.destination = destination
        segmentLength = length
        open = true
        prepared = 0
        return 0
    }

    /// Copies the datagram `prepare` placed into the batch; false when `prepare` did not place one.
    package func append(_ datagram: UnsafeRawBufferPointer) -> Bool {
        guard prepared >= 0, prepared == count, let base = datagram.baseAddress else { prepared = -1; return false }
        prepared = -1
        (storage + byteCount).copyMemory(from: base, byteCount: datagram.count)
        byteCount += datagram.count
        count += 1
        if datagram.count < segmentLength { open = false }
        return true
    }

    /// The held bytes, for one send.
    package var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage, count: byteCount) }

    /// Empties the batch after it was sent (or lost).
    package func reset() {
        count = 0
        byteCount = 0
        open = false
        prepared = -1
    }
}
