/// The BTH and the extension headers that an opcode carries: everything between the UDP
/// header and the payload.
///
/// Exactly the extension headers that `bth.opcode.extendedHeaders` names must be non-nil
/// when serializing; parsing fills exactly those.
///
/// ```swift
/// var headers = TransportHeaders(BaseTransportHeader(opcode: .rcRDMAWriteOnlyWithImmediate,
///                                                    destinationQP: 0x11, psn: 7))
/// headers.rdma = RDMAExtendedTransportHeader(virtualAddress: va, remoteKey: rkey, dmaLength: 100)
/// headers.immediateData = ImmediateData(42)
/// ```
@frozen
public struct TransportHeaders: Hashable, Sendable {
    public var bth: BaseTransportHeader
    /// DETH (UD only).
    public var datagram: DatagramExtendedTransportHeader?
    /// RETH (RDMA write first/only, read request).
    public var rdma: RDMAExtendedTransportHeader?
    /// AtomicETH (compare-and-swap, fetch-and-add).
    public var atomic: AtomicExtendedTransportHeader?
    /// AETH (acknowledgements, read response first/last/only, atomic acknowledgement).
    public var acknowledge: AcknowledgeExtendedTransportHeader?
    /// AtomicAckETH (atomic acknowledgement).
    public var atomicAcknowledge: AtomicAcknowledgeExtendedTransportHeader?
    /// ImmDt (the "with immediate" sends and writes).
    public var immediateData: ImmediateData?
    /// IETH (the "with invalidate" sends).
    public var invalidate: InvalidateExtendedTransportHeader?

    @inlinable
    public init(
        _ bth: BaseTransportHeader,
        datagram: DatagramExtendedTransportHeader? = nil,
        rdma: RDMAExtendedTransportHeader? = nil,
        atomic: AtomicExtendedTransportHeader? = nil,
        acknowledge: AcknowledgeExtendedTransportHeader? = nil,
        atomicAcknowledge: AtomicAcknowledgeExtendedTransportHeader? = nil,
        immediateData: ImmediateData? = nil,
        invalidate: InvalidateExtendedTransportHeader? = nil
    ) {
        self.bth = bth
        self.datagram = datagram
        self.rdma = rdma
        self.atomic = atomic
        self.acknowledge = acknowledge
        self.atomicAcknowledge = atomicAcknowledge
        self.immediateData = immediateData
        self.invalidate = invalidate
    }

    /// The extension headers that are set, plus the CNP's reserved bytes for a CNP (which
    /// has no value to set), so that a complete set equals `bth.opcode.extendedHeaders`.
    @inlinable
    public var suppliedHeaders: Opcode.ExtendedHeaders {
        var set: Opcode.ExtendedHeaders = bth.opcode == .congestionNotification ? .congestionNotificationReserved : []
        if datagram != nil { set.insert(.datagram) }
        if rdma != nil { set.insert(.rdma) }
        if atomic != nil { set.insert(.atomic) }
        if acknowledge != nil { set.insert(.acknowledge) }
        if atomicAcknowledge != nil { set.insert(.atomicAcknowledge) }
        if immediateData != nil { set.insert(.immediateData) }
        if invalidate != nil { set.insert(.invalidate) }
        return set
    }

    /// Bytes from the BTH to the end of the last extension header.
    @inlinable
    public var byteCount: Int { bth.opcode.headerLength }
}

extension TransportHeaders {
    /// Reads the headers of `opcode` from the start of `bytes`, which the caller has checked
    /// to hold at least `opcode.headerLength` bytes.
    @inlinable
    init(unchecked bytes: UnsafeRawBufferPointer, opcode: Opcode) {
        let present = opcode.extendedHeaders
        var offset = BaseTransportHeader.byteCount
        self.init(
            BaseTransportHeader(unchecked: bytes, opcode: opcode),
            // Argument order is wire order, so `offset` advances header by header.
            datagram: Self.read(if: present.contains(.datagram), bytes, &offset),
            rdma: Self.read(if: present.contains(.rdma), bytes, &offset),
            atomic: Self.read(if: present.contains(.atomic), bytes, &offset),
            acknowledge: Self.read(if: present.contains(.acknowledge), bytes, &offset),
            atomicAcknowledge: Self.read(if: present.contains(.atomicAcknowledge), bytes, &offset),
            immediateData: Self.read(if: present.contains(.immediateData), bytes, &offset),
            invalidate: Self.read(if: present.contains(.invalidate), bytes, &offset)
        )
    }

    @inlinable @inline(__always)
    static func read<Header: ExtendedTransportHeader>(
        if present: Bool, _ bytes: UnsafeRawBufferPointer, _ offset: inout Int
    ) -> Header? {
        guard present else { return nil }
        defer { offset += Header.byteCount }
        return Header(unchecked: bytes, at: offset)
    }

    /// Throws unless the supplied extension headers are exactly the opcode's.
    @inlinable
    func checkHeaderSet() throws(RoCEWireError) {
        let expected = bth.opcode.extendedHeaders
        let supplied = suppliedHeaders
        guard supplied == expected else { throw .headerMismatch(bth.opcode, expected: expected, supplied: supplied) }
    }

    /// Writes the headers at the start of `bytes`, which the caller has checked to hold
    /// `byteCount` bytes, after `checkHeaderSet()` passed.
    @inlinable
    func write(unchecked bytes: UnsafeMutableRawBufferPointer, padCount: Int) {
        bth.write(unchecked: bytes, padCount: padCount)
        var offset = BaseTransportHeader.byteCount
        Self.write(datagram, bytes, &offset)
        Self.write(rdma, bytes, &offset)
        Self.write(atomic, bytes, &offset)
        Self.write(acknowledge, bytes, &offset)
        Self.write(atomicAcknowledge, bytes, &offset)
        Self.write(immediateData, bytes, &offset)
        Self.write(invalidate, bytes, &offset)
        if bth.opcode == .congestionNotification {
            UnsafeMutableRawBufferPointer(rebasing: bytes[offset ..< offset + CongestionNotificationPacket.reservedByteCount])
                .initializeMemory(as: UInt8.self, repeating: 0)
        }
    }

    @inlinable @inline(__always)
    static func write<Header: ExtendedTransportHeader>(
        _ header: Header?, _ bytes: UnsafeMutableRawBufferPointer, _ offset: inout Int
    ) {
        guard let header else { return }
        header.write(unchecked: bytes, at: offset)
        offset += Header.byteCount
    }
}
