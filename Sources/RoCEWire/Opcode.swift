/// A BTH opcode that this module understands: the RC, UC and UD opcodes that Linux rxe
/// speaks, and the RoCEv2 congestion notification packet (CNP).
///
/// An `Opcode` value is always a known one, so its table entries (transport, the extension
/// headers it carries, whether it carries a payload, its place in a message) are total.
///
/// ```swift
/// guard let op = Opcode(rawValue: 0x0B) else { ... }   // RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE
/// op.transport                                       // .reliableConnected
/// op.extendedHeaders.contains(.rdma)                 // true (RETH)
/// op.headerLength                                    // 12 + 16 + 4
/// ```
///
/// RD (reliable datagram, 0x40–0x5F) is deliberately absent: neither rxe nor common RNICs
/// implement it, and accepting it would only widen what a hostile packet can reach.
@frozen
public struct Opcode: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8
    /// Table entry, decoded once in `init` so that every property below is a bit test.
    @usableFromInline let entry: UInt16

    /// Returns `nil` for an opcode that this module does not know.
    @inlinable
    public init?(rawValue: UInt8) {
        guard let entry = Opcode.tableEntry(rawValue) else { return nil }
        self.rawValue = rawValue
        self.entry = entry
    }
}

extension Opcode {
    /// The transport service an opcode belongs to (its top three bits).
    @frozen
    public enum Transport: UInt8, Sendable, CaseIterable {
        case reliableConnected = 0
        case unreliableConnected = 1
        case unreliableDatagram = 3
        /// RoCEv2 CNP (0x81): not a transport service, but a packet of its own kind.
        case congestionNotification = 4
    }

    /// What a packet with this opcode does.
    @frozen
    public enum Operation: UInt8, Sendable, CaseIterable {
        case send = 0
        case rdmaWrite
        case rdmaReadRequest
        case rdmaReadResponse
        case acknowledge
        case atomicAcknowledge
        case compareSwap
        case fetchAdd
        case congestionNotification
    }

    /// Where a packet sits in a multi-packet message.
    @frozen
    public enum Position: UInt8, Sendable, CaseIterable {
        case first = 0, middle, last, only
    }

    /// The extension headers that follow the BTH, in wire order (DETH, RETH, AtomicETH,
    /// AETH, AtomicAckETH, ImmDt, IETH).
    @frozen
    public struct ExtendedHeaders: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// DETH, 8 bytes.
        public static let datagram = ExtendedHeaders(rawValue: 1 << 0)
        /// RETH, 16 bytes.
        public static let rdma = ExtendedHeaders(rawValue: 1 << 1)
        /// AtomicETH, 28 bytes.
        public static let atomic = ExtendedHeaders(rawValue: 1 << 2)
        /// AETH, 4 bytes.
        public static let acknowledge = ExtendedHeaders(rawValue: 1 << 3)
        /// AtomicAckETH, 8 bytes.
        public static let atomicAcknowledge = ExtendedHeaders(rawValue: 1 << 4)
        /// ImmDt, 4 bytes.
        public static let immediateData = ExtendedHeaders(rawValue: 1 << 5)
        /// IETH, 4 bytes.
        public static let invalidate = ExtendedHeaders(rawValue: 1 << 6)
        /// The 16 reserved bytes of a CNP, treated as a header so that a CNP has no payload.
        public static let congestionNotificationReserved = ExtendedHeaders(rawValue: 1 << 7)

        /// Total length in bytes of the headers in this set.
        @inlinable
        public var byteCount: Int {
            var n = 0
            if contains(.datagram) { n += 8 }
            if contains(.rdma) { n += 16 }
            if contains(.atomic) { n += 28 }
            if contains(.acknowledge) { n += 4 }
            if contains(.atomicAcknowledge) { n += 8 }
            if contains(.immediateData) { n += 4 }
            if contains(.invalidate) { n += 4 }
            if contains(.congestionNotificationReserved) { n += 16 }
            return n
        }
    }

    @inlinable public var transport: Transport { Transport(rawValue: rawValue >> 5).unsafelyUnwrapped }
    @inlinable public var extendedHeaders: ExtendedHeaders { ExtendedHeaders(rawValue: UInt8(truncatingIfNeeded: entry)) }
    @inlinable public var operation: Operation { Operation(rawValue: UInt8(truncatingIfNeeded: (entry >> 8) & 0xF)).unsafelyUnwrapped }
    @inlinable public var position: Position { Position(rawValue: UInt8(truncatingIfNeeded: (entry >> 12) & 0x3)).unsafelyUnwrapped }
    /// Whether packets with this opcode may carry a payload (zero bytes is still allowed).
    @inlinable public var carriesPayload: Bool { entry & Opcode.payloadBit != 0 }
    @inlinable public var hasImmediateData: Bool { extendedHeaders.contains(.immediateData) }
    @inlinable public var hasInvalidate: Bool { extendedHeaders.contains(.invalidate) }
    /// Bytes from the start of the BTH to the end of the last extension header.
    @inlinable public var headerLength: Int { BaseTransportHeader.byteCount + extendedHeaders.byteCount }

    /// Sent by a requester (sends, writes, read requests, atomics).
    @inlinable public var isRequest: Bool {
        switch operation {
        case .send, .rdmaWrite, .rdmaReadRequest, .compareSwap, .fetchAdd: true
        case .rdmaReadResponse, .acknowledge, .atomicAcknowledge, .congestionNotification: false
        }
    }

    /// Sent by a responder (read responses, acknowledgements, atomic acknowledgements).
    @inlinable public var isResponse: Bool {
        switch operation {
        case .rdmaReadResponse, .acknowledge, .atomicAcknowledge: true
        case .send, .rdmaWrite, .rdmaReadRequest, .compareSwap, .fetchAdd, .congestionNotification: false
        }
    }
}

