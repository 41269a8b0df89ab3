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
        if earliest < ports[port].wakeupAt {
            ports[port].wakeupAt = earliest
            events.schedule(.hostWakeup(port: Int32(port)), at: earliest)
        }
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
        flows[flow].nextEligible = now + Int64((Double(size) * 8e9 / rate).rounded())
        return Packet(flow: Int32(flow), sizeBytes: size, hop: 1, kind: .data)
    }

    mutating func receiveAtHost(_ packet: Packet, at port: Int) {
        let flow = Int(packet.flow)
        if packet.kind == .cnp {
            flows[flow].cnpsReceived += 1
            flows[flow].reactionPoint.receiveCNP(at: Nanoseconds(now))
            armReactionPointTimer(flow)
            return
        }
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

    /// Keeps one timer event pending per rate-limited flow. A CNP only ever moves the expiry
    /// later, so an event already pending fires early at worst and re-arms itself.
    private mutating func armReactionPointTimer(_ flow: Int) {
        guard !flows[flow].timerEventPending, let expiry = flows[flow].reactionPoint.nextTimerExpiry else { return }
        flows[flow].timerEventPending = true
        events.schedule(.reactionPointTimer(flow: Int32(flow)), at: expiry.rawValue)
    }

    mutating func fireReactionPointTimer(_ flow: Int) {
        flows[flow].timerEventPending = false
        guard flows[flow].sending else { return }
        flows[flow].reactionPoint.advanceTimers(to: Nanoseconds(now))
        armReactionPointTimer(flow)
    }
}
