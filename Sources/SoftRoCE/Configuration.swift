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
