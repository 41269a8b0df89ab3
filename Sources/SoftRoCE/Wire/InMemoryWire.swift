/// A network inside the process: each `InMemoryWire` attached to it is an endpoint, and a
/// datagram sent to an endpoint waits in that endpoint's queue until it receives. Engines
/// on it run in one thread with an injected clock, so protocol tests are deterministic;
/// tests can also inject crafted datagrams from any source and read what an engine sent.
///
/// ```swift
/// let network = InMemoryNetwork()
/// let wireA = network.attach(WireEndpoint(.ipv4(0x0A00_0001), port: 4791))
/// let wireB = network.attach(WireEndpoint(.ipv4(0x0A00_0002), port: 4791))
/// ```
package final class InMemoryNetwork: @unchecked Sendable {
    package struct Datagram {
        package var bytes: [UInt8]
        package var source: WireEndpoint
        package var destination: WireEndpoint
        /// The IPv4 fields this datagram's header would carry (engines here send ID 0 + DF).
        package var ipv4 = IPv4HeaderFields.softSender
        /// The DSCP and ECN bits of its IP header.
        package var trafficClass = TrafficClass.unmarked
    }

    private var queues: [WireEndpoint: [Datagram]] = [:]
    /// Every datagram sent, in order (for tests that inspect the traffic).
    package private(set) var log: [Datagram] = []
    /// Keep `log` (off for long runs).
    package var recording = true
    /// A congested router on the path: returns true for each ECN-capable datagram it marks
    /// CE on delivery (nil: nothing is marked). Not-ECT datagrams are never marked.
    package var congestionMarker: ((Datagram) -> Bool)?

    package init() {}

    /// An endpoint on this network.
    package func attach(_ endpoint: WireEndpoint) -> InMemoryWire {
        queues[endpoint] = queues[endpoint] ?? []
        return InMemoryWire(network: self, local: endpoint)
    }

    /// Delivers `bytes` to `destination` as if `source` had sent them (spoofing included),
    /// with the IPv4 Identification and flags its header would carry (kernel rxe: non-zero ID)
    /// and the DSCP/ECN bits it arrives with.
    package func inject(_ bytes: [UInt8], from source: WireEndpoint, to destination: WireEndpoint, ipv4: IPv4HeaderFields = .softSender,
                        trafficClass: TrafficClass = .unmarked) {
        deliver(Datagram(bytes: bytes, source: source, destination: destination, ipv4: ipv4, trafficClass: trafficClass))
    }

    /// Datagrams waiting for `endpoint`, oldest first, removed from its queue.
    package func take(for endpoint: WireEndpoint) -> [Datagram] {
        defer { queues[endpoint] = [] }
        return queues[endpoint] ?? []
    }

    /// How many datagrams wait for `endpoint`.
    package func pending(for endpoint: WireEndpoint) -> Int { queues[endpoint]?.count ?? 0 }

    /// Drops every waiting datagram (a link that loses everything in flight).
    package func discardAll() {
        for key in queues.keys { queues[key] = [] }
    }

    fileprivate func deliver(_ sent: Datagram) {
        var datagram = sent
        if datagram.trafficClass.ecn != .notCapable, let marker = congestionMarker, marker(datagram) {
            datagram.trafficClass.rawValue |= 3
        }
        if recording { log.append(datagram) }
        // No listener there: the datagram is lost, as UDP to a closed port is.
        guard queues[datagram.destination] != nil else { return }
        queues[datagram.destination]!.append(datagram)
    }

    fileprivate func receive(for endpoint: WireEndpoint, into batch: ReceiveBatch) {
        guard var queue = queues[endpoint], !queue.isEmpty else { return }
        var taken = 0
        while taken < queue.count && batch.count < batch.capacity {
            let datagram = queue[taken]
            let target = batch.buffer(batch.count)
            let length = min(datagram.bytes.count, target.count)
            datagram.bytes.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
            batch.append(length: length, from: datagram.source, ipv4: datagram.ipv4, trafficClass: datagram.trafficClass)
            taken += 1
        }
        queue.removeFirst(taken)
        queues[endpoint] = queue
    }

    fileprivate func detach(_ endpoint: WireEndpoint) { queues[endpoint] = nil }
}

/// One endpoint of an `InMemoryNetwork`.
package final class InMemoryWire: Wire {
    package let local: WireEndpoint
    private weak var network: InMemoryNetwork?
    private var closed = false
    package var pollDescriptor: Int32? { nil }
    /// Every datagram here carries its header fields: checks are as strict as on a raw socket.
    package var deliversRealHeaders: Bool { true }

    fileprivate init(network: InMemoryNetwork, local: WireEndpoint) {
        self.network = network
        self.local = local
    }

    package var choosesSourcePort: Bool { true }

    package func send(_ datagram: UnsafeRawBufferPointer, from sourcePort: UInt16, to destination: WireEndpoint,
                      trafficClass: TrafficClass) -> WireSendResult {
        guard !closed, let network else { return .failed(errno: 9) }   // EBADF
        network.deliver(.init(bytes: Array(datagram), source: WireEndpoint(local.address, port: sourcePort), destination: destination,
                              trafficClass: trafficClass))
        return .sent
    }

    package func receive(into batch: ReceiveBatch) {
        batch.reset()
        guard !closed else { return }
        network?.receive(for: local, into: batch)
    }

    package func close() {
        guard !closed else { return }
        closed = true
        network?.detach(local)
    }
}
