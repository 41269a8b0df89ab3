#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSocketBatch

/// The real wire: one non-blocking UDP socket bound to the device's address and port, and —
/// where permitted and asked for — a raw socket beside it that receives the same datagrams
/// with their IPv4 header, so the ICRC can be checked over the Identification kernel rxe
/// writes (the UDP socket then gets a drop-all filter and is used only to send and to own the
/// port). This is the only file of the engine that knows `sockaddr`; every socket call's
/// result goes through `SocketCall`, which names the call and the errno.
package final class UDPWire: Wire {
    /// Whether to read received datagrams through a raw socket (IPv4 only).
    package enum RawReceive: Sendable { case never, ifPermitted, required }

    package let local: WireEndpoint
    private var descriptor: Int32
    /// The raw IPPROTO_UDP socket receiving for `local` (−1: receive on the UDP socket).
    private var rawDescriptor: Int32 = -1
    /// The IP_HDRINCL raw socket sending from per-QP source ports (−1: every datagram
    /// leaves from the UDP socket's port). Opened with the raw receive socket (IPv4 only).
    private var rawSendDescriptor: Int32 = -1
    /// The IPv4 and UDP headers of a datagram sent through `rawSendDescriptor`.
    private var rawSendBuffer: UnsafeMutableRawPointer? = nil
    /// `recvmmsg`'s message headers and vectors for the raw receive socket, one per slot of a
    /// receive batch (allocated once, pointed at the batch's buffers on each receive).
    private var rawMessages: UnsafeMutablePointer<csocketbatch_message>? = nil
    private var rawVectors: UnsafeMutablePointer<iovec>? = nil
    private var rawMessageCapacity = 0
    /// The first buffer of the batch `rawMessages` point into (nil: not prepared).
    private var rawPreparedFor: UnsafeMutableRawPointer? = nil
    package var choosesSourcePort: Bool { rawSendDescriptor >= 0 }
    /// Packets held back during an engine round for one GSO send (`TransmitBatch`).
    private let transmitBatch = TransmitBatch()
    /// False once the kernel refused a GSO send (no UDP_SEGMENT): every datagram then leaves alone.
    private var segmentationOffload: Bool
    /// UDP sockets bound to per-QP source ports, for GSO sends from those ports (an IP_HDRINCL
    /// socket cannot segment); −1 where the port could not be bound. At most `maxPortSockets`.
    private var portSockets: [UInt16: Int32] = [:]
    private static let maxPortSockets = 128
    /// The DSCP/ECN the UDP socket sends with (IP_TOS / IPV6_TCLASS); a datagram asking for
    /// another one carries it in a control message.
    private let socketTrafficClass: TrafficClass
    package var pollDescriptor: Int32? {
        let active = rawDescriptor >= 0 ? rawDescriptor : descriptor
        return active >= 0 ? active : nil
    }
    package var deliversRealHeaders: Bool {
        if case .ipv6 = local.address { return true }
        return rawDescriptor >= 0
    }

    /// Opens the socket (`socket`, `setsockopt` SO_RCVBUF/SO_SNDBUF, IP_TOS/IPV6_TCLASS, `bind`) and,
    /// for IPv4 when asked, the raw receive socket (`socket(SOCK_RAW)`, `bind`, `SO_ATTACH_FILTER`).
    /// `trafficClass` is what most datagrams carry (another one costs a control message per
    /// send); with `readsTrafficClass` each received datagram's DSCP and ECN bits are read
    /// (IP_RECVTOS / IPV6_RECVTCLASS on the UDP socket; the raw socket has the header anyway).
    /// `segmentationOffload`: send the packets of one flow that an engine round produces as UDP
    /// GSO super-datagrams (`UDP_SEGMENT`), and receive super-datagrams whole (`UDP_GRO`).
    package init(address: SoftAddress, port: UInt16, rawReceive: RawReceive = .never,
                 trafficClass: TrafficClass = .unmarked, readsTrafficClass: Bool = false,
                 segmentationOffload: Bool = true) throws(SoftRoCEError) {
        self.segmentationOffload = segmentationOffload
        let family: Int32
        switch address {
        case .ipv4: family = AF_INET
        case .ipv6: family = AF_INET6
        }
        let fd = try SocketCall.descriptor("socket", Glibc.socket(family, SocketCall.nonBlocking(SOCK_DGRAM), 0), "cannot create a UDP socket")
        SocketCall.enlargeBuffers(fd)
        socketTrafficClass = trafficClass
        do {
            try SocketCall.setTrafficClass(fd, address: address, trafficClass, receiving: readsTrafficClass)
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
        if case .ipv4 = address {
            // DF set and ID 0, as the ICRC we seal assumes (an unconnected DF socket's IDs are 0).
            var discover = Int32(IP_PMTUDISC_DO)
            _ = setsockopt(fd, Int32(IPPROTO_IP), IP_MTU_DISCOVER, &discover, 4)
        }
        var storage = SocketAddress(WireEndpoint(address, port: port))
        let bound = storage.withSockaddr { bind(fd, $0, $1) }
        if bound != 0 {
            let code = errno
            _ = Glibc.close(fd)
            throw SoftRoCEError("bind \(address) port \(port)", errno: code,
                                code == EADDRINUSE ? "the UDP port is taken (kernel rxe binds 4791 in its namespace): pick another port or address"
                                : "cannot bind the address: it must be assigned to a local interface (127.0.0.0/8 always is)")
        }
        var name = SocketAddress()
        _ = name.withMutableSockaddr { getsockname(fd, $0, $1) }
        descriptor = fd
        local = WireEndpoint(address, port: name.endpoint.port)
        if case .ipv4(let value) = address, rawReceive != .never {
            do {
                rawDescriptor = try Self.openRawReceive(address: value, port: local.port)
                // The raw socket now receives everything for us: the UDP socket keeps nothing.
                try SocketCall.attachFilter(descriptor, PacketFilter.dropAll, "SO_ATTACH_FILTER (UDP socket)")
                rawSendDescriptor = try SocketCall.descriptor("socket(AF_INET, SOCK_RAW, IPPROTO_RAW)",
                                                              Glibc.socket(AF_INET, SocketCall.nonBlocking(SOCK_RAW), Int32(IPPROTO_RAW)),
                                                              "cannot open the raw socket that sends from per-QP UDP source ports")
                SocketCall.enlargeBuffers(rawSendDescriptor)
                rawSendBuffer = .allocate(byteCount: 64, alignment: 64)
            } catch {
                if rawDescriptor >= 0 { _ = Glibc.close(rawDescriptor); rawDescriptor = -1 }
                if rawSendDescriptor >= 0 { _ = Glibc.close(rawSendDescriptor); rawSendDescriptor = -1 }
                if rawReceive == .required {
                    _ = Glibc.close(descriptor)
                    throw error
                }
            }
        }
        // UDP_GRO: a loopback super-datagram reaches the socket whole, with its segment size,
        // instead of being cut by the kernel — to be read (no raw socket) or dropped by the
        // filter at once (a raw socket reads; only on loopback, where no NIC merges rxe's packets).
        if segmentationOffload && (rawDescriptor < 0 || address.isLoopback) {
            var on: Int32 = 1
            _ = setsockopt(descriptor, Int32(IPPROTO_UDP), SocketCall.udpGRO, &on, 4)
        }
    }

    private static func openRawReceive(address: UInt32, port: UInt16) throws(SoftRoCEError) -> Int32 {
        let raw = Glibc.socket(AF_INET, SocketCall.nonBlocking(SOCK_RAW), Int32(IPPROTO_UDP))
        guard raw >= 0 else {
            throw SoftRoCEError("socket(AF_INET, SOCK_RAW, IPPROTO_UDP)", errno: errno,
                                "strict ICRC checking reads the real IPv4 header from a raw socket, which needs CAP_NET_RAW: "
                                + "run as root or grant it (setcap cap_net_raw+ep), or choose ICRC checking assume-id0")
        }
        SocketCall.enlargeBuffers(raw)
        var storage = SocketAddress(WireEndpoint(.ipv4(address), port: 0))
        guard storage.withSockaddr({ bind(raw, $0, $1) }) == 0 else {
            let code = errno
            _ = Glibc.close(raw)
            throw SoftRoCEError("bind (raw socket)", errno: code, "cannot bind the raw receive socket to the device's address")
        }
        do {
            try SocketCall.attachFilter(raw, PacketFilter.udpDestination(port: port), "SO_ATTACH_FILTER (raw socket)")
        } catch {
            _ = Glibc.close(raw)
            throw error
        }
        return raw
    }

    deinit { close() }

    /// `sendto(2)` of one datagram from the UDP socket (`sendmsg(2)` with an IP_TOS/IPV6_TCLASS
    /// control message when `trafficClass` is not the socket's), or — for another source port —
    /// `sendmsg(2)` on the IP_HDRINCL raw socket with an IPv4 header of ID 0 and DF (what the ICRC was sealed
    /// over; the kernel keeps a zero ID on DF packets), `trafficClass` as TOS and a UDP header
    /// without checksum, as kernel rxe sends on IPv4.
    package func send(_ datagram: UnsafeRawBufferPointer, from sourcePort: UInt16, to destination: WireEndpoint,
                      trafficClass: TrafficClass) -> WireSendResult {
        guard descriptor >= 0 else { return .failed(errno: EBADF) }
        if transmitBatch.append(datagram) { return .sent }
        if sourcePort != local.port, rawSendDescriptor >= 0, let header = rawSendBuffer,
           case .ipv4(let from) = local.address, case .ipv4(let to) = destination.address, datagram.count + 28 <= 65535 {
            IPv4UDPHeader.write(into: header, totalLength: 28 + datagram.count, fields: .softSender, trafficClass: trafficClass,
                                source: from, destination: to, sourcePort: sourcePort, destinationPort: destination.port)
            // The header and the packet as two iovecs: the packet is not copied here.
            var vectors = (iovec(iov_base: header, iov_len: 28), iovec(iov_base: UnsafeMutableRawPointer(mutating: datagram.baseAddress), iov_len: datagram.count))
            var address = SocketAddress(WireEndpoint(destination.address, port: 0))
            let result = address.withSockaddr { name, length in
                withUnsafeMutableBytes(of: &vectors) { iov -> Int in
                    var message = msghdr(msg_name: UnsafeMutableRawPointer(mutating: name), msg_namelen: length,
                                         msg_iov: iov.baseAddress!.assumingMemoryBound(to: iovec.self), msg_iovlen: 2,
                                         msg_control: nil, msg_controllen: 0, msg_flags: 0)
                    return sendmsg(rawSendDescriptor, &message, 0)
                }
            }
            return SocketCall.sendResult(result)
        }
        var address = SocketAddress(destination)
        if trafficClass != socketTrafficClass { return sendWithTrafficClass(datagram, to: &address, trafficClass) }
        let result = address.withSockaddr { sendto(descriptor, datagram.baseAddress, datagram.count, 0, $0, $1) }
        return SocketCall.sendResult(result)
    }

    /// Places the datagram in the pending GSO batch when it can join it or open one (the
    /// batch's rules: `TransmitBatch`), sending the pending batch first when it cannot.
    package func prepareSend(length: Int, from sourcePort: UInt16, to destination: WireEndpoint, trafficClass: TrafficClass,
                             opensBatch: Bool) -> IPv4HeaderFields {
        let canOpen = opensBatch && segmentationOffload && trafficClass == socketTrafficClass && batchDescriptor(for: sourcePort) >= 0
        let index = transmitBatch.prepare(length: length, sourcePort: sourcePort, destination: destination, canOpen: canOpen) {
            _ = sendBatch()
        }
        guard let index, index > 0 else { return .softSender }
        return IPv4HeaderFields(identification: UInt16(index))
    }

    package func holdSends() {
        transmitBatch.holding = segmentationOffload && descriptor >= 0
    }

    package func releaseSends() -> WireSendResult {
        transmitBatch.holding = false
        return sendBatch()
    }

    /// The socket a batch from `sourcePort` leaves through: the UDP socket for its own port,
    /// else a UDP socket bound to that port (opened on first use: `socket`, `setsockopt`
    /// SO_REUSEPORT/IP_MTU_DISCOVER/IP_TOS, `bind`, a drop-all filter); −1 when none can be.
    private func batchDescriptor(for sourcePort: UInt16) -> Int32 {
        if sourcePort == local.port || rawSendDescriptor < 0 { return descriptor }
        if let known = portSockets[sourcePort] { return known }
        guard portSockets.count < Self.maxPortSockets else { return -1 }
        let fd = Glibc.socket(AF_INET, SocketCall.nonBlocking(SOCK_DGRAM), 0)
        var opened = fd
        if fd >= 0 {
            var on: Int32 = 1, discover = Int32(IP_PMTUDISC_DO), tos = Int32(socketTrafficClass.rawValue)
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, 4)
            _ = setsockopt(fd, Int32(IPPROTO_IP), IP_MTU_DISCOVER, &discover, 4)
            _ = setsockopt(fd, Int32(IPPROTO_IP), IP_TOS, &tos, 4)
            var size: Int32 = 8 << 20
            if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, 4) != 0 { _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, 4) }
            var storage = SocketAddress(WireEndpoint(local.address, port: sourcePort))
            if storage.withSockaddr({ bind(fd, $0, $1) }) != 0 || (try? SocketCall.attachFilter(fd, PacketFilter.dropAll, "")) == nil {
                _ = Glibc.close(fd)
                opened = -1
            }
        }
        portSockets[sourcePort] = opened
        return opened
    }

    /// `sendmsg(2)` of the pending batch: one datagram alone, several as one super-datagram with
    /// a UDP_SEGMENT control message naming the segment size. A kernel without UDP GSO (EIO,
    /// EINVAL, ENOPROTOOPT) turns batching off; the batch's packets are then lost and resent.
    private func sendBatch() -> WireSendResult {
        let batch = transmitBatch
        guard batch.count > 0 else { return .sent }
        defer { batch.reset() }
        let fd = batchDescriptor(for: batch.sourcePort)
        guard fd >= 0 else { return .failed(errno: EBADF) }
        var address = SocketAddress(batch.destination)
        var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: batch.bytes.baseAddress), iov_len: batch.byteCount)
        var control = ControlMessageInt()
        control.header.cmsg_len = MemoryLayout<cmsghdr>.size + 2
        control.header.cmsg_level = Int32(IPPROTO_UDP)
        control.header.cmsg_type = SocketCall.udpSegment
        control.value = Int32(batch.segmentLength)   // a u16: little-endian, the int's first two bytes
        let segmented = batch.count > 1
        let result = address.withSockaddr { name, length in
            withUnsafeMutableBytes(of: &control) { controlBytes in
                withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr(msg_name: UnsafeMutableRawPointer(mutating: name), msg_namelen: length, msg_iov: vectorPointer, msg_iovlen: 1,
                                         msg_control: segmented ? controlBytes.baseAddress : nil, msg_controllen: segmented ? controlBytes.count : 0,
                                         msg_flags: 0)
                    return sendmsg(fd, &message, 0)
                }
            }
        }
        if result < 0, segmented {
            switch errno {
            case EIO, EINVAL, ENOPROTOOPT: segmentationOffload = false
            default: break
            }
        }
        if result >= 0 && segmented { superDatagramsSent += 1 }
        return SocketCall.sendResult(result)
    }

    /// GSO super-datagrams sent (each several packets).
    package private(set) var superDatagramsSent: UInt64 = 0

    /// `sendmsg(2)` with the traffic class as an IP_TOS (IPv4) or IPV6_TCLASS (IPv6) control
    /// message: a CNP's DSCP 48 on a socket whose data goes out with another.
    private func sendWithTrafficClass(_ datagram: UnsafeRawBufferPointer, to address: inout SocketAddress, _ trafficClass: TrafficClass) -> WireSendResult {
        var control = ControlMessageInt()
        control.header.cmsg_len = MemoryLayout<cmsghdr>.size + 4
        if case .ipv6 = local.address {
            control.header.cmsg_level = Int32(IPPROTO_IPV6)
            control.header.cmsg_type = IPV6_TCLASS
        } else {
            control.header.cmsg_level = Int32(IPPROTO_IP)
            control.header.cmsg_type = IP_TOS
        }
        control.value = Int32(trafficClass.rawValue)
        var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: datagram.baseAddress), iov_len: datagram.count)
        let result = address.withSockaddr { name, length in
            withUnsafeMutableBytes(of: &control) { controlBytes in
                withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr(msg_name: UnsafeMutableRawPointer(mutating: name), msg_namelen: length, msg_iov: vectorPointer, msg_iovlen: 1,
                                         msg_control: controlBytes.baseAddress, msg_controllen: controlBytes.count, msg_flags: 0)
                    return sendmsg(descriptor, &message, 0)
                }
            }
        }
        return SocketCall.sendResult(result)
    }

    /// `recvfrom(2)` until the socket is empty or the batch is full.
    package func receive(into batch: ReceiveBatch) {
        batch.reset()
        if rawDescriptor >= 0 { receiveWithHeaders(into: batch); return }
        guard descriptor >= 0 else { return }
        var from = SocketAddress()
        // IP_RECVTOS / IPV6_RECVTCLASS and UDP_GRO deliver control messages (none when not asked for).
        var control = ControlMessages()
        while batch.count < batch.capacity {
            let target = batch.buffer(batch.count)
            var vector = iovec(iov_base: target.baseAddress, iov_len: target.count)
            let (length, controlLength) = from.withMutableSockaddr { name, nameLength in
                withUnsafeMutableBytes(of: &control) { controlBytes -> (Int, Int) in
                    withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        var message = msghdr(msg_name: UnsafeMutableRawPointer(name), msg_namelen: nameLength.pointee, msg_iov: vectorPointer, msg_iovlen: 1,
                                             msg_control: controlBytes.baseAddress, msg_controllen: controlBytes.count, msg_flags: 0)
                        let length = recvmsg(descriptor, &message, 0)
                        return (length, message.msg_controllen)
                    }
                }
            }
            guard length >= 0 else {
                if let failure = SocketCall.receiveFailure(errno) { batch.error = failure }
                return
            }
            let (trafficClass, segmentLength) = control.parse(length: controlLength)
            batch.append(length: length, from: from.endpoint, trafficClass: trafficClass, segmentLength: segmentLength)
        }
    }

    /// The raw socket's datagrams start with their IPv4 and UDP headers: the engine gets the
    /// UDP payload in place, its source, and the Identification and flags the ICRC covers.
    /// One `recvmmsg(2)` takes every datagram waiting (up to the batch's capacity), so a
    /// ping-pong pays one receive call per packet instead of a `recv` and a trailing EAGAIN.
    private func receiveWithHeaders(into batch: ReceiveBatch) {
        // The headers point at the batch's buffers once: the kernel writes only each message's
        // length and flags, so a busy poll that finds nothing does not rebuild 64 of them.
        if rawMessageCapacity < batch.capacity || rawPreparedFor != batch.buffer(0).baseAddress {
            if rawMessageCapacity < batch.capacity {
                rawMessages?.deallocate()
                rawVectors?.deallocate()
                rawMessages = .allocate(capacity: batch.capacity)
                rawVectors = .allocate(capacity: batch.capacity)
                rawMessageCapacity = batch.capacity
            }
            guard let messages = rawMessages, let vectors = rawVectors else { return }
            for index in 0..<batch.capacity {
                let target = batch.buffer(index)
                vectors[index] = iovec(iov_base: target.baseAddress, iov_len: target.count)
                messages[index] = csocketbatch_message(header: msghdr(msg_name: nil, msg_namelen: 0, msg_iov: vectors + index, msg_iovlen: 1,
                                                                      msg_control: nil, msg_controllen: 0, msg_flags: 0), length: 0)
            }
            rawPreparedFor = batch.buffer(0).baseAddress
        }
        guard let messages = rawMessages else { return }
        let received = Int(csocketbatch_recvmmsg(rawDescriptor, messages, UInt32(batch.capacity), Int32(MSG_DONTWAIT)))
        guard received > 0 else {
            if received < 0, let failure = SocketCall.receiveFailure(errno) { batch.error = failure }
            return
        }
        for index in 0..<received {
            let target = batch.buffer(index)
            let length = min(Int(messages[index].length), target.count)
            guard let header = IPv4UDPHeader(UnsafeRawBufferPointer(rebasing: target[0..<length])) else {
                // Keep slots aligned with buffers: an empty datagram the engine counts as malformed.
                batch.error = EPROTO
                batch.append(length: 0, from: WireEndpoint(.ipv4(0), port: 0))
                continue
            }
            batch.append(length: header.payloadLength, offset: header.payloadOffset,
                         from: WireEndpoint(.ipv4(header.source), port: header.sourcePort), ipv4: header.fields,
                         trafficClass: header.trafficClass)
        }
    }

    /// `close(2)` of the sockets. Idempotent.
    package func close() {
        transmitBatch.reset()
        for fd in portSockets.values where fd >= 0 { _ = Glibc.close(fd) }
        portSockets.removeAll()
        if rawDescriptor >= 0 { _ = Glibc.close(rawDescriptor); rawDescriptor = -1 }
        if rawSendDescriptor >= 0 { _ = Glibc.close(rawSendDescriptor); rawSendDescriptor = -1 }
        rawSendBuffer?.deallocate()
        rawSendBuffer = nil
        rawMessages?.deallocate()
        rawMessages = nil
        rawVectors?.deallocate()
        rawVectors = nil
        rawMessageCapacity = 0
        rawPreparedFor = nil
        guard descriptor >= 0 else { return }
        _ = Glibc.close(descriptor)
        descriptor = -1
    }
}

