#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import RoCEWire

// The data path: receive → requester/responder → completer, and transmit. Runs under the
// device lock, allocates nothing: packets are built in `sendBuffer`, received into
// `receiveBuffer`, and held back (fault injection) in preallocated slots.

nonisolated(unsafe) let softTrace = getenv("SOFTROCE_TRACE") != nil

@inline(__always) func psnDistance(_ from: UInt32, _ to: UInt32) -> Int {
    // Signed distance modulo 2^24, in -2^23 ..< 2^23.
    let raw = Int32(bitPattern: ((to &- from) & 0xFF_FFFF) << 8) >> 8
    return Int(raw)
}
@inline(__always) func psnAdd(_ psn: UInt32, _ n: Int) -> UInt32 { UInt32(truncatingIfNeeded: Int(psn) &+ n) & 0xFF_FFFF }

/// The RNR NAK timer codes of IBTA table 45, in nanoseconds.
let rnrTimerNanoseconds: [UInt64] = [655_360_000, 10_000, 20_000, 30_000, 40_000, 60_000, 80_000, 120_000, 160_000, 240_000,
                                     320_000, 480_000, 640_000, 960_000, 1_280_000, 1_920_000, 2_560_000, 3_840_000,
                                     5_120_000, 7_680_000, 10_240_000, 15_360_000, 20_480_000, 30_720_000, 40_960_000,
                                     61_440_000, 81_920_000, 122_880_000, 163_840_000, 245_760_000, 327_680_000, 491_520_000]

extension SoftDevice {
    func progressLocked() {
        guard !closed else { return }
        receiveBatch()
        let now = Self.now()
        if delayedCount > 0 { releaseDelayed(now: now, all: false) }
        for qp in queuePairList {
            if qp.ackPending { sendAcknowledge(qp, syndrome: .ack(), psn: psnAdd(qp.expectedPSN, -1)) }
            guard qp.type == .reliableConnected else { transmitDatagrams(qp); continue }
            guard qp.state == .readyToSend || qp.state == .sendQueueDrained else { continue }
            checkTimer(qp, now: now)
            transmit(qp, now: now)
        }
    }

    // MARK: Receive

