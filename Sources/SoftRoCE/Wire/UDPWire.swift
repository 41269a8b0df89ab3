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
/// port). Only this file and `SocketCall.swift` (its socket-level pieces) know `sockaddr`; every socket call's
/// result goes through `SocketCall`, which names the call and the errno.
///
/// A wire is used only under its device's lock, so the state a poll touches is
/// `@exclusivity(unchecked)`: four dynamic exclusivity checks were a quarter of the user-space
/// instructions of an empty poll (callgrind, softroce-bench).
package final class UDPWire: Wire {
    /// Whether to read received datagrams through a raw socket (IPv4 only).
    package enum RawReceive: Sendable { case never, ifPermitted, required }

    package let local: WireEndpoint
    @exclusivity(unchecked) private var descriptor: Int32
    /// The raw IPPROTO_UDP socket receiving for `local` (−1: receive on the UDP socket).
    @exclusivity(unchecked) private var rawDescriptor: Int32 = -1
    /// The IP_HDRINCL raw socket sending from per-QP source ports (−1: every datagram
    /// leaves from the UDP socket's port). Opened with the raw receive socket (IPv4 only).
    @exclusivity(unchecked) private var rawSendDescriptor: Int32 = -1
    /// The IPv4 and UDP headers of a datagram sent through `rawSendDescriptor`.
    private var rawSendBuffer: UnsafeMutableRawPointer? = nil
    /// `recvmmsg`'s message headers and vectors for the raw receive socket, one per slot of a
    /// receive batch (allocated once, pointed at the batch's buffers on each receive).
    @exclusivity(unchecked) private var rawMessages: UnsafeMutablePointer<csocketbatch_message>? = nil
    private var rawVectors: UnsafeMutablePointer<iovec>? = nil
    @exclusivity(unchecked) private var rawMessageCapacity = 0
    /// The first buffer of the batch `rawMessages` point into (nil: not prepared).
    @exclusivity(unchecked) private var rawPreparedFor: UnsafeMutableRawPointer? = nil
    package var choosesSourcePort: Bool { rawSendDescriptor >= 0 }
    /// Packets held back during an engine round for one GSO send (`TransmitBatch`).
    private let transmitBatch = TransmitBatch()
    /// Datagrams held back during an engine round that cannot join a GSO batch (`HeldDatagrams`).
    private let held = HeldDatagrams()
    /// True between `holdSends()` and `releaseSends()`.
    @exclusivity(unchecked) private var holding = false
    /// The datagram `prepareSend` was told of leads a batch (`BatchRole.leads`).
    @exclusivity(unchecked) private var leadsBatch = false
    /// The first refusal of a send made while holding (reported by `releaseSends`).
    @exclusivity(unchecked) private var heldFailure = WireSendResult.sent
    /// System calls that sent datagrams (`sendto`, `sendmsg`, `sendmmsg`).
    @exclusivity(unchecked) private var directSendCalls: UInt64 = 0
    /// False once the kernel refused a GSO send (no UDP_SEGMENT): every datagram then leaves alone.
    @exclusivity(unchecked) private var segmentationOffload: Bool
    /// UDP sockets bound to per-QP source ports, for GSO sends from those ports (an IP_HDRINCL
    /// socket cannot segment); −1 where the port could not be bound. At most `maxPortSockets`.
    @exclusivity(unchecked) private var portSockets: [UInt16: Int32] = [:]
    /// The last `batchDescriptor` answer: a QP's packets come in runs, and hashing the port
    /// for every packet was a fifth of a 2-byte SEND's `send` (callgrind).
    @exclusivity(unchecked) private var lastPort: UInt16 = 0
    @exclusivity(unchecked) private var lastPortSocket: Int32 = -1
    private static let maxPortSockets = 128
    /// How many datagrams the next receive asks for (`ReceiveLimit`).
    @exclusivity(unchecked) private var receiveLimit = ReceiveLimit()
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
                    // The instance is whole, so its deinit runs `close()`: the descriptor must not be
                    // closed twice (the second close would hit whatever socket reused the number).
                    _ = Glibc.close(descriptor)
                    descriptor = -1
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
        // Bound and filtered from here on; what came before is not ours.
        SocketCall.discardQueued(raw)
        return raw
    }

    deinit { close() }

    /// Places the datagram in the GSO batch `prepareSend` opened for it, or holds it for the
    /// round's `sendmmsg` (a batch-leading one on its port's UDP socket, to leave in the batch's
    /// call); otherwise
    /// `sendto(2)` of one datagram from the UDP socket (`sendmsg(2)` with an IP_TOS/IPV6_TCLASS
    /// control message when `trafficClass` is not the socket's), or — for another source port —
    /// `sendto(2)` on the UDP socket bound to that port, else (or when held for `sendmmsg`, which
    /// needs one socket for all ports) `sendmsg(2)` on the IP_HDRINCL raw socket with an IPv4
    /// header of ID 0 and DF (what the ICRC was sealed
    /// over; the kernel keeps a zero ID on DF packets), `trafficClass` as TOS and a UDP header
    /// without checksum, as kernel rxe sends on IPv4.
    package func send(_ datagram: UnsafeRawBufferPointer, from sourcePort: UInt16, to destination: WireEndpoint,
                      trafficClass: TrafficClass) -> WireSendResult {
        guard descriptor >= 0 else { return .failed(errno: EBADF) }
        let leads = leadsBatch
        leadsBatch = false
        if transmitBatch.append(datagram) { return .sent }
        if sourcePort != local.port, rawSendDescriptor >= 0, let header = rawSendBuffer,
           case .ipv4(let from) = local.address, case .ipv4(let to) = destination.address, datagram.count + 28 <= 65535 {
            // A long message's first packet waits on its port's UDP socket, where the batch its
            // message opens next leaves: both then go in one `sendmmsg` (`HeldDatagrams`).
            if leads, trafficClass == socketTrafficClass, case let portSocket = batchDescriptor(for: sourcePort), portSocket >= 0,
               hold(datagram, headerLength: 0, to: SocketAddress(destination), through: portSocket) != nil {
                return .sent
            }
            if let slot = hold(datagram, headerLength: 28, to: SocketAddress(WireEndpoint(destination.address, port: 0)), through: rawSendDescriptor) {
                IPv4UDPHeader.write(into: slot, totalLength: 28 + datagram.count, fields: .softSender, trafficClass: trafficClass,
                                    source: from, destination: to, sourcePort: sourcePort, destinationPort: destination.port)
                return .sent
            }
            // Sent alone, from the UDP socket bound to its port where there is one: cheaper in the
            // kernel than the raw socket (2 B ping-pong p50 5.03 -> 4.94 us, 6 of 6 interleaved
            // runs), with the same header (an unconnected DF socket writes Identification 0).
            if trafficClass == socketTrafficClass, case let portSocket = batchDescriptor(for: sourcePort), portSocket >= 0 {
                var address = SocketAddress(destination)
                let result = address.withSockaddr { sendto(portSocket, datagram.baseAddress, datagram.count, 0, $0, $1) }
                directSendCalls += 1
                return SocketCall.sendResult(result)
            }
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
            directSendCalls += 1
            return SocketCall.sendResult(result)
        }
        var address = SocketAddress(destination)
        if trafficClass != socketTrafficClass {
            sendHeld()
            return sendWithTrafficClass(datagram, to: &address, trafficClass)
        }
        if hold(datagram, headerLength: 0, to: address, through: descriptor) != nil { return .sent }
        let result = address.withSockaddr { sendto(descriptor, datagram.baseAddress, datagram.count, 0, $0, $1) }
        directSendCalls += 1
        return SocketCall.sendResult(result)
    }

    /// Holds `datagram` for the round's `sendmmsg` (`HeldDatagrams`) and returns its slot, whose
    /// first `headerLength` bytes the caller writes; nil when not holding. Sends the held
    /// datagrams first when this one cannot join them.
    private func hold(_ datagram: UnsafeRawBufferPointer, headerLength: Int, to address: SocketAddress,
                      through socket: Int32) -> UnsafeMutableRawPointer? {
        guard holding, headerLength + datagram.count <= HeldDatagrams.storageBytes else {
            sendHeld()
            return nil
        }
        if !held.canHold(length: headerLength + datagram.count, through: socket) { sendHeld() }
        return held.hold(datagram, headerLength: headerLength, to: address, through: socket)
    }

    /// Sends the held datagrams now, keeping the first refusal for `releaseSends`.
    private func sendHeld() {
        guard held.count > 0 else { return }
        let result = held.send()
        if heldFailure == .sent { heldFailure = result }
    }

    /// Places the datagram in the pending GSO batch when it can join it or open one (the
    /// batch's rules: `TransmitBatch`), sending the pending batch first when it cannot.
    package func prepareSend(length: Int, from sourcePort: UInt16, to destination: WireEndpoint, trafficClass: TrafficClass,
                             batchRole: BatchRole) -> IPv4HeaderFields {
        let canOpen = batchRole == .opens && segmentationOffload && trafficClass == socketTrafficClass && batchDescriptor(for: sourcePort) >= 0
        let index = transmitBatch.prepare(length: length, sourcePort: sourcePort, destination: destination, canOpen: canOpen,
                                          canJoin: batchRole != .alone && trafficClass == socketTrafficClass) {
            _ = sendBatch()
        }
        leadsBatch = batchRole == .leads && transmitBatch.holding
        // Held datagrams were produced before this batch's first packet: they leave first —
        // in the batch's own `sendmmsg` when they wait on its socket (`sendBatch`).
        if index == 0, held.count > 0, held.descriptor != batchDescriptor(for: sourcePort) { sendHeld() }
        guard let index, index > 0 else { return .softSender }
        return IPv4HeaderFields(identification: UInt16(index))
    }

    package func holdSends() {
        holding = descriptor >= 0
        transmitBatch.holding = segmentationOffload && holding
    }

    /// Sends what the round held: the held datagrams and the GSO batch after them (in one call
    /// when they share a socket: `sendBatch`).
    package func releaseSends() -> WireSendResult {
        holding = false
        transmitBatch.holding = false
        let batch = sendBatch()
        sendHeld()
        let failure = heldFailure
        heldFailure = .sent
        return failure == .sent ? batch : failure
    }

    /// System calls that sent datagrams: one per `sendto`/`sendmsg`, one per `sendmmsg` of held ones.
    package var sendSystemCalls: UInt64 { directSendCalls + held.calls }

    /// The socket a batch from `sourcePort` leaves through: the UDP socket for its own port,
    /// else a UDP socket bound to that port (opened on first use: `socket`, `setsockopt`
    /// SO_REUSEPORT/IP_MTU_DISCOVER/IP_TOS, `bind`, a drop-all filter); −1 when none can be.
    private func batchDescriptor(for sourcePort: UInt16) -> Int32 {
        if sourcePort == local.port || rawSendDescriptor < 0 { return descriptor }
        if sourcePort == lastPort && lastPortSocket >= 0 { return lastPortSocket }
        if let known = portSockets[sourcePort] {
            (lastPort, lastPortSocket) = (sourcePort, known)
            return known
        }
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
        let segmented = batch.count > 1
        if held.count > 0 && held.descriptor != fd { sendHeld() }
        if held.count > 0 {
            // The datagrams held before the batch opened, on its socket (`prepareSend`): one call.
            let (heldResult, batchErrno) = held.send(followedBy: batch.bytes, segmentLength: segmented ? batch.segmentLength : 0, to: address)
            if heldFailure == .sent { heldFailure = heldResult }
            if batchErrno == 0 {
                if segmented { superDatagramsSent += 1 }
                return .sent
            }
            errno = batchErrno
            return segmentationFailed(segmented)
        }
        var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: batch.bytes.baseAddress), iov_len: batch.byteCount)
        var control = ControlMessageInt.udpSegment(batch.segmentLength)
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
        directSendCalls += 1
        if result < 0 { return segmentationFailed(segmented) }
        if segmented { superDatagramsSent += 1 }
        return .sent
    }

    /// The refusal of a batch's send (`errno` set): a kernel without UDP GSO (EIO, EINVAL,
    /// ENOPROTOOPT) turns batching off.
    private func segmentationFailed(_ segmented: Bool) -> WireSendResult {
        let code = errno
        if segmented && (code == EIO || code == EINVAL || code == ENOPROTOOPT) { segmentationOffload = false }
        errno = code
        return SocketCall.sendResult(-1)
    }

    /// GSO super-datagrams sent (each several packets).
    @exclusivity(unchecked) package private(set) var superDatagramsSent: UInt64 = 0

    /// `sendmsg(2)` with the traffic class as an IP_TOS (IPv4) or IPV6_TCLASS (IPv6) control
    /// message: a CNP's DSCP 48 on a socket whose data goes out with another.
    private func sendWithTrafficClass(_ datagram: UnsafeRawBufferPointer, to address: inout SocketAddress, _ trafficClass: TrafficClass) -> WireSendResult {
        var control = if case .ipv6 = local.address {
            ControlMessageInt(level: Int32(IPPROTO_IPV6), type: IPV6_TCLASS, value: Int32(trafficClass.rawValue))
        } else {
            ControlMessageInt(level: Int32(IPPROTO_IP), type: IP_TOS, value: Int32(trafficClass.rawValue))
        }
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
        directSendCalls += 1
        return SocketCall.sendResult(result)
    }

    /// `recvmsg(2)` until the socket is empty or `receiveLimit`'s count of datagrams came (at
    /// most the batch's capacity); through the raw socket, one `recvmmsg(2)` for as many.
    package func receive(into batch: ReceiveBatch) {
        batch.reset()
        let limit = receiveLimit.next(capacity: batch.capacity)
        defer { receiveLimit.record(received: batch.count) }
        if rawDescriptor >= 0 { receiveWithHeaders(into: batch, limit: limit); return }
        guard descriptor >= 0 else { return }
        var from = SocketAddress()
        // IP_RECVTOS / IPV6_RECVTCLASS and UDP_GRO deliver control messages (none when not asked for).
        var control = ControlMessages()
        while batch.count < limit {
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
    /// One `recvmmsg(2)` takes up to `limit` datagrams waiting, so a ping-pong pays one
    /// receive call per packet instead of a `recv` and a trailing EAGAIN.
    private func receiveWithHeaders(into batch: ReceiveBatch, limit: Int) {
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
        let received = Int(csocketbatch_recvmmsg(rawDescriptor, messages, UInt32(limit), Int32(MSG_DONTWAIT)))
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
        held.discard()
        holding = false
        for fd in portSockets.values where fd >= 0 { _ = Glibc.close(fd) }
        portSockets.removeAll()
        (lastPort, lastPortSocket) = (0, -1)
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