/// One control message with room for an int, sent: IP_TOS / IPV6_TCLASS, UDP_SEGMENT.
/// (The CMSG_* macros do not import into Swift; this is their layout on Linux.)
struct ControlMessageInt {
    var header = cmsghdr()
    var value: Int32 = 0
    var padding: Int32 = 0
}

/// The control area of one received datagram: room for IP_TOS/IPV6_TCLASS and UDP_GRO.
/// (The CMSG_* macros do not import into Swift; this walks their Linux layout.)
struct ControlMessages {
    private var storage: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)

    /// The DSCP/ECN byte (`.unmarked` when none came) and the GSO segment size (0 when the
    /// datagram is one packet) in a control area `length` bytes long.
    func parse(length: Int) -> (TrafficClass, Int) {
        var trafficClass = TrafficClass.unmarked, segmentLength = 0
        withUnsafeBytes(of: storage) { bytes in
            let headerSize = MemoryLayout<cmsghdr>.size
            var offset = 0
            let end = min(length, bytes.count)
            while offset + headerSize <= end {
                let messageLength = Int(bytes.load(fromByteOffset: offset, as: Int.self))
                guard messageLength >= headerSize, offset + messageLength <= end else { break }
                let level = bytes.load(fromByteOffset: offset + 8, as: Int32.self)
                let type = bytes.load(fromByteOffset: offset + 12, as: Int32.self)
                let data = offset + headerSize
                if messageLength > headerSize {
                    if level == Int32(IPPROTO_IP) && type == IP_TOS {
                        trafficClass = TrafficClass(rawValue: bytes[data])
                    } else if level == Int32(IPPROTO_IPV6) && type == IPV6_TCLASS, messageLength >= headerSize + 4 {
                        trafficClass = TrafficClass(rawValue: UInt8(truncatingIfNeeded: bytes.loadUnaligned(fromByteOffset: data, as: Int32.self)))
                    } else if level == Int32(IPPROTO_UDP) && type == SocketCall.udpGRO, messageLength >= headerSize + 4 {
                        segmentLength = Int(bytes.loadUnaligned(fromByteOffset: data, as: Int32.self))
                    }
                }
                offset += (messageLength + 7) & ~7
            }
        }
        return (trafficClass, segmentLength)
    }
}

