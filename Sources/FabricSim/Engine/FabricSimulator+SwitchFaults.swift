import Congestion

// The seed paper's PFC deadlock trigger and the switch-side cures (Guo et al., SIGCOMM 2016):
// a ToR that has a dead server's ARP entry but no longer its MAC entry floods lossless
// packets for it out of every port, the copies sent up to the other leaf close a cyclic
// buffer dependency, and PFC deadlocks it. Their fix was to drop such lossless packets
// instead; a switch PFC watchdog breaks a deadlock or storm after the fact.
extension FabricSimulator {
    /// `packet` reached the switch on its route that cannot place its destination.
    mutating func handleUnknownDestination(_ packet: Packet, arrivedAt ingress: Int) {
        switch scenario.unknownUnicast.losslessAction {
        case .drop:
            ports[ingress].unknownDestinationDrops += 1
        case .flood:
            // Each copy holds buffer charged to the ingress port until it has left, which is
            // what a shared-buffer switch does with a flooded packet (it frees the cell when
            // the last copy goes); charging per copy only makes XOFF come a little sooner.
            var copy = packet
            copy.flooded = true
            for egress in nodePorts[Int(ports[ingress].node)] where Int(egress) != ingress {
                if enqueue(copy, on: Int(egress), from: ingress) { ports[Int(egress)].floodedCopiesSent += 1 }
            }
        }
    }

    /// Detection: the queue has packets and has been held by PAUSE without a break for the
    /// whole window. Mitigation (SONiC's `drop`): its packets are dropped, and so is what
    /// arrives for it until restoration, so the buffers that feed it drain.
    mutating func checkWatchdog(_ port: Int) {
        guard let watchdog = scenario.pfcWatchdog, !ports[port].watchdogDropping, ports[port].pausedByPeer,
              now - ports[port].pausedSince >= watchdog.detection.rawValue else { return }
        guard !ports[port].dataQueue.isEmpty else {
            // Paused but holding nothing: no one is harmed yet; look again a window later.
            schedule(.watchdogCheck(port: Int32(port)), after: watchdog.detection.rawValue)
            return
        }
        ports[port].watchdogDropping = true
        ports[port].watchdogDetections += 1
        if ports[port].watchdogFirstDetection == nil { ports[port].watchdogFirstDetection = now }
        while let packet = ports[port].dataQueue.popFirst() {
            ports[port].dataQueueBytes -= Int(packet.sizeBytes)
            ports[port].watchdogDroppedPackets += 1
            releaseIngress(Int(packet.sizeBytes), from: Int(packet.ingressPort))
        }
        ports[port].egressQueue.record(bytes: 0, atNanoseconds: now)
    }

    /// Restoration: no PAUSE has held the queue for the restoration window.
    mutating func restoreWatchdog(_ port: Int) {
        guard let watchdog = scenario.pfcWatchdog, ports[port].watchdogDropping, !ports[port].pausedByPeer,
              now - ports[port].resumedSince >= watchdog.restoration.rawValue else { return }
        ports[port].watchdogDropping = false
        ports[port].watchdogRestorations += 1
        ports[port].watchdogLastRestoration = now
    }
}
