#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Congestion
import RoCEWire

/// The reaction point of one queue pair (mlx5's "RP"): `Congestion.ReactionPoint` decides the
/// rate, this paces the requester's packets at it. The rule is FabricSim's host pacing (one
/// algorithm, two drivers): after a packet of `b` bytes leaves, the next may leave
/// `b · 8 / R_C` seconds later, R_C read after the packet's bytes were counted. Unlike the
/// simulator, a real engine runs its rounds late — a busy machine deschedules it for a
/// millisecond at a time, a TCG VM more — so up to `maximumLag` of sending time a late round
/// missed is made up at once (a token bucket's depth): the flow keeps its rate on average.
/// A rate change applies to the packet already waiting, as a NIC's rate limiter (and
/// FabricSim) applies it: the wait is recomputed from the last packet's start at the rate
/// that stands now.
struct RatePacer {
    var reactionPoint: ReactionPoint
    /// The earliest engine time the next packet may leave (0: at once).
    var nextSend: UInt64 = 0
    /// When the last packet was scheduled to leave, and its size (0: none sent yet).
    var lastStart: UInt64 = 0
    var lastBytes = 0

    /// How much missed sending time a late round may catch up. A loaded host deschedules the
    /// engine for milliseconds (50 µs here let flows reach a sixth of their rate, 2 ms a
    /// quarter); the burst a late round sends stays bounded by the window (64 packets).
    static let maximumLag: UInt64 = 20_000_000

    /// Bytes a packet occupies on an Ethernet link beyond the RoCEv2 datagram (BTH to ICRC):
    /// Ethernet 14, IP 20 or 40, UDP 8 — what a tbf or a switch port counts.
    static func linkOverhead(_ address: SoftAddress) -> Int {
        if case .ipv6 = address { return 14 + 40 + 8 }
        return 14 + 20 + 8
    }

    init(parameters: DCQCNParameters, lineRateBitsPerSecond: Double) {
        reactionPoint = ReactionPoint(parameters: parameters, lineRateBitsPerSecond: lineRateBitsPerSecond)
    }

    /// Whether the next packet may leave at `now`: the reaction point's timers run up to `now`
    /// first, and the wait is re-timed at the rate that results.
    @inline(__always) mutating func allows(_ now: UInt64) -> Bool {
        guard lastBytes > 0 else { return true }
        reactionPoint.advanceTimers(to: Nanoseconds(Int64(bitPattern: now)))
        nextSend = lastStart + gap(bytes: lastBytes)
        return now >= nextSend
    }

    /// Counts a packet of `bytes` sent at `now` (the byte counter may raise the rate) and
    /// schedules the next one.
    mutating func sent(bytes: Int, at now: UInt64) {
        reactionPoint.recordBytesSent(bytes, at: Nanoseconds(Int64(bitPattern: now)))
        let start = nextSend == 0 ? now : max(nextSend, now > Self.maximumLag ? now - Self.maximumLag : 0)
        lastStart = start
        lastBytes = bytes
        nextSend = start + gap(bytes: bytes)
    }

    private func gap(bytes: Int) -> UInt64 {
        UInt64((Double(bytes) * 8e9 / reactionPoint.currentRateBitsPerSecond).rounded())
    }

    mutating func receiveCNP(at now: UInt64) {
        reactionPoint.receiveCNP(at: Nanoseconds(Int64(bitPattern: now)))
    }

    /// Where the rate stands at `now` (timer expiries up to `now` applied).
    mutating func rate(queuePairNumber: UInt32, at now: UInt64) -> SoftQueuePairRate {
        let time = Nanoseconds(Int64(bitPattern: now))
        reactionPoint.advanceTimers(to: time)
        return SoftQueuePairRate(queuePairNumber: queuePairNumber, currentRateBitsPerSecond: reactionPoint.currentRateBitsPerSecond,
                                 targetRateBitsPerSecond: reactionPoint.targetRateBitsPerSecond, alpha: reactionPoint.alpha(at: time),
                                 cnpsHandled: reactionPoint.counters.cnpsHandled)
    }
}

// The reaction point role: CNPs arriving for a queue pair cut its rate; `transmit` asks the
// pacer before each packet and tells it after.

extension SoftDevice {
    /// A CNP (BTH opcode 0x81) that passed the ICRC and addressed `qp`: from its connected
    /// peer, with BECN, to an RC QP that is sending and paced — else counted as ignored.
    func handleCongestionNotification(_ qp: SoftQueuePair, _ headers: TransportHeaders, from source: WireEndpoint, now: UInt64) {
        guard qp.type == .reliableConnected, let peer = qp.peer, peer.address == source.address else { counters.unexpectedSource += 1; return }
        guard headers.bth.backwardCongestion, qp.isSending, qp.pacer != nil else { counters.cnpsIgnored += 1; return }
        qp.pacer!.receiveCNP(at: now)
        counters.cnpsHandled += 1
    }

    /// Gives `qp` a reaction point with `parameters` (nil: none, unpaced), replacing any it had.
    /// The corresponding mlx5 knobs are the `rp_*` entries of debugfs `cc_params`.
    package func setReactionPoint(_ qp: SoftQueuePair, parameters: DCQCNParameters?) throws(SoftRoCEError) {
        if let problem = parameters?.problems.first {
            throw SoftRoCEError("set reaction point", errno: EINVAL, "DCQCN parameter \(problem.field) \(problem.problem)")
        }
        guard qp.type == .reliableConnected || parameters == nil else {
            throw SoftRoCEError("set reaction point", errno: EINVAL, "only RC queue pairs are paced")
        }
        locked {
            qp.pacer = parameters.map { RatePacer(parameters: $0, lineRateBitsPerSecond: configuration.congestion.lineRateBitsPerSecond) }
        }
    }

    /// The reaction point of every paced queue pair at `now`.
    func queuePairRates(at now: UInt64) -> [SoftQueuePairRate] {
        var rates: [SoftQueuePairRate] = []
        for qp in queuePairList where qp.pacer != nil {
            rates.append(qp.pacer!.rate(queuePairNumber: qp.number, at: now))
        }
        return rates
    }
}