/// Classic BPF programs for `SO_ATTACH_FILTER` (the layout of `struct sock_filter`).
enum PacketFilter {
    struct Instruction {
        var code: UInt16
        var jumpIfTrue: UInt8
        var jumpIfFalse: UInt8
        var constant: UInt32
    }

    /// Keeps nothing.
    static let dropAll = [Instruction(code: 0x06, jumpIfTrue: 0, jumpIfFalse: 0, constant: 0)]

    /// On a raw IPv4 socket: keeps unfragmented-or-first-fragment UDP datagrams to `port`.
    static func udpDestination(port: UInt16) -> [Instruction] {
        [
            Instruction(code: 0x28, jumpIfTrue: 0, jumpIfFalse: 0, constant: 6),          // ldh [6]: flags, fragment offset
            Instruction(code: 0x45, jumpIfTrue: 4, jumpIfFalse: 0, constant: 0x1FFF),     // jset #0x1fff → drop
            Instruction(code: 0xB1, jumpIfTrue: 0, jumpIfFalse: 0, constant: 0),          // ldxb 4*([0]&0xf): IP header length
            Instruction(code: 0x48, jumpIfTrue: 0, jumpIfFalse: 0, constant: 2),          // ldh [x+2]: UDP destination port
            Instruction(code: 0x15, jumpIfTrue: 0, jumpIfFalse: 1, constant: UInt32(port)), // jeq #port
            Instruction(code: 0x06, jumpIfTrue: 0, jumpIfFalse: 0, constant: 0xFFFF),     // ret: keep
            Instruction(code: 0x06, jumpIfTrue: 0, jumpIfFalse: 0, constant: 0),          // ret: drop
        ]
    }
}

