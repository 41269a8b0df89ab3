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
    /// How the ICRC of received packets is checked (default `.automatic`). Failures are
    /// dropped and counted (`soft_icrc_err`). Sending always seals the ICRC over the header
    /// the kernel writes for the engine's socket (IPv4: ID 0 with DF, `IP_PMTUDISC_DO`).
    public var icrc: ICRCVerification
    public var faults: SoftFaultInjection
    /// Write every datagram sent and received to a pcap file (nil: no capture).
    public var capture: PacketCapture?
    /// DCQCN: ECN marking, CNPs, per-QP rate pacing (default `.off`).
    public var congestion: SoftCongestionControl
    /// Send the full-MTU packets of a message that one engine round produces as UDP GSO
    /// super-datagrams (`UDP_SEGMENT`, one system call for up to 64 packets) and receive them
    /// whole (`UDP_GRO`); default true. Off, every packet is its own `sendto`. A capture or
    /// fault injection turns it off for that device (they see each packet).
    public var segmentationOffload = true

    public init(address: String = "127.0.0.1", port: UInt16 = 4791, peerPort: UInt16? = nil, name: String? = nil,
                icrc: ICRCVerification = .automatic, faults: SoftFaultInjection = .none, capture: PacketCapture? = nil,
                congestion: SoftCongestionControl = .off) {
        self.address = address
        self.port = port
        self.peerPort = peerPort
        self.name = name
        self.icrc = icrc
        self.capture = capture
        self.faults = faults
        self.congestion = congestion
    }
}

/// How a soft device checks the ICRC of what it receives.
///
/// The ICRC covers the IP header (less TTL, TOS and checksum), so checking it needs the
/// IPv4 Identification and flags the sender's kernel wrote. A UDP socket never shows them:
/// kernel rxe stamps a non-zero Identification on every packet, so only a raw socket
/// (`CAP_NET_RAW`) can check rxe's packets fully. On IPv4 the UDP checksum of rxe's packets
/// is 0: the ICRC is the only end-to-end integrity check, so turning it off is a choice to
/// make knowingly.
///
/// ```swift
/// var configuration = SoftDeviceConfiguration(address: "10.239.0.1")
/// configuration.icrc = .strict   // fail to open without CAP_NET_RAW rather than check less
/// ```
public enum ICRCVerification: String, Sendable, CaseIterable, CustomStringConvertible {
    /// `.strict` where the process may open a raw socket, else `.assumeZeroIdentification`.
    case automatic
    /// Against the real IP header, read from a raw socket bound to the device's address and
    /// filtered to its UDP port: every field the ICRC covers, from any sender (kernel rxe
    /// included). IPv6 needs no raw socket (no Identification): there it is always strict.
    case strict
    /// Against the header a soft sender's kernel writes (IPv4 ID 0, DF): the BTH onward,
    /// addresses, ports and lengths are checked, but a sender that sets an IPv4
    /// Identification (kernel rxe) fails every packet.
    case assumeZeroIdentification = "assume-id0"
    /// Not checked. Nothing then detects corruption on IPv4 paths from rxe (UDP checksum 0).
    case off

    public var description: String {
        switch self {
        case .automatic: "automatic"
        case .strict: "strict (real IP header from a raw socket)"
        case .assumeZeroIdentification: "assume-id0 (IPv4 ID 0 + DF assumed: kernel rxe's packets fail)"
        case .off: "off (no end-to-end integrity check on IPv4)"
        }
    }
}