// MARK: - The table

extension Opcode {
    @usableFromInline static let payloadBit: UInt16 = 1 << 14

    /// Packs (headers, operation, position, carries payload) into a table entry.
    @inlinable
    static func pack(_ headers: ExtendedHeaders, _ operation: Operation, _ position: Position, payload: Bool) -> UInt16 {
        UInt16(headers.rawValue) | UInt16(operation.rawValue) << 8 | UInt16(position.rawValue) << 12 | (payload ? payloadBit : 0)
    }

    /// The opcode table (IBTA Vol 1 §9.2, rxe_opcode.c). The low five bits name the
    /// operation, the top three the transport; UC and UD accept subsets of RC's operations.
    @inlinable
    static func tableEntry(_ raw: UInt8) -> UInt16? {
        let operation = raw & 0x1F
        switch raw >> 5 {
        case 0: break                                   // RC: everything below
        case 1: guard operation <= 0x0B else { return nil }                 // UC: sends and writes
        case 3: guard operation == 0x04 || operation == 0x05 else { return nil } // UD: send only (± imm)
        case 4: return raw == 0x81 ? pack(.congestionNotificationReserved, .congestionNotification, .only, payload: false) : nil
        default: return nil
        }
        // UD packets carry a DETH before everything else.
        let deth: ExtendedHeaders = raw >> 5 == 3 ? .datagram : []
        switch operation {
        case 0x00: return pack(deth, .send, .first, payload: true)
        case 0x01: return pack(deth, .send, .middle, payload: true)
        case 0x02: return pack(deth, .send, .last, payload: true)
        case 0x03: return pack(deth.union(.immediateData), .send, .last, payload: true)
        case 0x04: return pack(deth, .send, .only, payload: true)
        case 0x05: return pack(deth.union(.immediateData), .send, .only, payload: true)
        case 0x06: return pack(.rdma, .rdmaWrite, .first, payload: true)
        case 0x07: return pack([], .rdmaWrite, .middle, payload: true)
        case 0x08: return pack([], .rdmaWrite, .last, payload: true)
        case 0x09: return pack(.immediateData, .rdmaWrite, .last, payload: true)
        case 0x0A: return pack(.rdma, .rdmaWrite, .only, payload: true)
        case 0x0B: return pack([.rdma, .immediateData], .rdmaWrite, .only, payload: true)
        case 0x0C: return pack(.rdma, .rdmaReadRequest, .only, payload: false)
        case 0x0D: return pack(.acknowledge, .rdmaReadResponse, .first, payload: true)
        case 0x0E: return pack([], .rdmaReadResponse, .middle, payload: true)
        case 0x0F: return pack(.acknowledge, .rdmaReadResponse, .last, payload: true)
        case 0x10: return pack(.acknowledge, .rdmaReadResponse, .only, payload: true)
        case 0x11: return pack(.acknowledge, .acknowledge, .only, payload: false)
        case 0x12: return pack([.acknowledge, .atomicAcknowledge], .atomicAcknowledge, .only, payload: false)
        case 0x13: return pack(.atomic, .compareSwap, .only, payload: false)
        case 0x14: return pack(.atomic, .fetchAdd, .only, payload: false)
        case 0x16: return pack(.invalidate, .send, .last, payload: true)
        case 0x17: return pack(.invalidate, .send, .only, payload: true)
        default: return nil
        }
    }
}

// MARK: - Named opcodes

