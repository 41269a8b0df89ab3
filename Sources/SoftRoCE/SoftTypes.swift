// The value types the soft engine speaks. Numeric codes (access bits, completion status,
// completion opcode) are the verbs values, so the RDMA module translates by copying.

/// What a memory region or queue pair allows. Same bits as `IBV_ACCESS_*`.
public struct SoftAccess: OptionSet, Hashable, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let localWrite = SoftAccess(rawValue: 1)
    public static let remoteWrite = SoftAccess(rawValue: 2)
    public static let remoteRead = SoftAccess(rawValue: 4)
    public static let remoteAtomic = SoftAccess(rawValue: 8)
}

public enum SoftQueuePairType: Sendable, Equatable {
    case reliableConnected, unreliableDatagram
}

/// The verbs QP states (same order as `enum ibv_qp_state`).
public enum SoftQueuePairState: UInt32, Sendable, Equatable {
    case reset = 0, initialized, readyToReceive, readyToSend, sendQueueDrained, sendQueueError, error
}

/// The verbs work-completion status codes (`enum ibv_wc_status`).
public enum SoftCompletionStatus: UInt32, Sendable, Equatable {
    case success = 0, localLengthError = 1, localQueuePairOperationError = 2, localProtectionError = 4,
         flushed = 5, badResponse = 7, localAccessError = 8, remoteInvalidRequest = 9,
         remoteAccessError = 10, remoteOperationError = 11, retryExceeded = 12,
         receiverNotReadyRetryExceeded = 13, general = 21
}

/// The verbs work-completion opcodes (`enum ibv_wc_opcode`).
public enum SoftCompletionOpcode: UInt32, Sendable, Equatable {
    case send = 0, rdmaWrite = 1, rdmaRead = 2, compareAndSwap = 3, fetchAndAdd = 4
    case receive = 128, receiveRDMAWriteWithImmediate = 129
}

/// What a send work request does.
public enum SoftSendOpcode: UInt8, Sendable, Equatable {
    case send, sendWithImmediate, write, writeWithImmediate, read, compareAndSwap, fetchAndAdd

    var isReadOrAtomic: Bool { self == .read || self == .compareAndSwap || self == .fetchAndAdd }
    var completionOpcode: SoftCompletionOpcode {
        switch self {
        case .send, .sendWithImmediate: .send
        case .write, .writeWithImmediate: .rdmaWrite
        case .read: .rdmaRead
        case .compareAndSwap: .compareAndSwap
        case .fetchAndAdd: .fetchAndAdd
        }
    }
}

/// One local buffer: a virtual address inside a region registered with `lkey`.
public struct SoftScatterGather: Sendable, Equatable {
    public var address: UInt64
    public var length: UInt32
    public var lkey: UInt32
    public init(address: UInt64, length: UInt32, lkey: UInt32) {
        self.address = address
        self.length = length
        self.lkey = lkey
    }
}

/// An IPv4 or IPv6 address of a soft device or a peer.
public enum SoftAddress: Hashable, Sendable, CustomStringConvertible {
    case ipv4(UInt32)                 // big-endian value: 127.0.0.1 is 0x7F000001
    case ipv6(high: UInt64, low: UInt64)

    /// Parses dotted IPv4 or textual IPv6.
    public init?(_ text: String) {
        if let v4 = SoftAddress.parseIPv4(text) { self = .ipv4(v4); return }
        guard let gid = SoftAddress.parseIPv6(text) else { return nil }
        self.init(gid: gid)
    }

