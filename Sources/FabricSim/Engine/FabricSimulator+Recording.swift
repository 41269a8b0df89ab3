import Congestion

// Sampling the time series during the run and assembling the result after it.
extension FabricSimulator {
    mutating func recordSample() {
        let previous = timeSeries.times.last?.rawValue ?? 0
        let interval = Double(now - previous) / 1e9
        timeSeries.times.append(Nanoseconds(now))
        for flow in flows.indices {
            let rate: Double
            if !flows[flow].sending {
                rate = .nan
            } else if scenario.dcqcnEnabled {
                rate = flows[flow].reactionPoint.currentRateBitsPerSecond
            } else {
                rate = flows[flow].lineRateBitsPerSecond
            }
            timeSeries.flowRateBitsPerSecond[flow].append(rate)
            let bits = Double(flows[flow].bytesReceivedThisSample) * 8
            timeSeries.flowThroughputBitsPerSecond[flow].append(interval > 0 ? bits / interval : 0)
            flows[flow].bytesReceivedThisSample = 0
        }
        for port in ports.indices {
            timeSeries.egressQueueBytes[port].append(ports[port].dataQueueBytes)
            timeSeries.ingressBytes[port].append(ports[port].ingressBytes)
            timeSeries.paused[port].append(ports[port].pausedByPeer)
        }
    }

    func makeResult() -> SimulationResult {
        let names = scenario.nodes.map(\.name)
        let portReports = ports.map { port -> PortReport in
            var queue = port.egressQueue
            queue.finish(at: Nanoseconds(end))
            let stillPaused = port.pausedByPeer ? end - port.pausedSince : 0
            let peerNode = Int(ports[Int(port.peer)].node)
            return PortReport(
                name: "\(names[Int(port.node)])->\(names[peerNode])",
                ingressName: "\(names[Int(port.node)])<-\(names[peerNode])",
                node: Int(port.node),
                peer: peerNode,
                isSwitchPort: port.isSwitchPort,
                rateBitsPerSecond: port.rateBitsPerSecond,
                egressQueue: queue,
                ingressMaxBytes: port.ingressMaxBytes,
                pauseFramesSent: port.pauseFramesSent,
                pauseFramesReceived: port.pauseFramesReceived,
                pausedTime: Nanoseconds(port.pausedTotal + stillPaused),
                dataBytesTransmitted: port.dataBytesTransmitted,
                packetsMarked: port.packetsMarked,
                unknownDestinationDrops: port.unknownDestinationDrops,
                floodedCopiesSent: port.floodedCopiesSent,
                watchdogDetections: port.watchdogDetections,
                watchdogRestorations: port.watchdogRestorations,
                watchdogDroppedPackets: port.watchdogDroppedPackets,
                watchdogFirstDetection: port.watchdogFirstDetection.map(Nanoseconds.init),
                watchdogLastRestoration: port.watchdogLastRestoration.map(Nanoseconds.init),
                watchdogDroppingAtEnd: port.watchdogDropping
            )
        }
        let flowReports = flows.indices.map { index -> FlowReport in
            let flow = flows[index]
            let definition = scenario.flows[index]
            return FlowReport(
                name: definition.name,
                route: definition.route,
                routePorts: forwardPorts[flow.forwardOffset..<(flow.forwardOffset + definition.route.count - 1)].map(Int.init),
                start: definition.start,
                stop: definition.stop,
                sizeBytes: definition.sizeBytes,
                bytesSent: flow.bytesSent,
                bytesReceived: flow.bytesReceived,
                completion: flow.completion.map(Nanoseconds.init),
                markedPacketsReceived: flow.notificationPoint.markedPacketsReceived,
                cnpsSent: flow.notificationPoint.cnpsSent,
                cnpsReceived: flow.cnpsReceived,
                reactionPoint: flow.reactionPoint.counters,
                finalRateBitsPerSecond: scenario.dcqcnEnabled ? flow.reactionPoint.currentRateBitsPerSecond : flow.lineRateBitsPerSecond
            )
        }
        return SimulationResult(
            scenario: scenario,
            eventsProcessed: eventsProcessed,
            ports: portReports,
            flows: flowReports,
            timeSeries: timeSeries
        )
    }
}