/// The one place that turns socket return conventions into the engine's results.
enum SocketCall {
    /// `<netinet/udp.h>`'s UDP_SEGMENT and UDP_GRO (SOL_UDP options; not in Swift's Glibc module).
    static let udpSegment: Int32 = 103
    static let udpGRO: Int32 = 104

    /// A socket type that never blocks and is closed across exec, as every engine socket is.
    static func nonBlocking(_ type: __socket_type) -> Int32 {
        Int32(type.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    }

    /// A call returning a descriptor or −1 with errno.
    static func descriptor(_ operation: String, _ result: Int32, _ message: String) throws(SoftRoCEError) -> Int32 {
        guard result >= 0 else { throw SoftRoCEError(operation, errno: errno, message) }
        return result
    }

    /// `sendto`'s byte count or −1 with errno.
    static func sendResult(_ result: Int) -> WireSendResult {
        if result >= 0 { return .sent }
        switch errno {
        case EAGAIN, EWOULDBLOCK: return .wouldBlock
        case ENOBUFS: return .noBuffers
        case ECONNREFUSED: return .refused
        case let code: return .failed(errno: code)
        }
    }

    /// 8 MiB send and receive buffers: bursts of a window of MTU packets per QP
    /// (the FORCE variants need CAP_NET_ADMIN; the plain ones are capped by rmem_max).
    static func enlargeBuffers(_ descriptor: Int32) {
        var size: Int32 = 8 << 20
        if setsockopt(descriptor, SOL_SOCKET, SO_RCVBUFFORCE, &size, 4) != 0 { _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, 4) }
        if setsockopt(descriptor, SOL_SOCKET, SO_SNDBUFFORCE, &size, 4) != 0 { _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &size, 4) }
    }

    /// `setsockopt(IP_TOS)` (IPv4) or `setsockopt(IPV6_TCLASS)` (IPv6) to what datagrams go out
    /// with, and with `receiving` IP_RECVTOS / IPV6_RECVTCLASS, so that each received datagram
    /// brings its DSCP and ECN bits along.
    static func setTrafficClass(_ descriptor: Int32, address: SoftAddress, _ trafficClass: TrafficClass, receiving: Bool) throws(SoftRoCEError) {
        var value = Int32(trafficClass.rawValue)
        var on: Int32 = 1
        let (level, send, receive, names): (Int32, Int32, Int32, (String, String)) = switch address {
        case .ipv4: (Int32(IPPROTO_IP), IP_TOS, IP_RECVTOS, ("setsockopt(IP_TOS)", "setsockopt(IP_RECVTOS)"))
        case .ipv6: (Int32(IPPROTO_IPV6), IPV6_TCLASS, IPV6_RECVTCLASS, ("setsockopt(IPV6_TCLASS)", "setsockopt(IPV6_RECVTCLASS)"))
        }
        if trafficClass != .unmarked, setsockopt(descriptor, level, send, &value, 4) != 0 {
            throw SoftRoCEError(names.0, errno: errno, "cannot set the DSCP/ECN bits datagrams are sent with")
        }
        if receiving, setsockopt(descriptor, level, receive, &on, 4) != 0 {
            throw SoftRoCEError(names.1, errno: errno, "cannot read the ECN bits of received datagrams")
        }
    }

    /// `setsockopt(SO_ATTACH_FILTER)` of a classic BPF program.
    static func attachFilter(_ descriptor: Int32, _ program: [PacketFilter.Instruction], _ operation: String) throws(SoftRoCEError) {
        let result = program.withUnsafeBufferPointer { instructions -> Int32 in
            // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
            var header = (UInt16(instructions.count), UInt16(0), UInt32(0), UInt(bitPattern: instructions.baseAddress))
            return setsockopt(descriptor, SOL_SOCKET, SO_ATTACH_FILTER, &header, socklen_t(MemoryLayout.size(ofValue: header)))
        }
        guard result == 0 else { throw SoftRoCEError(operation, errno: errno, "cannot attach the packet filter") }
    }

    /// `recvfrom`'s −1: nil when nothing was waiting (EAGAIN) or a signal interrupted it.
    static func receiveFailure(_ code: Int32) -> Int32? {
        code == EAGAIN || code == EWOULDBLOCK || code == EINTR ? nil : code
    }
}

