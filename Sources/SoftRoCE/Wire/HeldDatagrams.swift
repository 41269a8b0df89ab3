#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSocketBatch

/// Datagrams a wire holds back during one engine round that cannot join a GSO batch — the ACKs
/// a round owes many QPs, NAKs, small requests a window lets out, packets to several
/// destinations — sent together with one `sendmmsg(2)` when the round ends: one system call
/// where there were as many as packets. (A post's request and the ACK deferred behind it are
/// not held together: see `Posting.swift`.)
///
/// The rules, and why each exists:
/// - All held datagrams leave through one socket (the raw socket for per-QP source ports, or
///   the UDP socket); a datagram for another socket sends the held ones first, so that the
///   order of packets is the order the engine produced them in.
/// - A GSO batch leaves after the datagrams held before it opened, and before any held after:
///   when they share its socket (the first packet of a long WRITE or READ response, whose
///   longer header keeps it out of the batch its message opens next), in the same `sendmmsg`
///   as the batch's last message (`send(followedBy:)`); otherwise the held ones are sent when the
///   batch opens. Nothing overtakes anything.
/// - A datagram `sendmmsg` could not send is lost like a dropped packet (the retransmit timer
///   recovers it); the rest are still sent.
///
/// Preallocated once; nothing is allocated per datagram.
final class HeldDatagrams {
    /// The most datagrams one `sendmmsg` carries.
    static let capacity = 32
    /// Room for the held datagrams' bytes (with the raw socket's IPv4 and UDP headers).
    static let storageBytes = 64 * 1024

    private let storage: UnsafeMutableRawPointer
    private let addresses: UnsafeMutablePointer<SocketAddress>
    private let vectors: UnsafeMutablePointer<iovec>
    private let messages: UnsafeMutablePointer<csocketbatch_message>
    /// The UDP_SEGMENT control message of a GSO batch sent as the last message.
    private let segmentControl: UnsafeMutablePointer<ControlMessageInt>
    /// The batch's address and vector (the slot after the held ones).
    private let batchAddress: UnsafeMutablePointer<SocketAddress>
    @exclusivity(unchecked) private(set) var count = 0
    @exclusivity(unchecked) private var byteCount = 0
    /// The socket the held datagrams leave through.
    @exclusivity(unchecked) private(set) var descriptor: Int32 = -1
    /// `sendmmsg` calls made.
    @exclusivity(unchecked) private(set) var calls: UInt64 = 0

    init() {
        storage = .allocate(byteCount: Self.storageBytes, alignment: 64)
        addresses = .allocate(capacity: Self.capacity)
        addresses.initialize(repeating: SocketAddress(), count: Self.capacity)
        vectors = .allocate(capacity: Self.capacity + 1)
        messages = .allocate(capacity: Self.capacity + 1)
        segmentControl = .allocate(capacity: 1)
        segmentControl.initialize(to: ControlMessageInt())
        batchAddress = .allocate(capacity: 1)
        batchAddress.initialize(to: SocketAddress())
    }

    deinit {
        storage.deallocate()
        addresses.deinitialize(count: Self.capacity)
        addresses.deallocate()
        vectors.deallocate()
        messages.deallocate()
        segmentControl.deallocate()
        batchAddress.deinitialize(count: 1)
        batchAddress.deallocate()
    }

    /// Whether a datagram of `length` bytes for `descriptor` can be held now without sending
    /// the held ones first.
    func canHold(length: Int, through descriptor: Int32) -> Bool {
        count < Self.capacity && byteCount + length <= Self.storageBytes && (count == 0 || descriptor == self.descriptor)
    }

    /// Copies `datagram` into the next slot, `headerLength` bytes after its start, and returns
    /// the slot's start for the caller to write those header bytes. Call `canHold` first.
    func hold(_ datagram: UnsafeRawBufferPointer, headerLength: Int, to address: SocketAddress,
              through descriptor: Int32) -> UnsafeMutableRawPointer {
        let slot = storage + byteCount
        if let base = datagram.baseAddress { (slot + headerLength).copyMemory(from: base, byteCount: datagram.count) }
        let length = headerLength + datagram.count
        addresses[count] = address
        vectors[count] = iovec(iov_base: slot, iov_len: length)
        messages[count] = csocketbatch_message(header: msghdr(msg_name: UnsafeMutableRawPointer(addresses + count), msg_namelen: address.length,
                                                              msg_iov: vectors + count, msg_iovlen: 1, msg_control: nil, msg_controllen: 0,
                                                              msg_flags: 0), length: 0)
        self.descriptor = descriptor
        byteCount += (length + 7) & ~7
        count += 1
        return slot
    }

    /// `sendmmsg(2)` of every held datagram, then empties the queue. A datagram the kernel
    /// refuses is skipped (at most `count` calls in all); the result is the first refusal.
    func send() -> WireSendResult {
        guard count > 0 else { return .sent }
        return sendMessages(withBatch: false).held
    }

    /// `sendmmsg(2)` of every held datagram and then `bytes` to `address` as one more message: a
    /// GSO super-datagram with a UDP_SEGMENT control message when `segmentLength` > 0. One system
    /// call for a long message's first packet and the batch that follows it. Empties the queue;
    /// returns the first refusal among the held ones, and the batch's errno (0: sent).
    func send(followedBy bytes: UnsafeRawBufferPointer, segmentLength: Int, to address: SocketAddress) -> (held: WireSendResult, batchErrno: Int32) {
        batchAddress.pointee = address
        vectors[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
        if segmentLength > 0 { segmentControl.pointee = .udpSegment(segmentLength) }
        messages[count] = csocketbatch_message(header: msghdr(msg_name: UnsafeMutableRawPointer(batchAddress), msg_namelen: address.length,
                                                              msg_iov: vectors + count, msg_iovlen: 1,
                                                              msg_control: segmentLength > 0 ? UnsafeMutableRawPointer(segmentControl) : nil,
                                                              msg_controllen: segmentLength > 0 ? MemoryLayout<ControlMessageInt>.size : 0,
                                                              msg_flags: 0), length: 0)
        return sendMessages(withBatch: true)
    }

    /// The `sendmmsg(2)` calls of `send` and `send(followedBy:)`: the held messages, and the
    /// batch's after them when `withBatch`. A message the kernel refuses is skipped (one call
    /// each at most); returns the first refusal among the held ones and the batch's errno (0:
    /// sent), and empties the queue.
    private func sendMessages(withBatch: Bool) -> (held: WireSendResult, batchErrno: Int32) {
        let total = count + (withBatch ? 1 : 0)
        defer { count = 0; byteCount = 0 }
        var held = WireSendResult.sent, batchErrno: Int32 = 0
        var next = 0
        while next < total {
            let sent = Int(csocketbatch_sendmmsg(descriptor, messages + next, UInt32(total - next), 0))
            calls += 1
            if sent > 0 { next += sent; continue }
            let code = errno
            if withBatch && next == total - 1 { batchErrno = code == 0 ? EIO : code } else if held == .sent { held = SocketCall.sendResult(-1) }
            next += 1
        }
        return (held, batchErrno)
    }

    /// Forgets the held datagrams unsent (the wire is closing).
    func discard() {
        count = 0
        byteCount = 0
    }
}