    /// From a 16-byte RoCEv2 GID: `::ffff:a.b.c.d` is IPv4, anything else IPv6.
    public init(gid bytes: [UInt8]) {
        precondition(bytes.count == 16)
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<8 { high = high << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { low = low << 8 | UInt64(bytes[i]) }
        if high == 0 && low >> 32 == 0xFFFF { self = .ipv4(UInt32(truncatingIfNeeded: low)) } else { self = .ipv6(high: high, low: low) }
    }

    /// The RoCEv2 GID of this address (IPv4-mapped for IPv4).
    public var gid: [UInt8] {
        let (high, low): (UInt64, UInt64)
        switch self {
        case .ipv4(let value): (high, low) = (0, 0xFFFF_0000_0000 | UInt64(value))
        case .ipv6(let h, let l): (high, low) = (h, l)
        }
        return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    public var description: String {
        switch self {
        case .ipv4(let v): return "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
        case .ipv6(let h, let l):
            let groups = (0..<4).map { String(h >> (48 - 16 * $0) & 0xFFFF, radix: 16) } + (0..<4).map { String(l >> (48 - 16 * $0) & 0xFFFF, radix: 16) }
            return groups.joined(separator: ":")
        }
    }

    static func parseIPv4(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        return value
    }

    static func parseIPv6(_ text: String) -> [UInt8]? {
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ s: String) -> [UInt16]? {
            if s.isEmpty { return [] }
            var out = [UInt16]()
            for g in s.split(separator: ":", omittingEmptySubsequences: false) {
                guard let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}

extension String {
    func components(separatedBy separator: String) -> [String] {
        var result = [String]()
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            result.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        result.append(String(rest))
        return result
    }
}

/// A send work request as the engine keeps it.
public struct SoftSendRequest: Sendable {
    public var id: UInt64
    public var opcode: SoftSendOpcode
    public var signaled: Bool
    public var inline: Bool
    public var solicited: Bool
    /// Immediate data in host order.
    public var immediate: UInt32
    public var remoteAddress: UInt64
    public var remoteKey: UInt32
    /// CAS: compare; FAA: add.
    public var compareAdd: UInt64
    public var swap: UInt64
    /// UD only: where to send.
    public var destination: SoftAddress?
    public var remoteQueuePairNumber: UInt32
    public var remoteQKey: UInt32

    public init(id: UInt64, opcode: SoftSendOpcode = .send, signaled: Bool = true, inline: Bool = false,
                solicited: Bool = false, immediate: UInt32 = 0, remoteAddress: UInt64 = 0, remoteKey: UInt32 = 0,
                compareAdd: UInt64 = 0, swap: UInt64 = 0, destination: SoftAddress? = nil,
                remoteQueuePairNumber: UInt32 = 0, remoteQKey: UInt32 = 0) {
        self.id = id
        self.opcode = opcode
        self.signaled = signaled
        self.inline = inline
        self.solicited = solicited
        self.immediate = immediate
        self.remoteAddress = remoteAddress
        self.remoteKey = remoteKey
        self.compareAdd = compareAdd
        self.swap = swap
        self.destination = destination
        self.remoteQueuePairNumber = remoteQueuePairNumber
        self.remoteQKey = remoteQKey
    }
}

/// A finished work request.
public struct SoftCompletion: Sendable {
    public var id: UInt64 = 0
    public var status: SoftCompletionStatus = .success
    public var opcode: SoftCompletionOpcode = .send
    public var byteLength: UInt32 = 0
    /// Host order; meaningful when `hasImmediate`.
    public var immediate: UInt32 = 0
    public var hasImmediate = false
    public var queuePairNumber: UInt32 = 0
    public var sourceQueuePairNumber: UInt32 = 0
    public var hasGlobalRouteHeader = false
    public init() {}
}

/// The attributes of one QP modification; nil = unchanged.
public struct SoftQueuePairAttributes: Sendable {
    public var state: SoftQueuePairState
    public var access: SoftAccess?
    public var qkey: UInt32?
    public var pathMTU: Int?
    public var destination: SoftAddress?
    public var destinationQueuePairNumber: UInt32?
    public var receivePSN: UInt32?
    public var minRNRTimer: UInt8?
    public var sendPSN: UInt32?
    public var timeout: UInt8?
    public var retryCount: UInt8?
    public var rnrRetry: UInt8?
    public var pkeyIndex: UInt16?
    public init(state: SoftQueuePairState) { self.state = state }
}

/// Errors of the engine's control and post paths; `errno` is what verbs would return.
public struct SoftRoCEError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var errno: Int32
    public var message: String
    public init(_ operation: String, errno: Int32, _ message: String) {
        self.operation = operation
        self.errno = errno
        self.message = message
    }
    public var description: String { "\(operation): \(message) (errno \(errno))" }
}

/// Seeded fault injection applied to every packet a device sends.
/// Probabilities are per packet in 0…1.
public struct SoftFaultInjection: Sendable, Equatable {
    public var seed: UInt64
    public var drop: Double
    public var duplicate: Double
    /// Held back and sent after later packets (a short delay).
    public var reorder: Double
    /// One byte flipped after the ICRC is sealed: the receiver's ICRC check drops it.
    public var corrupt: Double
    /// Held back for `delayMicroseconds`.
    public var delay: Double
    public var delayMicroseconds: Int
    public init(seed: UInt64 = 1, drop: Double = 0, duplicate: Double = 0, reorder: Double = 0,
                corrupt: Double = 0, delay: Double = 0, delayMicroseconds: Int = 2000) {
        self.seed = seed
        self.drop = drop
        self.duplicate = duplicate
        self.reorder = reorder
        self.corrupt = corrupt
        self.delay = delay
        self.delayMicroseconds = delayMicroseconds
    }
    public static let none = SoftFaultInjection()
    var isActive: Bool { drop > 0 || duplicate > 0 || reorder > 0 || corrupt > 0 || delay > 0 }
}

/// How a soft device is opened.
public struct SoftDeviceConfiguration: Sendable {
    /// The local IPv4 or IPv6 address to bind (never a wildcard: it is the GID).
    public var address: String
    /// UDP port to bind; 4791 is RoCEv2's. 0 lets the kernel pick (tests).
    public var port: UInt16
    /// The UDP port peers listen on (default: the same as `port`, or 4791 when `port` is 0 …
    /// in which case only peers on this same device are reachable).
    public var peerPort: UInt16?
    public var name: String?
    /// Check the ICRC of received packets. A UDP socket never shows the IP header, so the
    /// default check rebuilds it: the masked IPv4/IPv6 + UDP pseudo-header from the source
    /// address and port `recvfrom` reports, this device's address and port, the lengths
    /// implied by the datagram, and — for IPv4 — identification 0 with DF (0x4000), which is
    /// what the kernel sends for a soft sender (`IP_PMTUDISC_DO`); then the BTH (byte 4
    /// masked) onward, in place. It therefore detects any change to the BTH, headers, payload
    /// or addressing, but cannot see the real IPv4 ID/flags: packets from kernel rxe (which
    /// sets a non-zero ID) fail it — set `verifyICRC = false` to interoperate with rxe. A
    /// strict mode over an AF_PACKET socket is not implemented. Failures are dropped and
    /// counted (`soft_icrc_err`). Sending always computes the ICRC the same way.
    public var verifyICRC: Bool
    public var faults: SoftFaultInjection

    public init(address: String = "127.0.0.1", port: UInt16 = 4791, peerPort: UInt16? = nil, name: String? = nil,
                verifyICRC: Bool = true, faults: SoftFaultInjection = .none) {
        self.address = address
        self.port = port
        self.peerPort = peerPort
        self.name = name
        self.verifyICRC = verifyICRC
        self.faults = faults
    }
}