    func receiveBatch() {
        var batch = 0
        while batch < 64 {
            var from = sockaddr_storage()
            var fromLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let count = withUnsafeMutablePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(socket, receiveBuffer, 65536, 0, $0, &fromLength) }
            }
            if count < 0 { break }
            batch += 1
            counters.receivedPackets += 1
            let (source, sourcePort) = Self.decode(&from)
            handlePacket(UnsafeRawBufferPointer(start: receiveBuffer, count: count), from: source, port: sourcePort)
        }
        // Coalesced ACKs: one per QP per batch.
        for qp in queuePairList where qp.ackPending {
            sendAcknowledge(qp, syndrome: .ack(), psn: psnAdd(qp.expectedPSN, -1))
        }
    }

    static func decode(_ storage: inout sockaddr_storage) -> (SoftAddress, UInt16) {
        withUnsafeBytes(of: &storage) { bytes in
            let family = bytes.load(as: sa_family_t.self)
            let port = UInt16(bigEndian: bytes.load(fromByteOffset: 2, as: UInt16.self))
            if family == sa_family_t(AF_INET6) {
                var high: UInt64 = 0, low: UInt64 = 0
                for i in 0..<8 { high = high << 8 | UInt64(bytes[8 + i]) }
                for i in 0..<8 { low = low << 8 | UInt64(bytes[16 + i]) }
                return (SoftAddress(gidHigh: high, low: low), port)
            }
            return (.ipv4(UInt32(bigEndian: bytes.load(fromByteOffset: 4, as: UInt32.self))), port)
        }
    }

    func encapsulation(source: SoftAddress, sourcePort: UInt16, destination: SoftAddress, destinationPort: UInt16) -> RoCEEncapsulation {
        switch (source, destination) {
        case (.ipv4(let s), .ipv4(let d)):
            return RoCEEncapsulation(network: .ipv4(source: .init(rawValue: s), destination: .init(rawValue: d)),
                                     sourcePort: sourcePort, destinationPort: destinationPort)
        default:
            return RoCEEncapsulation(network: .ipv6(source: source.ipv6Value, destination: destination.ipv6Value),
                                     sourcePort: sourcePort, destinationPort: destinationPort)
        }
    }

    func handlePacket(_ bytes: UnsafeRawBufferPointer, from source: SoftAddress, port sourcePort: UInt16) {
        let packet: RoCEPacket
        do { packet = try RoCEPacket(parsing: bytes) } catch { counters.malformedPackets += 1; return }
        if configuration.verifyICRC {
            let flow = encapsulation(source: source, sourcePort: sourcePort, destination: address, destinationPort: port)
            do { try ICRC.verify(transportPacket: bytes, encapsulation: flow) } catch { counters.icrcErrors += 1; return }
        }
        let headers = packet.headers
        guard let qp = queuePairs[headers.bth.destinationQP.rawValue] else { counters.unknownQueuePair += 1; return }
        guard headers.bth.partitionKey == BaseTransportHeader.defaultPartitionKey else { counters.badPartitionKey += 1; return }
        let payload = packet.payload(in: bytes)
        let opcode = headers.bth.opcode
        switch opcode.transport {
        case .reliableConnected where qp.type == .reliableConnected:
            if opcode.isResponse {
                guard qp.state == .readyToSend || qp.state == .sendQueueDrained else { counters.wrongState += 1; return }
                handleResponse(qp, headers, payload)
            } else {
                guard qp.state == .readyToReceive || qp.state == .readyToSend || qp.state == .sendQueueDrained else { counters.wrongState += 1; return }
                handleRequest(qp, headers, payload)
            }
        case .unreliableDatagram where qp.type == .unreliableDatagram:
            guard qp.state == .readyToReceive || qp.state == .readyToSend else { counters.wrongState += 1; return }
            handleDatagram(qp, headers, payload, source: source)
        default:
            counters.malformedPackets += 1
        }
    }

    // MARK: Send helpers

    /// Serializes `headers` with `payloadLength` bytes already at the payload offset of
    /// `sendBuffer`, seals the ICRC and emits the packet to `destination`.
    func emit(_ headers: TransportHeaders, payloadLength: Int, to destination: SoftAddress, port destinationPort: UInt16) {
        let headerLength = headers.byteCount
        let buffer = UnsafeMutableRawBufferPointer(start: sendBuffer, count: Self.maxPacket)
        let payload = UnsafeRawBufferPointer(start: sendBuffer + headerLength, count: payloadLength)
        guard let total = try? RoCEPacket.serialize(headers: headers, payload: payload, into: buffer) else { return }
        let packet = UnsafeMutableRawBufferPointer(start: sendBuffer, count: total)
        let flow = encapsulation(source: address, sourcePort: port, destination: destination, destinationPort: destinationPort)
        guard (try? ICRC.seal(transportPacket: packet, encapsulation: flow)) != nil else { return }
        counters.sentPackets += 1
        if faults.isActive { injectFaults(total, destination, destinationPort) } else { sendDatagram(sendBuffer, total, destination, destinationPort) }
    }

    func sendDatagram(_ bytes: UnsafeRawPointer, _ length: Int, _ destination: SoftAddress, _ destinationPort: UInt16) {
        switch destination {
        case .ipv4(let value):
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = destinationPort.bigEndian
            sa.sin_addr.s_addr = value.bigEndian
            _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(socket, bytes, length, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        case .ipv6(let high, let low):
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = destinationPort.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { b in
                for i in 0..<8 { b[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i))) }
                for i in 0..<8 { b[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i))) }
            }
            _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(socket, bytes, length, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        }
    }

    @inline(__always) func nextRandom() -> Double {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return Double(random >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    func injectFaults(_ length: Int, _ destination: SoftAddress, _ destinationPort: UInt16) {
        if nextRandom() < faults.drop { counters.injectedDrops += 1; return }
        var flipped = -1
        if nextRandom() < faults.corrupt {
            counters.injectedCorruptions += 1
            flipped = Int(nextRandom() * Double(length)) % length
            sendBuffer.storeBytes(of: sendBuffer.load(fromByteOffset: flipped, as: UInt8.self) ^ 0x5A, toByteOffset: flipped, as: UInt8.self)
        }
        // The send buffer is reused (a duplicate re-serializes from it): undo the flip after.
        defer {
            if flipped >= 0 {
                sendBuffer.storeBytes(of: sendBuffer.load(fromByteOffset: flipped, as: UInt8.self) ^ 0x5A, toByteOffset: flipped, as: UInt8.self)
            }
        }
        let reorder = nextRandom() < faults.reorder
        let delay = !reorder && nextRandom() < faults.delay
        if reorder || delay, let slot = (0..<Self.delaySlots).first(where: { delayRelease[$0] == 0 }) {
            if reorder { counters.injectedReorders += 1 } else { counters.injectedDelays += 1 }
            (delayBuffers + slot * Self.maxPacket).copyMemory(from: sendBuffer, byteCount: length)
            delayLength[slot] = length
            delayAddress[slot] = destination
            delayPort[slot] = destinationPort
            let wait: UInt64 = reorder ? 100_000 : UInt64(faults.delayMicroseconds) * 1000
            delayRelease[slot] = Self.now() + wait
            delayedCount += 1
            return
        }
        sendDatagram(sendBuffer, length, destination, destinationPort)
        if nextRandom() < faults.duplicate {
            counters.injectedDuplicates += 1
            sendDatagram(sendBuffer, length, destination, destinationPort)
        }
    }

    func releaseDelayed(now: UInt64, all: Bool) {
        for slot in 0..<Self.delaySlots where delayRelease[slot] != 0 && (all || delayRelease[slot] <= now) {
            sendDatagram(delayBuffers + slot * Self.maxPacket, delayLength[slot], delayAddress[slot], delayPort[slot])
            delayRelease[slot] = 0
            delayedCount -= 1
        }
    }

    // MARK: Requester

    func destinationQP(_ qp: SoftQueuePair) -> QueuePairNumber { QueuePairNumber(exactly: qp.destinationQPN) ?? 1 }

    func transmit(_ qp: SoftQueuePair, now: UInt64) {
        guard let destination = qp.destination else { return }
        if qp.rnrUntil != 0 {
            if now < qp.rnrUntil { return }
            qp.rnrUntil = 0
        }
        var budget = 64
        while qp.cursor < qp.tail && budget > 0 {
            // Response packets of the oldest READ already received count as acknowledged.
            var base = psnAdd(qp.lastAckedPSN, 1)
            if qp.head < qp.tail {
                let oldest = qp.slot(qp.head)
                if oldest.pointee.assigned && oldest.pointee.request.opcode == .read {
                    let received = psnAdd(oldest.pointee.firstPSN, oldest.pointee.received)
                    if psnDistance(base, received) > 0 { base = received }
                }
            }
            let inFlight = psnDistance(base, qp.nextPSN)
            if inFlight >= Int(Self.window) { break }
            budget -= 1
            let index = qp.cursor
            let slot = qp.slot(index)
            if slot.pointee.done && slot.pointee.assigned {
                // A READ/atomic whose response already arrived: a go-back passes over it.
                qp.nextPSN = psnAdd(slot.pointee.firstPSN, slot.pointee.packetCount)
                qp.cursor += 1
                qp.packetIndex = 0
                continue
            }
            if qp.packetIndex == 0 && !(slot.pointee.request.opcode == .read && slot.pointee.received > 0) {
                slot.pointee.firstPSN = qp.nextPSN
                slot.pointee.assigned = true
                if slot.pointee.request.opcode == .read { slot.pointee.received = 0 }
            }
            let request = slot.pointee.request
            let length = slot.pointee.length
            let mtu = qp.mtu
            let psn = PacketSequenceNumber(truncating: qp.nextPSN)
            var headers = TransportHeaders(BaseTransportHeader(opcode: .rcSendOnly, destinationQP: destinationQP(qp), psn: psn))
            var payloadLength = 0
            switch request.opcode {
            case .send, .sendWithImmediate, .write, .writeWithImmediate:
                let packetCount = slot.pointee.packetCount
                let offset = qp.packetIndex * mtu
                payloadLength = min(mtu, length - offset)
                let first = qp.packetIndex == 0, last = qp.packetIndex == packetCount - 1
                let immediate = request.opcode == .sendWithImmediate || request.opcode == .writeWithImmediate
                let isSend = request.opcode == .send || request.opcode == .sendWithImmediate
                let opcode: Opcode
                switch (first, last, isSend) {
                case (true, true, true): opcode = immediate ? .rcSendOnlyWithImmediate : .rcSendOnly
                case (true, false, true): opcode = .rcSendFirst
                case (false, false, true): opcode = .rcSendMiddle
                case (false, true, true): opcode = immediate ? .rcSendLastWithImmediate : .rcSendLast
                case (true, true, false): opcode = immediate ? .rcRDMAWriteOnlyWithImmediate : .rcRDMAWriteOnly
                case (true, false, false): opcode = .rcRDMAWriteFirst
                case (false, false, false): opcode = .rcRDMAWriteMiddle
                case (false, true, false): opcode = immediate ? .rcRDMAWriteLastWithImmediate : .rcRDMAWriteLast
                }
                headers.bth.opcode = opcode
                headers.bth.solicitedEvent = last && request.solicited
                headers.bth.ackRequest = last || qp.packetIndex % Self.ackRequestInterval == Self.ackRequestInterval - 1
                if first && !isSend {
                    headers.rdma = RETH(virtualAddress: request.remoteAddress, remoteKey: request.remoteKey, dmaLength: UInt32(length))
                }
                if last && immediate { headers.immediateData = ImmDt(request.immediate) }
                guard gather(qp, index, offset: offset, count: payloadLength, into: sendBuffer + opcode.headerLength) else {
                    fail(qp, status: .localProtectionError)
                    return
                }
                qp.packetIndex += 1
                qp.nextPSN = psnAdd(qp.nextPSN, 1)
                if qp.packetIndex == packetCount { qp.cursor += 1; qp.packetIndex = 0 }
            case .read:
                // A READ goes out as requests of at most `readChunkPackets` response packets
                // each (consecutive PSN ranges), so one lost response costs one short replay.
                let packetCount = slot.pointee.packetCount
                let startPacket = qp.packetIndex
                let chunkPackets = min(Self.readChunkPackets, packetCount - startPacket)
                let offsetBytes = min(length, startPacket * mtu)
                let chunkBytes = min(length - offsetBytes, chunkPackets * mtu)
                headers.bth.opcode = .rcRDMAReadRequest
                headers.bth.ackRequest = true
                headers.bth.psn = PacketSequenceNumber(truncating: psnAdd(slot.pointee.firstPSN, startPacket))
                headers.rdma = RETH(virtualAddress: request.remoteAddress + UInt64(offsetBytes), remoteKey: request.remoteKey,
                                    dmaLength: UInt32(chunkBytes))
                qp.packetIndex += chunkPackets
                qp.nextPSN = psnAdd(slot.pointee.firstPSN, qp.packetIndex)
                if qp.packetIndex >= packetCount { qp.cursor += 1; qp.packetIndex = 0 }
            case .compareAndSwap, .fetchAndAdd:
                headers.bth.opcode = request.opcode == .compareAndSwap ? .rcCompareSwap : .rcFetchAdd
                headers.bth.ackRequest = true
                headers.atomic = AtomicETH(virtualAddress: request.remoteAddress, remoteKey: request.remoteKey,
                                           swapOrAdd: request.opcode == .compareAndSwap ? request.swap : request.compareAdd,
                                           compare: request.opcode == .compareAndSwap ? request.compareAdd : 0)
                qp.nextPSN = psnAdd(qp.nextPSN, 1)
                qp.cursor += 1
                qp.packetIndex = 0
            }
            if softTrace { print("TX qp\(qp.number) wr\(request.id) \(headers.bth.opcode.rawValue) psn \(headers.bth.psn.rawValue) len \(payloadLength)") }
            if psnDistance(qp.highestPSN, qp.nextPSN) > 0 { qp.highestPSN = qp.nextPSN }
            if qp.timerDeadline == 0 { armTimer(qp, now: now) }
            emit(headers, payloadLength: payloadLength, to: destination, port: peerPort)
            if qp.duplicateNextPacket {
                qp.duplicateNextPacket = false
                emit(headers, payloadLength: payloadLength, to: destination, port: peerPort)
            }
        }
    }

    func armTimer(_ qp: SoftQueuePair, now: UInt64) {
        guard qp.timeoutCode != 0 else { qp.timerDeadline = 0; return }
        qp.timerDeadline = now + 4096 << UInt64(qp.timeoutCode)
    }

    func checkTimer(_ qp: SoftQueuePair, now: UInt64) {
        guard qp.timerDeadline != 0, now >= qp.timerDeadline, qp.rnrUntil == 0 else { return }
        guard qp.head < qp.tail, psnDistance(psnAdd(qp.lastAckedPSN, 1), qp.highestPSN) > 0 else { qp.timerDeadline = 0; return }
        counters.completerRetry += 1
        if qp.retriesLeft <= 0 {
            counters.retryExceeded += 1
            fail(qp, status: .retryExceeded)
            return
        }
        qp.retriesLeft -= 1
        goBack(qp, to: psnAdd(qp.lastAckedPSN, 1))
        // Cheap insurance on a lossy path: the packet the peer is waiting for goes out twice
        // (a duplicate is harmless: the responder re-ACKs or replays it).
        qp.duplicateNextPacket = true
        armTimer(qp, now: now)
    }

    /// Go-back-N: the next packet transmitted is `psn`.
    func goBack(_ qp: SoftQueuePair, to psn: UInt32) {
        var index = qp.head
        while index < qp.tail {
            let slot = qp.slot(index)
            guard slot.pointee.assigned else { break }
            let offset = psnDistance(slot.pointee.firstPSN, psn)
            if offset >= 0 && offset < slot.pointee.packetCount {
                qp.cursor = index
                if slot.pointee.request.opcode == .read {
                    // Responses up to `received` are in place: ask again from there.
                    // Requests start on chunk boundaries, so their PSNs are always the ones
                    // the responder saw (a replay) or expects (its ePSN).
                    qp.packetIndex = max(offset, slot.pointee.received) / Self.readChunkPackets * Self.readChunkPackets
                    qp.cursor = index
                    qp.nextPSN = psnAdd(slot.pointee.firstPSN, qp.packetIndex)
                    return
                } else if slot.pointee.request.opcode.isReadOrAtomic {
                    qp.packetIndex = 0
                } else {
                    qp.packetIndex = offset
                }
                qp.nextPSN = psn
                return
            }
            index += 1
        }
        // Nothing sent holds `psn`: continue with the first request not yet sent.
        qp.cursor = max(qp.head, min(qp.cursor, qp.tail))
        while qp.cursor < qp.tail && qp.slot(qp.cursor).pointee.assigned { qp.cursor += 1 }
        qp.packetIndex = 0
        qp.nextPSN = psn
    }

    /// Completes every request acknowledged up to and including `psn`, in order.
    func acknowledge(_ qp: SoftQueuePair, through psn: UInt32, now: UInt64) {
        let window = psnDistance(psnAdd(qp.lastAckedPSN, 1), qp.highestPSN)
        let advance = psnDistance(qp.lastAckedPSN, psn)
        guard advance > 0 && advance <= window else { return }
        var psn = psn
        while qp.head < qp.tail {
            let slot = qp.slot(qp.head)
            guard slot.pointee.assigned else { break }
            let last = psnAdd(slot.pointee.firstPSN, slot.pointee.packetCount - 1)
            if slot.pointee.request.opcode.isReadOrAtomic && slot.pointee.done {
                // Its response arrived (and acknowledged everything before it).
                if psnDistance(psn, last) > 0 { psn = last }
                completeHead(qp, status: .success)
                continue
            }
            guard psnDistance(last, psn) >= 0 else { break }
            if slot.pointee.request.opcode.isReadOrAtomic && !slot.pointee.done {
                // A later request was acknowledged but this response is missing: implicit NAK.
                let resume = psnAdd(slot.pointee.firstPSN, slot.pointee.request.opcode == .read ? slot.pointee.received : 0)
                qp.lastAckedPSN = psnAdd(resume, -1)
                goBack(qp, to: resume)
                armTimer(qp, now: now)
                return
            }
            completeHead(qp, status: .success)
        }
        // An ACK/NAK inside a READ's range says the request was executed, not that its
        // responses arrived: acknowledge no further than the responses received.
        if qp.head < qp.tail {
            let oldest = qp.slot(qp.head)
            if oldest.pointee.assigned && oldest.pointee.request.opcode.isReadOrAtomic && !oldest.pointee.done {
                let cap = psnAdd(oldest.pointee.firstPSN, (oldest.pointee.request.opcode == .read ? oldest.pointee.received : 0) - 1)
                if psnDistance(cap, psn) > 0 { psn = cap }
            }
        }
        if psnDistance(qp.lastAckedPSN, psn) > 0 { qp.lastAckedPSN = psn }
        qp.retriesLeft = Int(qp.retryCount)
        qp.rnrRetriesLeft = Int(qp.rnrRetry)
        // Acknowledged beyond what a go-back has re-sent so far: skip ahead.
        if psnDistance(qp.nextPSN, psnAdd(psn, 1)) > 0 { goBack(qp, to: psnAdd(psn, 1)) }
        if psnDistance(psnAdd(qp.lastAckedPSN, 1), qp.highestPSN) > 0 { armTimer(qp, now: now) } else { qp.timerDeadline = 0 }
    }

    /// Completes the oldest send request with `status` (a CQE when signaled or failed).
    func completeHead(_ qp: SoftQueuePair, status: SoftCompletionStatus) {
        let slot = qp.slot(qp.head)
        let request = slot.pointee.request
        if status != .success || request.signaled || qp.signalAll {
            var completion = SoftCompletion()
            completion.id = request.id
            completion.status = status
            completion.opcode = request.opcode.completionOpcode
            completion.byteLength = status == .success ? UInt32(slot.pointee.length) : 0
            completion.queuePairNumber = qp.number
            qp.sendQueue.push(completion)
            if qp.sendQueue.overruns > 0 { counters.completionQueueOverruns = qp.sendQueue.overruns }
        }
        if status == .success {
            if request.opcode == .send || request.opcode == .sendWithImmediate { counters.rdmaSends += 1 }
        }
        qp.head += 1
        if qp.cursor < qp.head { qp.cursor = qp.head; qp.packetIndex = 0 }
    }

    /// The head request failed: complete it with `status`, flush the rest, QP to ERROR.
    func fail(_ qp: SoftQueuePair, status: SoftCompletionStatus) {
        if qp.head < qp.tail { completeHead(qp, status: status) }
        enterError(qp)
    }

    func enterError(_ qp: SoftQueuePair) {
        qp.state = .error
        qp.timerDeadline = 0
        qp.rnrUntil = 0
        while qp.head < qp.tail { completeHead(qp, status: .flushed) }
        qp.cursor = qp.tail
        if let ring = qp.currentReceiveRing, let index = qp.currentReceive, ring === qp.receiveRing {
            _ = ring
            pushReceive(qp, id: qp.receiveRing.slots[index].id, status: .flushed, length: 0)
        }
        qp.currentReceive = nil
        qp.currentReceiveRing = nil
        while let index = qp.receiveRing.take() {
            pushReceive(qp, id: qp.receiveRing.slots[index].id, status: .flushed, length: 0)
        }
    }

    func pushReceive(_ qp: SoftQueuePair, id: UInt64, status: SoftCompletionStatus, length: Int,
                     opcode: SoftCompletionOpcode = .receive, immediate: UInt32? = nil, sourceQP: UInt32 = 0, grh: Bool = false) {
        var completion = SoftCompletion()
        completion.id = id
        completion.status = status
        completion.opcode = opcode
        completion.byteLength = UInt32(length)
        completion.queuePairNumber = qp.number
        if let immediate { completion.immediate = immediate; completion.hasImmediate = true }
        completion.sourceQueuePairNumber = sourceQP
        completion.hasGlobalRouteHeader = grh
        qp.receiveQueue.push(completion)
    }

    func handleResponse(_ qp: SoftQueuePair, _ headers: TransportHeaders, _ payload: UnsafeRawBufferPointer) {
        let psn = headers.bth.psn.rawValue
        let now = Self.now()
        let opcode = headers.bth.opcode
        if softTrace { print("RX-RSP qp\(qp.number) op \(opcode.rawValue) psn \(psn) aeth \(headers.acknowledge?.syndrome.rawValue ?? 255) lastAcked \(qp.lastAckedPSN) next \(qp.nextPSN) high \(qp.highestPSN) cursor \(qp.cursor) head \(qp.head)") }
        // Responses must name a PSN in flight.
        let offset = psnDistance(psnAdd(qp.lastAckedPSN, 1), psn)
        guard offset >= 0, offset < psnDistance(psnAdd(qp.lastAckedPSN, 1), qp.highestPSN) else { return }
        if opcode == .rcAcknowledge || opcode == .rcAtomicAcknowledge || opcode == .rcRDMAReadResponseOnly || opcode == .rcRDMAReadResponseLast || opcode == .rcRDMAReadResponseFirst,
           let aeth = headers.acknowledge {
            switch aeth.syndrome.kind {
            case .ack:
                break
            case .receiverNotReady(let timer):
                counters.receivedRNRError += 1
                acknowledge(qp, through: psnAdd(psn, -1), now: now)
                guard qp.state != .error else { return }
                if qp.rnrRetry != 7 {
                    if qp.rnrRetriesLeft <= 0 {
                        counters.rnrRetryExceeded += 1
                        fail(qp, status: .receiverNotReadyRetryExceeded)
                        return
                    }
                    qp.rnrRetriesLeft -= 1
                }
                goBack(qp, to: psn)
                qp.rnrUntil = now + rnrTimerNanoseconds[Int(timer & 0x1F)]
                qp.timerDeadline = 0
                return
            case .nak(let code):
                acknowledge(qp, through: psnAdd(psn, -1), now: now)
                guard qp.state != .error else { return }
                switch code {
                case .psnSequenceError:
                    counters.receivedSequenceError += 1
                    goBack(qp, to: psn)
                    armTimer(qp, now: now)
                case .remoteAccessError: fail(qp, status: .remoteAccessError)
                case .remoteOperationalError: fail(qp, status: .remoteOperationError)
                default: fail(qp, status: .remoteInvalidRequest)
                }
                return
            case .reserved:
                return
            }
        }
        switch opcode {
        case .rcAcknowledge:
            acknowledge(qp, through: psn, now: now)
        case .rcAtomicAcknowledge:
            guard let slotIndex = findSlot(qp, psn: psn), let atomic = headers.atomicAcknowledge else { return }
            let slot = qp.slot(slotIndex)
            guard slot.pointee.request.opcode == .compareAndSwap || slot.pointee.request.opcode == .fetchAndAdd, !slot.pointee.done else { return }
            let before = psnAdd(slot.pointee.firstPSN, -1)
            if psnDistance(qp.lastAckedPSN, before) > 0 { acknowledge(qp, through: before, now: now) }
            guard qp.state != .error else { return }
            var value = atomic.originalRemoteData
            guard scatterLocal(qp, slotIndex, offset: 0, from: UnsafeRawBufferPointer(start: &value, count: 8)) else {
                fail(qp, status: .localProtectionError); return
            }
            slot.pointee.done = true
            acknowledge(qp, through: psn, now: now)
        case .rcRDMAReadResponseFirst, .rcRDMAReadResponseMiddle, .rcRDMAReadResponseLast, .rcRDMAReadResponseOnly:
            guard let slotIndex = findSlot(qp, psn: psn) else { return }
            let slot = qp.slot(slotIndex)
            guard slot.pointee.request.opcode == .read, !slot.pointee.done else { return }
            // Any response to this READ proves every earlier request was executed.
            let before = psnAdd(slot.pointee.firstPSN, -1)
            if psnDistance(qp.lastAckedPSN, before) > 0 { acknowledge(qp, through: before, now: now) }
            guard qp.state != .error, !slot.pointee.done else { return }
            let expected = psnAdd(slot.pointee.firstPSN, slot.pointee.received)
            if softTrace { print("READ-RSP wr\(slot.pointee.request.id) psn \(psn) expected \(expected) received \(slot.pointee.received) len \(payload.count)") }
            if psn != expected {
                // A gap in the response stream: ask again from the first missing packet, once.
                if psnDistance(expected, psn) > 0 && qp.readGoBackPSN != expected {
                    qp.readGoBackPSN = expected
                    goBack(qp, to: expected)
                }
                return
            }
            let packetIndex = slot.pointee.received
            let endsChunk = opcode == .rcRDMAReadResponseLast || opcode == .rcRDMAReadResponseOnly
            let end = packetIndex * qp.mtu + payload.count
            let complete = end == slot.pointee.length
            guard end <= slot.pointee.length, payload.count == qp.mtu || (endsChunk && complete) else {
                fail(qp, status: .badResponse); return
            }
            guard scatterLocal(qp, slotIndex, offset: packetIndex * qp.mtu, from: payload) else {
                fail(qp, status: .localProtectionError); return
            }
            slot.pointee.received += 1
            qp.retriesLeft = Int(qp.retryCount)   // forward progress resets the retry budget
            if complete {
                slot.pointee.done = true
                acknowledge(qp, through: psn, now: now)
            } else if qp.timerDeadline != 0 {
                armTimer(qp, now: now)
            }
        default:
            break
        }
    }

    func findSlot(_ qp: SoftQueuePair, psn: UInt32) -> Int? {
        var index = qp.head
        while index < qp.tail {
            let slot = qp.slot(index)
            guard slot.pointee.assigned else { return nil }
            let offset = psnDistance(slot.pointee.firstPSN, psn)
            if offset >= 0 && offset < slot.pointee.packetCount { return index }
            index += 1
        }
        return nil
    }

    // MARK: Local memory

    @inline(__always) func localRegion(_ qp: SoftQueuePair, _ element: SoftScatterGather, needWrite: Bool) -> UnsafeMutableRawPointer? {
        guard let region = regions[element.lkey], region.valid, region.domain == qp.domain,
              region.contains(element.address, Int(element.length)),
              !needWrite || region.access.contains(.localWrite) else { return nil }
        return UnsafeMutableRawPointer(bitPattern: UInt(element.address))
    }

    /// Copies `count` bytes at `offset` of request `index`'s gather list into `destination`.
    func gather(_ qp: SoftQueuePair, _ index: Int, offset: Int, count: Int, into destination: UnsafeMutableRawPointer) -> Bool {
        let slot = qp.slot(index)
        if count == 0 { return true }
        if slot.pointee.request.inline {
            destination.copyMemory(from: qp.inlinePointer(index) + offset, byteCount: count)
            return true
        }
        var skip = offset, copied = 0
        for i in 0..<slot.pointee.sgeCount where copied < count {
            let element = qp.sge(index, i)
            let length = Int(element.length)
            if skip >= length { skip -= length; continue }
            guard let base = localRegion(qp, element, needWrite: false) else { return false }
            let n = min(length - skip, count - copied)
            (destination + copied).copyMemory(from: base + skip, byteCount: n)
            copied += n
            skip = 0
        }
        return copied == count
    }

    /// Copies response bytes into request `index`'s local buffers at `offset`.
    func scatterLocal(_ qp: SoftQueuePair, _ index: Int, offset: Int, from source: UnsafeRawBufferPointer) -> Bool {
        let slot = qp.slot(index)
        var skip = offset, copied = 0
        let count = source.count
        if count == 0 { return true }
        for i in 0..<slot.pointee.sgeCount where copied < count {
            let element = qp.sge(index, i)
            let length = Int(element.length)
            if skip >= length { skip -= length; continue }
            guard let base = localRegion(qp, element, needWrite: true) else { return false }
            let n = min(length - skip, count - copied)
            (base + skip).copyMemory(from: source.baseAddress! + copied, byteCount: n)
            copied += n
            skip = 0
        }
        return copied == count
    }

    /// Copies `source` into a posted receive at `offset`; false when it does not fit or a key is bad.
    func scatterReceive(_ qp: SoftQueuePair, ring: ReceiveRing, slot index: Int, offset: Int, from source: UnsafeRawBufferPointer) -> Bool {
        var skip = offset, copied = 0
        let count = source.count
        if count == 0 { return true }
        for i in 0..<ring.slots[index].sgeCount where copied < count {
            let element = ring.elements[index * ring.maxScatterGather + i]
            let length = Int(element.length)
            if skip >= length { skip -= length; continue }
            guard let base = localRegion(qp, element, needWrite: true) else { return false }
            let n = min(length - skip, count - copied)
            (base + skip).copyMemory(from: source.baseAddress! + copied, byteCount: n)
            copied += n
            skip = 0
        }
        return copied == count
    }

    // MARK: Responder

    func sendAcknowledge(_ qp: SoftQueuePair, syndrome: AETH.Syndrome, psn: UInt32) {
        qp.ackPending = false
        guard let destination = qp.destination else { return }
        var headers = TransportHeaders(BaseTransportHeader(opcode: .rcAcknowledge, destinationQP: destinationQP(qp),
                                                           psn: PacketSequenceNumber(truncating: psn)))
        headers.acknowledge = AETH(syndrome: syndrome, messageSequenceNumber: qp.messageSequenceNumber)
        emit(headers, payloadLength: 0, to: destination, port: peerPort)
    }

    func nak(_ qp: SoftQueuePair, _ code: AETH.NAKCode, psn: UInt32) {
        switch code {
        case .remoteAccessError: counters.remoteAccessNAKsSent += 1
        case .remoteOperationalError: counters.operationalNAKsSent += 1
        case .invalidRequest: counters.invalidRequestNAKsSent += 1
        default: break
        }
        qp.inSendMessage = false
        qp.inWriteMessage = false
        sendAcknowledge(qp, syndrome: .nak(code), psn: psn)
    }

    /// R_Key, bounds and access checks of a RETH/AtomicETH target.
    func remoteRegion(_ qp: SoftQueuePair, key: UInt32, address: UInt64, length: Int, need: SoftAccess) -> SoftMemoryRegion? {
        guard qp.access.contains(need), let region = regions[key], region.valid, region.domain == qp.domain,
              region.access.contains(need), region.contains(address, length) else { return nil }
        return region
    }

    func takeReceive(_ qp: SoftQueuePair) -> Bool {
        if qp.currentReceive != nil { return true }
        let ring = qp.sharedReceiveQueue?.ring ?? qp.receiveRing
        guard let index = ring.take() else { return false }
        qp.currentReceive = index
        qp.currentReceiveRing = ring
        qp.currentReceiveOffset = 0
        return true
    }

    func handleRequest(_ qp: SoftQueuePair, _ headers: TransportHeaders, _ payload: UnsafeRawBufferPointer) {
        let psn = headers.bth.psn.rawValue
        let opcode = headers.bth.opcode
        let distance = psnDistance(qp.expectedPSN, psn)
        if softTrace { print("RX-REQ qp\(qp.number) op \(opcode.rawValue) psn \(psn) epsn \(qp.expectedPSN) len \(payload.count)") }
        if distance < 0 {
            counters.duplicateRequest += 1
            switch opcode {
            case .rcRDMAReadRequest:
                // Replay: the RETH of the retransmitted request names what is still wanted.
                guard let reth = headers.rdma else { return }
                respondToRead(qp, reth, psn: psn, duplicate: true)
            case .rcCompareSwap, .rcFetchAdd:
                if let slot = qp.atomicPSN.firstIndex(of: psn) {
                    sendAtomicAcknowledge(qp, psn: psn, original: qp.atomicResult[slot])
                }
            default:
                qp.ackPending = true
            }
            return
        }
        if distance > 0 {
            counters.outOfSequenceRequest += 1
            if !qp.nakSequenceSent {
                qp.nakSequenceSent = true
                sendAcknowledge(qp, syndrome: .nak(.psnSequenceError), psn: qp.expectedPSN)
            }
            return
        }
        qp.nakSequenceSent = false
        let mtu = qp.mtu
        let position = opcode.position
        switch opcode.operation {
        case .send:
            let starts = position == .first || position == .only
            if starts == qp.inSendMessage || qp.inWriteMessage { nak(qp, .invalidRequest, psn: psn); return }
            if (position == .first || position == .middle) && payload.count != mtu { nak(qp, .invalidRequest, psn: psn); return }
            if starts {
                guard takeReceive(qp) else {
                    counters.sendRNRError += 1
                    sendAcknowledge(qp, syndrome: .receiverNotReady(timer: qp.minRNRTimer), psn: psn)
                    return
                }
            }
            guard let ring = qp.currentReceiveRing, let index = qp.currentReceive else { nak(qp, .invalidRequest, psn: psn); return }
            if !scatterReceive(qp, ring: ring, slot: index, offset: qp.currentReceiveOffset, from: payload) {
                // Too long for the receive, or its buffers are bad: the receive fails locally,
                // the requester gets NAK invalid request.
                pushReceive(qp, id: ring.slots[index].id, status: .localLengthError, length: 0)
                qp.currentReceive = nil
                qp.currentReceiveRing = nil
                nak(qp, .invalidRequest, psn: psn)
                return
            }
            qp.currentReceiveOffset += payload.count
            qp.inSendMessage = !(position == .last || position == .only)
            if position == .last || position == .only {
                counters.rdmaReceives += 1
                pushReceive(qp, id: ring.slots[index].id, status: .success, length: qp.currentReceiveOffset,
                            immediate: headers.immediateData?.value)
                qp.currentReceive = nil
                qp.currentReceiveRing = nil
                qp.messageSequenceNumber = (qp.messageSequenceNumber + 1) & 0xFF_FFFF
            }
        case .rdmaWrite:
            let starts = position == .first || position == .only
            if starts == qp.inWriteMessage || qp.inSendMessage { nak(qp, .invalidRequest, psn: psn); return }
            if (position == .first || position == .middle) && payload.count != mtu { nak(qp, .invalidRequest, psn: psn); return }
            if starts {
                guard let reth = headers.rdma else { nak(qp, .invalidRequest, psn: psn); return }
                let length = Int(reth.dmaLength)
                guard length == 0 || remoteRegion(qp, key: reth.remoteKey, address: reth.virtualAddress, length: length, need: .remoteWrite) != nil else {
                    nak(qp, .remoteAccessError, psn: psn); return
                }
                qp.writeAddress = reth.virtualAddress
                qp.writeRemaining = length
                qp.writeTotal = length
            }
            guard payload.count <= qp.writeRemaining else { nak(qp, .invalidRequest, psn: psn); return }
            if position == .last || position == .only, opcode.hasImmediateData, !takeReceive(qp) {
                counters.sendRNRError += 1
                sendAcknowledge(qp, syndrome: .receiverNotReady(timer: qp.minRNRTimer), psn: psn)
                return
            }
            if payload.count > 0, let target = UnsafeMutableRawPointer(bitPattern: UInt(qp.writeAddress)) {
                target.copyMemory(from: payload.baseAddress!, byteCount: payload.count)
            }
            qp.writeAddress += UInt64(payload.count)
            qp.writeRemaining -= payload.count
            qp.inWriteMessage = !(position == .last || position == .only)
            if position == .last || position == .only {
                if opcode.hasImmediateData, let ring = qp.currentReceiveRing, let index = qp.currentReceive {
                    pushReceive(qp, id: ring.slots[index].id, status: .success, length: qp.writeTotal,
                                opcode: .receiveRDMAWriteWithImmediate, immediate: headers.immediateData?.value)
                    qp.currentReceive = nil
                    qp.currentReceiveRing = nil
                }
                qp.messageSequenceNumber = (qp.messageSequenceNumber + 1) & 0xFF_FFFF
            }
        case .rdmaReadRequest:
            guard !qp.inSendMessage && !qp.inWriteMessage, let reth = headers.rdma else { nak(qp, .invalidRequest, psn: psn); return }
            guard reth.dmaLength == 0 || remoteRegion(qp, key: reth.remoteKey, address: reth.virtualAddress, length: Int(reth.dmaLength), need: .remoteRead) != nil else {
                nak(qp, .remoteAccessError, psn: psn); return
            }
            let packets = max(1, (Int(reth.dmaLength) + mtu - 1) / mtu)
            qp.messageSequenceNumber = (qp.messageSequenceNumber + 1) & 0xFF_FFFF
            qp.expectedPSN = psnAdd(psn, packets)
            respondToRead(qp, reth, psn: psn, duplicate: false)
            return
        case .compareSwap, .fetchAdd:
            guard !qp.inSendMessage && !qp.inWriteMessage, let atomic = headers.atomic else { nak(qp, .invalidRequest, psn: psn); return }
            guard atomic.virtualAddress % 8 == 0 else { nak(qp, .invalidRequest, psn: psn); return }
            guard remoteRegion(qp, key: atomic.remoteKey, address: atomic.virtualAddress, length: 8, need: .remoteAtomic) != nil,
                  let target = UnsafeMutableRawPointer(bitPattern: UInt(atomic.virtualAddress)) else {
                nak(qp, .remoteAccessError, psn: psn); return
            }
            let original = target.load(as: UInt64.self)
            if opcode == .rcCompareSwap {
                if original == atomic.compare { target.storeBytes(of: atomic.swapOrAdd, as: UInt64.self) }
            } else {
                target.storeBytes(of: original &+ atomic.swapOrAdd, as: UInt64.self)
            }
            qp.atomicPSN[qp.atomicNext] = psn
            qp.atomicResult[qp.atomicNext] = original
            qp.atomicNext = (qp.atomicNext + 1) % qp.atomicPSN.count
            qp.messageSequenceNumber = (qp.messageSequenceNumber + 1) & 0xFF_FFFF
            qp.expectedPSN = psnAdd(psn, 1)
            sendAtomicAcknowledge(qp, psn: psn, original: original)
            return
        default:
            nak(qp, .invalidRequest, psn: psn)
            return
        }
        qp.expectedPSN = psnAdd(psn, 1)
        if headers.bth.ackRequest { qp.ackPending = true }
    }

    func sendAtomicAcknowledge(_ qp: SoftQueuePair, psn: UInt32, original: UInt64) {
        guard let destination = qp.destination else { return }
        var headers = TransportHeaders(BaseTransportHeader(opcode: .rcAtomicAcknowledge, destinationQP: destinationQP(qp),
                                                           psn: PacketSequenceNumber(truncating: psn)))
        headers.acknowledge = AETH(syndrome: .ack(), messageSequenceNumber: qp.messageSequenceNumber)
        headers.atomicAcknowledge = AtomicAckETH(originalRemoteData: original)
        qp.ackPending = false
        emit(headers, payloadLength: 0, to: destination, port: peerPort)
    }

    func respondToRead(_ qp: SoftQueuePair, _ reth: RETH, psn: UInt32, duplicate: Bool) {
        guard let destination = qp.destination else { return }
        let length = Int(reth.dmaLength)
        if duplicate && length > 0 && remoteRegion(qp, key: reth.remoteKey, address: reth.virtualAddress, length: length, need: .remoteRead) == nil { return }
        let mtu = qp.mtu
        let packets = max(1, (length + mtu - 1) / mtu)
        for i in 0..<packets {
            let opcode: Opcode = packets == 1 ? .rcRDMAReadResponseOnly : i == 0 ? .rcRDMAReadResponseFirst
                : i == packets - 1 ? .rcRDMAReadResponseLast : .rcRDMAReadResponseMiddle
            var headers = TransportHeaders(BaseTransportHeader(opcode: opcode, destinationQP: destinationQP(qp),
                                                               psn: PacketSequenceNumber(truncating: psnAdd(psn, i))))
            if opcode != .rcRDMAReadResponseMiddle {
                headers.acknowledge = AETH(syndrome: .ack(), messageSequenceNumber: qp.messageSequenceNumber)
            }
            let chunk = min(mtu, length - i * mtu)
            if chunk > 0, let source = UnsafeRawPointer(bitPattern: UInt(reth.virtualAddress + UInt64(i * mtu))) {
                (sendBuffer + opcode.headerLength).copyMemory(from: source, byteCount: chunk)
            }
            emit(headers, payloadLength: max(chunk, 0), to: destination, port: peerPort)
        }
        qp.ackPending = false
    }

    // MARK: UD

    func transmitDatagrams(_ qp: SoftQueuePair) {
        guard qp.state == .readyToSend else { return }
        while qp.cursor < qp.tail {
            let index = qp.cursor
            let request = qp.slot(index).pointee.request
            let length = qp.slot(index).pointee.length
            guard let destination = request.destination, let remote = QueuePairNumber(exactly: request.remoteQueuePairNumber & 0xFF_FFFF) else {
                fail(qp, status: .localQueuePairOperationError); return
            }
            let immediate = request.opcode == .sendWithImmediate
            var headers = TransportHeaders(BaseTransportHeader(opcode: immediate ? .udSendOnlyWithImmediate : .udSendOnly,
                                                               solicitedEvent: request.solicited, destinationQP: remote,
                                                               psn: PacketSequenceNumber(truncating: qp.nextPSN)))
            headers.datagram = DETH(queueKey: request.remoteQKey, sourceQP: QueuePairNumber(exactly: qp.number) ?? 1)
            if immediate { headers.immediateData = ImmDt(request.immediate) }
            guard gather(qp, index, offset: 0, count: length, into: sendBuffer + headers.byteCount) else {
                fail(qp, status: .localProtectionError); return
            }
            qp.nextPSN = psnAdd(qp.nextPSN, 1)
            qp.cursor += 1
            emit(headers, payloadLength: length, to: destination, port: peerPort)
            completeHead(qp, status: .success)
        }
    }

    func handleDatagram(_ qp: SoftQueuePair, _ headers: TransportHeaders, _ payload: UnsafeRawBufferPointer, source: SoftAddress) {
        guard let deth = headers.datagram else { counters.malformedPackets += 1; return }
        guard deth.queueKey == qp.qkey else { counters.badQueueKey += 1; return }
        let ring = qp.sharedReceiveQueue?.ring ?? qp.receiveRing
        guard let index = ring.take() else { counters.udDroppedNoReceive += 1; return }
        // The 40-byte GRH verbs puts before a UD payload: IPv6-style, with the GIDs.
        var grh = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &grh) { bytes in
            bytes[0] = 0x60
            bytes[4] = UInt8(truncatingIfNeeded: payload.count >> 8)
            bytes[5] = UInt8(truncatingIfNeeded: payload.count)
            bytes[6] = 0x11
            bytes[7] = 64
            let s = source.ipv6Value, d = address.ipv6Value
            for i in 0..<8 {
                bytes[8 + i] = UInt8(truncatingIfNeeded: s.high >> (56 - 8 * UInt64(i)))
                bytes[16 + i] = UInt8(truncatingIfNeeded: s.low >> (56 - 8 * UInt64(i)))
                bytes[24 + i] = UInt8(truncatingIfNeeded: d.high >> (56 - 8 * UInt64(i)))
                bytes[32 + i] = UInt8(truncatingIfNeeded: d.low >> (56 - 8 * UInt64(i)))
            }
        }
        let ok = withUnsafeBytes(of: &grh) { scatterReceive(qp, ring: ring, slot: index, offset: 0, from: $0) }
            && scatterReceive(qp, ring: ring, slot: index, offset: 40, from: payload)
        counters.rdmaReceives += 1
        pushReceive(qp, id: ring.slots[index].id, status: ok ? .success : .localLengthError, length: ok ? 40 + payload.count : 0,
                    immediate: headers.immediateData?.value, sourceQP: deth.sourceQP.rawValue, grh: true)
    }
}

extension SoftAddress {
    init(gidHigh high: UInt64, low: UInt64) {
        if high == 0 && low >> 32 == 0xFFFF { self = .ipv4(UInt32(truncatingIfNeeded: low)) } else { self = .ipv6(high: high, low: low) }
    }

    var ipv6Value: RoCEEncapsulation.IPv6Address {
        switch self {
        case .ipv4(let v): RoCEEncapsulation.IPv6Address(high: 0, low: 0xFFFF_0000_0000 | UInt64(v))
        case .ipv6(let h, let l): RoCEEncapsulation.IPv6Address(high: h, low: l)
        }
    }
}
