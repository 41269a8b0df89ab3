#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One rdma_cm event, copied out of the library (nothing to acknowledge).
/// The corresponding C type is `struct rdma_cm_event`.
///
/// ```swift
/// while let event = try channel.waitForEvent(timeoutMilliseconds: 5000) {
///     switch event.kind {
///     case .connectRequest: try event.identifier.reject(privateData: Array("busy".utf8))
///     case .rejected: print(event.rejectReason!)        // INVALID_SERVICE_ID (8): no listener on that port
///     default: print(event.kind, event.status)
///     }
/// }
/// ```
public struct ConnectionEvent: Sendable {
    public let kind: ConnectionEventKind
    /// librdmacm's status: 0, a negative errno, or for `.rejected` the IB CM reject reason.
    public let status: Int32
    /// The identifier the event is for; for `.connectRequest` a new identifier, on the
    /// listener's channel, to accept or reject.
    public let identifier: ConnectionIdentifier
    /// For `.connectRequest`: the listening identifier.
    public let listener: ConnectionIdentifier?
    /// The peer's private data (user bytes: rdma_cm's header removed). On InfiniBand and
    /// RoCE the whole field arrives, zero-padded to the message's size.
    public let privateData: [UInt8]
    /// The peer's offer, for connect requests, responses and establishment.
    public let parameters: ConnectionParameters?
    /// The peer's datagram parameters (UDP port space, `.established`).
    public let datagram: DatagramParameters?

    /// Why the peer refused, for `.rejected`.
    public var rejectReason: ConnectionRejectReason? { kind == .rejected ? ConnectionRejectReason(status: status) : nil }

    /// The failure as an error naming `operation`, nil unless `kind.isFailure` (or a
    /// disconnection, when `operation` was waiting for something else).
    public func error(operation: String) -> RDMAError? {
        Self.error(kind: kind, status: status, privateData: privateData, operation: operation)
    }

    static func error(kind: ConnectionEventKind, status: Int32, privateData: [UInt8], operation: String) -> RDMAError? {
        switch kind {
        case .rejected:
            let reason = ConnectionRejectReason(status: status) ?? ConnectionRejectReason(rawValue: 0)
            return RDMAError(operation: operation, kind: .rejected(reason),
                             hint: reason == .consumerDefined && privateData.contains(where: { $0 != 0 })
                                ? "the peer refused; its private data: \(ConnectionEvent.printable(privateData))" : nil)
        case .disconnected:
            return RDMAError(operation: operation, kind: .system(errno: ECONNRESET), hint: "the peer disconnected (\(kind))")
        case _ where kind.isFailure:
            let code = status < 0 ? -status : (kind == .unreachable ? ETIMEDOUT : EIO)
            return RDMAError(operation: operation, kind: .system(errno: code), hint: ConnectionEvent.hint(for: kind, errno: code))
        default:
            return nil
        }
    }

    static func hint(for kind: ConnectionEventKind, errno code: Int32) -> String {
        switch kind {
        case .addressError:
            "\(kind): no RDMA device has a route to that address (or resolution timed out); check `ip route get` and `rdma link`"
        case .routeError:
            "\(kind): the route to the peer could not be resolved"
        case .unreachable:
            "\(kind): the peer did not answer the connection request (no RDMA device at that address, or it is down)"
        case .connectError:
            "\(kind): the queue pair could not be moved to its connected states"
        case .deviceRemoval:
            "\(kind): the RDMA device went away"
        default:
            "\(kind)"
        }
    }

    /// Up to 64 bytes as text when printable, else hex.
    static func printable(_ bytes: [UInt8]) -> String {
        let trimmed = Array(bytes.prefix(64).reversed().drop { $0 == 0 }.reversed())
        if trimmed.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return "\"" + String(decoding: trimmed, as: UTF8.self) + "\"" }
        return trimmed.map { String($0, radix: 16) }.joined(separator: " ")
    }
}