/// A `sockaddr_in`/`sockaddr_in6` in a `sockaddr_storage`, converted from and to `WireEndpoint`.
struct SocketAddress {
    private var storage = sockaddr_storage()

    init() {}

    init(_ endpoint: WireEndpoint) {
        withUnsafeMutableBytes(of: &storage) { bytes in
            switch endpoint.address {
            case .ipv4(let value):
                bytes.storeBytes(of: sa_family_t(AF_INET), as: sa_family_t.self)
                bytes.storeBytes(of: endpoint.port.bigEndian, toByteOffset: 2, as: UInt16.self)
                bytes.storeBytes(of: value.bigEndian, toByteOffset: 4, as: UInt32.self)
            case .ipv6(let high, let low):
                bytes.storeBytes(of: sa_family_t(AF_INET6), as: sa_family_t.self)
                bytes.storeBytes(of: endpoint.port.bigEndian, toByteOffset: 2, as: UInt16.self)
                bytes.storeBytes(of: high.bigEndian, toByteOffset: 8, as: UInt64.self)
                bytes.storeBytes(of: low.bigEndian, toByteOffset: 16, as: UInt64.self)
            }
        }
    }

    private var length: socklen_t {
        let family = withUnsafeBytes(of: storage) { $0.load(as: sa_family_t.self) }
        return socklen_t(family == sa_family_t(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
    }

    mutating func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        let length = self.length
        return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }

    mutating func withMutableSockaddr<T>(_ body: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> T) -> T {
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, &length) } }
    }

    var endpoint: WireEndpoint {
        withUnsafeBytes(of: storage) { bytes in
            let port = UInt16(bigEndian: bytes.load(fromByteOffset: 2, as: UInt16.self))
            if bytes.load(as: sa_family_t.self) == sa_family_t(AF_INET6) {
                let high = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                let low = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
                return WireEndpoint(SoftAddress(gidHigh: high, low: low), port: port)
            }
            return WireEndpoint(.ipv4(UInt32(bigEndian: bytes.load(fromByteOffset: 4, as: UInt32.self))), port: port)
        }
    }
}

extension SoftAddress {
    /// 127.0.0.0/8 or ::1.
    var isLoopback: Bool {
        switch self {
        case .ipv4(let value): value >> 24 == 127
        case .ipv6(let high, let low): high == 0 && low == 1
        }
    }
}