extension Opcode {
    @inlinable static func known(_ raw: UInt8) -> Opcode { Opcode(rawValue: raw).unsafelyUnwrapped }

    public static let rcSendFirst = known(0x00)
    public static let rcSendMiddle = known(0x01)
    public static let rcSendLast = known(0x02)
    public static let rcSendLastWithImmediate = known(0x03)
    public static let rcSendOnly = known(0x04)
    public static let rcSendOnlyWithImmediate = known(0x05)
    public static let rcRDMAWriteFirst = known(0x06)
    public static let rcRDMAWriteMiddle = known(0x07)
    public static let rcRDMAWriteLast = known(0x08)
    public static let rcRDMAWriteLastWithImmediate = known(0x09)
    public static let rcRDMAWriteOnly = known(0x0A)
    public static let rcRDMAWriteOnlyWithImmediate = known(0x0B)
    public static let rcRDMAReadRequest = known(0x0C)
    public static let rcRDMAReadResponseFirst = known(0x0D)
    public static let rcRDMAReadResponseMiddle = known(0x0E)
    public static let rcRDMAReadResponseLast = known(0x0F)
    public static let rcRDMAReadResponseOnly = known(0x10)
    public static let rcAcknowledge = known(0x11)
    public static let rcAtomicAcknowledge = known(0x12)
    public static let rcCompareSwap = known(0x13)
    public static let rcFetchAdd = known(0x14)
    public static let rcSendLastWithInvalidate = known(0x16)
    public static let rcSendOnlyWithInvalidate = known(0x17)

    public static let ucSendFirst = known(0x20)
    public static let ucSendMiddle = known(0x21)
    public static let ucSendLast = known(0x22)
    public static let ucSendLastWithImmediate = known(0x23)
    public static let ucSendOnly = known(0x24)
    public static let ucSendOnlyWithImmediate = known(0x25)
    public static let ucRDMAWriteFirst = known(0x26)
    public static let ucRDMAWriteMiddle = known(0x27)
    public static let ucRDMAWriteLast = known(0x28)
    public static let ucRDMAWriteLastWithImmediate = known(0x29)
    public static let ucRDMAWriteOnly = known(0x2A)
    public static let ucRDMAWriteOnlyWithImmediate = known(0x2B)

    public static let udSendOnly = known(0x64)
    public static let udSendOnlyWithImmediate = known(0x65)

    /// RoCEv2 congestion notification packet.
    public static let congestionNotification = known(0x81)

    /// Every opcode this module knows, in numeric order.
    public static let allKnown: [Opcode] = (0...255).compactMap { Opcode(rawValue: UInt8($0)) }
}

extension Opcode: CustomStringConvertible {
    /// The IBTA name, spelled as rxe and scapy spell it, e.g. `RC_SEND_ONLY_WITH_IMMEDIATE`.
    public var description: String {
        if self == .congestionNotification { return "CNP" }
        let transport = switch transport {
        case .reliableConnected: "RC"
        case .unreliableConnected: "UC"
        case .unreliableDatagram: "UD"
        case .congestionNotification: "CNP"
        }
        let name = switch rawValue & 0x1F {
        case 0x00: "SEND_FIRST"
        case 0x01: "SEND_MIDDLE"
        case 0x02: "SEND_LAST"
        case 0x03: "SEND_LAST_WITH_IMMEDIATE"
        case 0x04: "SEND_ONLY"
        case 0x05: "SEND_ONLY_WITH_IMMEDIATE"
        case 0x06: "RDMA_WRITE_FIRST"
        case 0x07: "RDMA_WRITE_MIDDLE"
        case 0x08: "RDMA_WRITE_LAST"
        case 0x09: "RDMA_WRITE_LAST_WITH_IMMEDIATE"
        case 0x0A: "RDMA_WRITE_ONLY"
        case 0x0B: "RDMA_WRITE_ONLY_WITH_IMMEDIATE"
        case 0x0C: "RDMA_READ_REQUEST"
        case 0x0D: "RDMA_READ_RESPONSE_FIRST"
        case 0x0E: "RDMA_READ_RESPONSE_MIDDLE"
        case 0x0F: "RDMA_READ_RESPONSE_LAST"
        case 0x10: "RDMA_READ_RESPONSE_ONLY"
        case 0x11: "ACKNOWLEDGE"
        case 0x12: "ATOMIC_ACKNOWLEDGE"
        case 0x13: "COMPARE_SWAP"
        case 0x14: "FETCH_ADD"
        case 0x16: "SEND_LAST_WITH_INVALIDATE"
        default: "SEND_ONLY_WITH_INVALIDATE"   // 0x17, the only other known operation
        }
        return "\(transport)_\(name)"
    }
}
