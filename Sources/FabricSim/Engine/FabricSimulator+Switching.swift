import Congestion

// Transmitters, switch forwarding, ECN marking and PFC.
extension FabricSimulator {
    /// Starts the next packet on an idle transmitter: a CNP if one waits, else data unless the
    /// port is paused.
    mutating func serviceTransmitter(_ port: Int) {
        if ports[port].transmitting { return }
        if let packet = ports[port].controlQueue.popFirst() {
            startTransmission(packet, on: port)
            return
        }
        if ports[port].pausedByPeer { return }
        if ports[port].isSwitchPort {
            if let packet = dequeueData(from: port) { startTransmission(packet, on: port) }
        } else {
            sendFromHost(port)
        }
    }

    mutating func startTransmission(_ packet: Packet, on port: Int) {
        let serialization = ports[port].serializationTime(bytes: packet.sizeBytes)
        ports[port].transmitting = true
        if packet.kind == .data { ports[port].dataBytesTransmitted += Int64(packet.sizeBytes) }
        schedule(.transmitComplete(port: Int32(port)), after: serialization)
        schedule(.arrival(port: ports[port].peer, packet: packet), after: serialization + ports[port].propagationDelay)
    }

    /// Takes the head of a switch egress queue, marks it, and releases its ingress accounting.
    private mutating func dequeueData(from port: Int) -> Packet? {
        guard var packet = ports[port].dataQueue.popFirst() else { return nil }
        let size = Int(packet.sizeBytes)
        ports[port].dataQueueBytes -= size
        ports[port].egressQueue.record(bytes: ports[port].dataQueueBytes, atNanoseconds: now)
        if markingPoint.shouldMark(queueBytes: ports[port].dataQueueBytes, using: &random) {
            packet.congestionExperienced = true
            ports[port].packetsMarked += 1
        }
        releaseIngress(size, from: Int(packet.ingressPort))
        return packet
    }

    /// A packet left the switch (sent or dropped): its bytes no longer count against the port
    /// it came in by, which resumes its upstream at XON.
    mutating func releaseIngress(_ size: Int, from ingress: Int) {
        ports[ingress].ingressBytes -= size
        if ports[ingress].pauseAsserted && ports[ingress].ingressBytes <= scenario.pfc.xonBytes {
            ports[ingress].pauseAsserted = false
            schedule(.priorityFlowControl(port: ports[ingress].peer, pause: false), after: ports[ingress].propagationDelay)
        }
    }

    /// A packet's last bit reached the node that owns `port`.
    mutating func receive(_ packet: Packet, at port: Int) {
        guard ports[port].isSwitchPort else {
            receiveAtHost(packet, at: port)
            return
        }
        var packet = packet
        let flow = Int(packet.flow)
        if packet.kind == .cnp {
            let egress = Int(reversePorts[flows[flow].reverseOffset + Int(packet.hop)])
            packet.hop += 1
            ports[egress].controlQueue.append(packet)
            serviceTransmitter(egress)
            return
        }
        // A routed port accepts only frames addressed to its switch: a flooded copy (it
        // carries the server's MAC) ends here.
        if packet.flooded { return }
        if Int(packet.hop) == flows[flow].unknownDestinationHop {
            handleUnknownDestination(packet, arrivedAt: port)
            return
        }
        let egress = Int(forwardPorts[flows[flow].forwardOffset + Int(packet.hop)])
        packet.hop += 1
        enqueue(packet, on: egress, from: port)
    }

    /// Queues a data packet that came in through `ingress` on the egress port `egress`, and
    /// pauses the upstream of `ingress` at XOFF. False: the switch PFC watchdog dropped it.
    @discardableResult
    mutating func enqueue(_ packet: Packet, on egress: Int, from ingress: Int) -> Bool {
        let size = Int(packet.sizeBytes)
        if ports[egress].watchdogDropping {
            ports[egress].watchdogDroppedPackets += 1
            return false
        }
        var packet = packet
        packet.ingressPort = Int32(ingress)
        ports[egress].dataQueue.append(packet)
        ports[egress].dataQueueBytes += size
        ports[egress].egressQueue.record(bytes: ports[egress].dataQueueBytes, atNanoseconds: now)

        ports[ingress].ingressBytes += size
        if ports[ingress].ingressBytes > ports[ingress].ingressMaxBytes { ports[ingress].ingressMaxBytes = ports[ingress].ingressBytes }
        if scenario.pfc.enabled && !ports[ingress].pauseAsserted && ports[ingress].ingressBytes >= scenario.pfc.xoffBytes {
            ports[ingress].pauseAsserted = true
            ports[ingress].pauseFramesSent += 1
            schedule(.priorityFlowControl(port: ports[ingress].peer, pause: true), after: ports[ingress].propagationDelay)
        }
        serviceTransmitter(egress)
        return true
    }

    mutating func applyPriorityFlowControl(pause: Bool, to port: Int) {
        if pause {
            guard !ports[port].pausedByPeer else { return }
            ports[port].pausedByPeer = true
            ports[port].pausedSince = now
            ports[port].pauseFramesReceived += 1
            if let watchdog = scenario.pfcWatchdog, ports[port].isSwitchPort, !ports[port].watchdogDropping {
                schedule(.watchdogCheck(port: Int32(port)), after: watchdog.detection.rawValue)
            }
        } else {
            guard ports[port].pausedByPeer else { return }
            ports[port].pausedByPeer = false
            ports[port].pausedTotal += now - ports[port].pausedSince
            ports[port].resumedSince = now
            if let watchdog = scenario.pfcWatchdog, ports[port].watchdogDropping {
                schedule(.watchdogRestore(port: Int32(port)), after: watchdog.restoration.rawValue)
            }
            serviceTransmitter(port)
        }
    }
}
