// The fixed-size extension headers that follow the BTH. Each is a plain value; they are
// read and written only as part of a packet (``TransportHeaders``), which checks lengths
// once for all of them.

/// What the packet code needs from every extension header: its size and unchecked
/// big-endian access at an offset the caller has bounds-checked.
@usableFromInline
protocol ExtendedTransportHeader {
    static var byteCount: Int { get }
    init(unchecked bytes: UnsafeRawBufferPointer, at offset: Int)
    func write(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int)
}

/// RETH (16 bytes): the remote buffer of an RDMA write or read.
///
/// ```swift
/// let reth = RDMAExtendedTransportHeader(virtualAddress: 0x7f00_0000_1000, remoteKey: 0x1234, dmaLength: 65536)
/// ```
@frozen
public struct RDMAExtendedTransportHeader: Hashable, Sendable, ExtendedTransportHeader {
    public static let byteCount = 16
    public var virtualAddress: UInt64
    /// R_Key.
    public var remoteKey: UInt32
    /// Length of the whole RDMA operation, not of this packet.
    public var dmaLength: UInt32

    @inlinable
    public init(virtualAddress: UInt64, remoteKey: UInt32, dmaLength: UInt32) {
        self.virtualAddress = virtualAddress
        self.remoteKey = remoteKey
        self.dmaLength = dmaLength
    }

    @inlinable
    init(unchecked bytes: UnsafeRawBufferPointer, at offset: Int) {
        self.init(
            virtualAddress: bytes.loadBigEndian(at: offset),
            remoteKey: bytes.loadBigEndian(at: offset + 8),
            dmaLength: bytes.loadBigEndian(at: offset + 12)
        )
    }

    @inlinable
    func write(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBigEndian(virtualAddress, at: offset)
        bytes.storeBigEndian(remoteKey, at: offset + 8)
        bytes.storeBigEndian(dmaLength, at: offset + 12)
    }
}

/// AtomicETH (28 bytes): the target and operands of a compare-and-swap or fetch-and-add.
///
/// ```swift
/// let cas = AtomicExtendedTransportHeader(virtualAddress: va, remoteKey: rkey, swapOrAdd: new, compare: old)
/// ```
@frozen
public struct AtomicExtendedTransportHeader: Hashable, Sendable, ExtendedTransportHeader {
    public static let byteCount = 28
    public var virtualAddress: UInt64
    /// R_Key.
    public var remoteKey: UInt32
    /// The value to swap in (compare-and-swap) or to add (fetch-and-add).
    public var swapOrAdd: UInt64
    /// The value to compare with (compare-and-swap; ignored by fetch-and-add).
    public var compare: UInt64

    @inlinable
    public init(virtualAddress: UInt64, remoteKey: UInt32, swapOrAdd: UInt64, compare: UInt64 = 0) {
        self.virtualAddress = virtualAddress
        self.remoteKey = remoteKey
        self.swapOrAdd = swapOrAdd
        self.compare = compare
    }

    @inlinable
    init(unchecked bytes: UnsafeRawBufferPointer, at offset: Int) {
        self.init(
            virtualAddress: bytes.loadBigEndian(at: offset),
            remoteKey: bytes.loadBigEndian(at: offset + 8),
            swapOrAdd: bytes.loadBigEndian(at: offset + 12),
            compare: bytes.loadBigEndian(at: offset + 20)
        )
    }

    @inlinable
    func write(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBigEndian(virtualAddress, at: offset)
        bytes.storeBigEndian(remoteKey, at: offset + 8)
        bytes.storeBigEndian(swapOrAdd, at: offset + 12)
        bytes.storeBigEndian(compare, at: offset + 20)
    }
}

/// AtomicAckETH (8 bytes): the value the remote location held before the atomic operation.
///
/// ```swift
/// let ack = AtomicAcknowledgeExtendedTransportHeader(originalRemoteData: 42)
/// ```
@frozen
public struct AtomicAcknowledgeExtendedTransportHeader: Hashable, Sendable, ExtendedTransportHeader {
    public static let byteCount = 8
    public var originalRemoteData: UInt64

    @inlinable
    public init(originalRemoteData: UInt64) { self.originalRemoteData = originalRemoteData }

    @inlinable
    init(unchecked bytes: UnsafeRawBufferPointer, at offset: Int) {
        originalRemoteData = bytes.loadBigEndian(at: offset)
    }

    @inlinable
    func write(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBigEndian(originalRemoteData, at: offset)
    }
}

/// ImmDt (4 bytes): immediate data delivered with the receive completion.
///
/// `value` is the four bytes read big-endian; verbs hands the same bytes to the application
/// as `imm_data` (a `__be32`).
///
/// ```swift
/// let imm = ImmediateData(0xCAFE_F00D)
/// ```
@frozen
public struct ImmediateData: Hashable, Sendable, ExtendedTransportHeader {
    public static let byteCount = 4
    public var value: UInt32

    @inlinable
    public init(_ value: UInt32) { self.value = value }

    @inlinable
    init(unchecked bytes: UnsafeRawBufferPointer, at offset: Int) {
        value = bytes.loadBigEndian(at: offset)
    }

    @inlinable
    func write(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBigEndian(value, at: offset)
    }
}

/// IETH (4 bytes): the R_Key that a send-with-invalidate invalidates at the receiver.
///
/// ```swift
/// let ieth = InvalidateExtendedTransportHeader(remoteKey: rkey)
/// ```
@frozen
public struct InvalidateExtendedTransportHeader: Hashable, Sendable, ExtendedTransportHeader {
    public static let byteCount = 4
    public var remoteKey: UInt32

    @inlinable
    public init(remoteKey: UInt32) { self.remoteKey = remoteKey }

    @inlinable
    init(unchecked bytes: UnsafeRawBufferPointer, at offset: Int) {
        remoteKey = bytes.loadBigEndian(at: offset)
    }

    @inlinable
    func write(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBigEndian(remoteKey, at: offset)
    }
}

/// DETH (8 bytes): the Q_Key and source QP of a UD datagram.
///
/// ```swift
/// let deth = DatagramExtendedTransportHeader(queueKey: 0x1111_1111, sourceQP: 0x12)
/// ```
@frozen
public struct DatagramExtendedTransportHeader: Hashable, Sendable, ExtendedTransportHeader {
    public static let byteCount = 8
    /// Q_Key. Values with the high bit set are privileged (IBTA §10.2.4).
    public var queueKey: UInt32
    public var sourceQP: QueuePairNumber

    @inlinable
    public init(queueKey: UInt32, sourceQP: QueuePairNumber) {
        self.queueKey = queueKey
        self.sourceQP = sourceQP
    }

    @inlinable
    init(unchecked bytes: UnsafeRawBufferPointer, at offset: Int) {
        queueKey = bytes.loadBigEndian(at: offset)
        // Byte 4 is reserved; the source QP is the low 24 bits of the second word.
        sourceQP = QueuePairNumber(unchecked: bytes.loadUInt24(at: offset + 5))
    }

    @inlinable
    func write(unchecked bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBigEndian(queueKey, at: offset)
        bytes[offset + 4] = 0
        bytes.storeUInt24(sourceQP.rawValue, at: offset + 5)
    }
}

/// IBTA's abbreviations.
public typealias RETH = RDMAExtendedTransportHeader
public typealias AtomicETH = AtomicExtendedTransportHeader
public typealias AtomicAckETH = AtomicAcknowledgeExtendedTransportHeader
public typealias ImmDt = ImmediateData
public typealias IETH = InvalidateExtendedTransportHeader
public typealias DETH = DatagramExtendedTransportHeader
