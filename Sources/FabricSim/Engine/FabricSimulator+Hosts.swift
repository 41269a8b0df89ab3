import Congestion

// Host NICs: pacing each flow at its DCQCN rate (reaction point) and answering CE marks with
// CNPs (notification point).
extension FabricSimulator {
    mutating func startFlow(_ flow: Int) {
        guard flows[flow].remainingBytes > 0 else { return }
        flows[flow].sending = true
        flows[flow].nextEligible = now
        serviceTransmitter(Int(flows[flow].firstPort))
    }

    /// Sends the next packet of the first flow, round robin, whose pacing allows it now;
    /// otherwise arranges a wake-up for when the earliest one will.
    mutating func sendFromHost(_ port: Int) {
        let candidates = hostPortFlows[port]
        guard !candidates.isEmpty else { return }
        var earliest = Int64.max
        let start = ports[port].roundRobinNext
        for step in 0..<candidates.count {
            var position = start + step
            if position >= candidates.count { position -= candidates.count }
            let flow = Int(candidates[position])
            guard flows[flow].sending else { continue }
            let eligible = flows[flow].nextEligible
            if eligible <= now {
                ports[port].roundRobinNext = position + 1 == candidates.count ? 0 : position + 1
                startTransmission(nextPacket(of: flow), on: port)
                return
            }
            earliest = min(earliest, eligible)
        }
        scheduleWakeup(port, at: earliest)
    }

    /// Keeps the earliest pending pacing wake-up of a host port; a later one still pending
    /// fires harmlessly.
    private mutating func scheduleWakeup(_ port: Int, at time: Int64) {
        guard time < ports[port].wakeupAt else { return }
        ports[port].wakeupAt = time
        events.schedule(.hostWakeup(port: Int32(port)), at: time)
    }

    private mutating func nextPacket(of flow: Int) -> Packet {
        let size = Int32(min(Int64(scenario.packetSizeBytes), flows[flow].remainingBytes))
        flows[flow].remainingBytes -= Int64(size)
        flows[flow].bytesSent += Int64(size)
        if flows[flow].remainingBytes == 0 { flows[flow].sending = false }
        let rate: Double
        if scenario.dcqcnEnabled {
            flows[flow].reactionPoint.recordBytesSent(Int(size), at: Nanoseconds(now))
            rate = flows[flow].reactionPoint.currentRateBitsPerSecond
        } else {
            rate = flows[flow].lineRateBitsPerSecond
        }
        flows[flow].lastPacketStart = now
        flows[flow].lastPacketBytes = size
        flows[flow].nextEligible = now + Self.pacingGap(bytes: size, rateBitsPerSecond: rate)
        return Packet(flow: Int32(flow), sizeBytes: size, hop: 1, kind: .data)
    }

    mutating func receiveAtHost(_ packet: Packet, at port: Int) {
        let flow = Int(packet.flow)
        if packet.kind == .cnp {
            flows[flow].cnpsReceived += 1
            flows[flow].reactionPoint.receiveCNP(at: Nanoseconds(now))
            armReactionPointTimer(flow)
            repace(flow)
            return
        }
        // A NIC keeps only frames addressed to it: a flooded copy is the destination's alone.
        if packet.flooded && Int(ports[port].node) != scenario.flows[flow].destination { return }
        flows[flow].bytesReceived += Int64(packet.sizeBytes)
        flows[flow].bytesReceivedThisSample += Int64(packet.sizeBytes)
        if let size = scenario.flows[flow].sizeBytes, flows[flow].bytesReceived == Int64(size) { flows[flow].completion = now }
        guard scenario.dcqcnEnabled,
              flows[flow].notificationPoint.packetArrived(congestionExperienced: packet.congestionExperienced, at: Nanoseconds(now))
        else { return }
        let egress = Int(reversePorts[flows[flow].reverseOffset])
        ports[egress].controlQueue.append(Packet(flow: packet.flow, sizeBytes: Int32(scenario.cnpSizeBytes), hop: 1, kind: .cnp))
        serviceTransmitter(egress)
    }

    /// Keeps a timer event pending per rate-limited flow at the reaction point's next expiry.
    /// An event already pending for a later instant is left to fire as a no-op (a CNP brings
    /// the expiry forward when it leaves a periodic cut pending); one pending for an earlier
    /// instant fires early at worst and re-arms.
    private mutating func armReactionPointTimer(_ flow: Int) {
        guard let expiry = flows[flow].reactionPoint.nextTimerExpiry?.rawValue, expiry < flows[flow].timerEventAt else { return }
        flows[flow].timerEventAt = expiry
        events.schedule(.reactionPointTimer(flow: Int32(flow)), at: expiry)
    }

    mutating func fireReactionPointTimer(_ flow: Int) {
        guard now == flows[flow].timerEventAt else { return }
        flows[flow].timerEventAt = .max
        guard flows[flow].sending else { return }
        flows[flow].reactionPoint.advanceTimers(to: Nanoseconds(now))
        armReactionPointTimer(flow)
        repace(flow)
    }

    /// A NIC's rate limiter applies a new rate to the packet already waiting: the wait is
    /// recomputed from the last packet's start at the new rate (HPCC's `RdmaHw::ChangeRate`
    /// does the same). Without this, a flow cut to R_min = 1 Mb/s keeps waiting the 8 ms one
    /// 1000 B packet takes at 1 Mb/s even after fast recovery has given it 20 Gb/s back.
    private mutating func repace(_ flow: Int) {
        guard flows[flow].sending, flows[flow].lastPacketBytes > 0 else { return }
        let rate = flows[flow].reactionPoint.currentRateBitsPerSecond
        let eligible = flows[flow].lastPacketStart + Self.pacingGap(bytes: flows[flow].lastPacketBytes, rateBitsPerSecond: rate)
        let earlier = eligible < flows[flow].nextEligible
        flows[flow].nextEligible = eligible
        guard earlier else { return }
        let port = Int(flows[flow].firstPort)
        if eligible <= now {
            serviceTransmitter(port)
        } else {
            scheduleWakeup(port, at: eligible)
        }
    }

    private static func pacingGap(bytes: Int32, rateBitsPerSecond: Double) -> Int64 {
        Int64((Double(bytes) * 8e9 / rateBitsPerSecond).rounded())
    }
}
