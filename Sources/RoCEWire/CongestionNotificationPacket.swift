/// A RoCEv2 congestion notification packet (CNP, IBTA Annex A17.9): BTH with opcode 0x81
/// and BECN set, 16 reserved bytes, ICRC. A notification point sends one back to the
/// sender of ECN-marked traffic; the destination QP names the flow to slow down.
///
/// ```swift
/// let cnp = CongestionNotificationPacket(destinationQP: senderQP)
/// let n = try RoCEPacket.serialize(headers: cnp.headers, payload: UnsafeRawBufferPointer(start: nil, count: 0), into: buffer)
///
/// // Receiving:
/// if let cnp = CongestionNotificationPacket(packet.headers) { rateLimiter.onCNP(qp: cnp.destinationQP) }
/// ```
@frozen
public struct CongestionNotificationPacket: Hashable, Sendable {
    public static let reservedByteCount = 16
    /// BTH + reserved bytes + ICRC.
    public static let byteCount = BaseTransportHeader.byteCount + reservedByteCount + RoCEPacket.icrcByteCount

    public var destinationQP: QueuePairNumber
    public var partitionKey: UInt16

    @inlinable
    public init(destinationQP: QueuePairNumber, partitionKey: UInt16 = BaseTransportHeader.defaultPartitionKey) {
        self.destinationQP = destinationQP
        self.partitionKey = partitionKey
    }

    /// Recognises a CNP among parsed headers; `nil` for any other opcode.
    @inlinable
    public init?(_ headers: TransportHeaders) {
        guard headers.bth.opcode == .congestionNotification else { return nil }
        self.init(destinationQP: headers.bth.destinationQP, partitionKey: headers.bth.partitionKey)
    }

    /// The headers to serialize: opcode 0x81, BECN set, PSN 0, other flags clear.
    @inlinable
    public var headers: TransportHeaders {
        TransportHeaders(BaseTransportHeader(
            opcode: .congestionNotification, partitionKey: partitionKey, backwardCongestion: true,
            destinationQP: destinationQP, psn: 0
        ))
    }
}

/// The usual abbreviation.
public typealias CNP = CongestionNotificationPacket
