/// A received message: a borrowed view of the registered buffer it arrived in, no copy.
///
/// It cannot be copied, so exactly one owner releases it — explicitly with `release()`, or
/// when it goes out of scope. Releasing re-posts the buffer (a credit back to the peer) or
/// frees the rendezvous slot. The bytes stay valid while you hold it, even if the endpoint
/// closes meanwhile: the memory lives as long as the view.
///
/// ```swift
/// let request = try await endpoint.receive()
/// let key = request.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
/// try await endpoint.respond(to: request.callID, with: lookup(key))
/// request.release()          // or just let it go out of scope
/// ```
public struct ReceivedMessage: ~Copyable, @unchecked Sendable {
    public enum Kind: Sendable { case message, request, response }

    let endpoint: MessageEndpoint
    let location: PayloadLocation
    /// What the peer sent: a one-way message, a request (answer it with `callID`) or a
    /// response to one of our calls.
    public let kind: Kind
    /// The call a request opens or a response answers; 0 for one-way messages.
    public let callID: UInt64
    /// The payload's byte count.
    public let count: Int
    private let base: UnsafeRawPointer

    init(endpoint: MessageEndpoint, entry: InboundEntry) {
        self.endpoint = endpoint
        location = entry.location
        kind = switch entry.kind {
        case .message: .message
        case .request: .request
        case .response: .response
        }
        callID = entry.callID
        count = entry.length
        base = endpoint.payloadAddress(entry.location)
    }

    /// Calls `body` with the payload, in place. Don't let the pointer escape.
    public func withUnsafeBytes<Result, Failure: Error>(_ body: (UnsafeRawBufferPointer) throws(Failure) -> Result) throws(Failure) -> Result {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// A copy of the payload.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Returns the buffer to the pool now.
    public consuming func release() {}

    deinit {
        endpoint.release(location)
    }
}

extension MessageEndpoint {
    func payloadAddress(_ location: PayloadLocation) -> UnsafeRawPointer {
        if location.isRendezvous {
            return UnsafeRawPointer(memory.rendezvousIn!.base + Int(location.index) * configuration.rendezvousSlotSize)
        }
        return UnsafeRawPointer(memory.receive.base + Int(location.index) * memory.slotStride + MessageHeader.size)
    }

    func release(_ location: PayloadLocation) {
        lock.locked { releaseLocked(location) }
    }
}
