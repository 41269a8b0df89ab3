// Key checks and the one copy routine every role uses to move bytes between a packet and
// registered memory. A key grants exactly its region's range with its region's access, in
// the QP's protection domain; nothing is touched outside it.

/// Where bytes go in a scatter-gather list: a copy into the list, or out of it.
enum CopyDirection { case intoList, outOfList }

extension SoftDevice {
    /// The local buffer `element` names, if its key grants the range (and write access when
    /// the engine writes into it).
    @inline(__always)
    func localBuffer(_ qp: SoftQueuePair, _ element: SoftScatterGather, write: Bool) -> UnsafeMutableRawPointer? {
        guard let region = region(keyed: element.lkey), region.valid, region.domain == qp.domain,
              region.contains(element.address, Int(element.length)),
              !write || region.access.contains(.localWrite) else { return nil }
        return UnsafeMutableRawPointer(bitPattern: UInt(element.address))
    }

    /// The remote target of a RETH or AtomicETH, if `key` grants `length` bytes at `address`
    /// with `access` to this QP (the QP must allow the access too).
    func remoteTarget(_ qp: SoftQueuePair, key: UInt32, address: UInt64, length: Int, access: SoftAccess) -> UnsafeMutableRawPointer? {
        guard qp.access.contains(access), let region = region(keyed: key), region.valid, region.domain == qp.domain,
              region.access.contains(access), region.contains(address, length) else { return nil }
        return UnsafeMutableRawPointer(bitPattern: UInt(address))
    }

    /// `regions[key]`, answered without hashing when the lookup before was for the same key
    /// (a buffer is used again and again: hashing was a fifth of a small send's gather).
    @inline(__always)
    func region(keyed key: UInt32) -> SoftMemoryRegion? {
        lastRegionLookup.value(key, in: regions)
    }

    /// Copies `count` bytes between `buffer` and the list's bytes starting `offset` bytes in.
    /// False when the list is too short or a key does not grant its element.
    func copy(_ direction: CopyDirection, _ qp: SoftQueuePair, list: UnsafePointer<SoftScatterGather>, elementCount: Int,
              offset: Int, buffer: UnsafeMutableRawPointer, count: Int) -> Bool {
        if count == 0 { return true }
        var skip = offset, copied = 0
        for index in 0..<elementCount where copied < count {
            let element = list[index]
            let length = Int(element.length)
            if skip >= length { skip -= length; continue }
            guard let base = localBuffer(qp, element, write: direction == .intoList) else { return false }
            let chunk = min(length - skip, count - copied)
            switch direction {
            case .intoList: (base + skip).copyMemory(from: buffer + copied, byteCount: chunk)
            case .outOfList: (buffer + copied).copyMemory(from: base + skip, byteCount: chunk)
            }
            copied += chunk
            skip = 0
        }
        return copied == count
    }

    /// Copies `count` bytes of send request `index`, from `offset`, to `destination`.
    func gather(_ qp: SoftQueuePair, _ index: Int, offset: Int, count: Int, into destination: UnsafeMutableRawPointer) -> Bool {
        let queue = qp.sendQueue
        let entry = queue.entry(index)
        if entry.pointee.request.inline {
            guard offset + count <= entry.pointee.length else { return false }
            destination.copyMemory(from: queue.inlineData(of: index) + offset, byteCount: count)
            return true
        }
        return copy(.outOfList, qp, list: queue.elements(of: index), elementCount: entry.pointee.elementCount,
                    offset: offset, buffer: destination, count: count)
    }

    /// Places response bytes (READ data, an atomic's original value) into request `index`'s buffers.
    func scatterResponse(_ qp: SoftQueuePair, _ index: Int, offset: Int, from source: UnsafeRawBufferPointer) -> Bool {
        guard let base = source.baseAddress else { return true }
        let queue = qp.sendQueue
        return copy(.intoList, qp, list: queue.elements(of: index), elementCount: queue.entry(index).pointee.elementCount,
                    offset: offset, buffer: UnsafeMutableRawPointer(mutating: base), count: source.count)
    }

    /// Places incoming SEND bytes into the receive being filled, at its current offset.
    func scatterReceive(_ qp: SoftQueuePair, _ active: ActiveReceive, offset: Int, from source: UnsafeRawBufferPointer) -> Bool {
        guard let base = source.baseAddress else { return true }
        return copy(.intoList, qp, list: qp.activeReceiveElements, elementCount: active.elementCount,
                    offset: offset, buffer: UnsafeMutableRawPointer(mutating: base), count: source.count)
    }
}
