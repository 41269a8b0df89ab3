/// One CM MAD: the 24-byte MAD header and one CM message, 256 bytes on the wire (the payload
/// of a UD SEND_ONLY to QP 1 with the GSI Q_Key).
///
/// Parsing refuses anything but a 256-byte MAD of base version 1, class 0x07 version 2,
/// method SEND, with an attribute it knows and valid fields (path MTU code, transport type,
/// lengths); it never traps on hostile input.
///
/// ```swift
/// var request = ConnectRequest()
/// request.serviceID = RDMAServiceID(port: 7174).rawValue
/// let mad = try ConnectionManagementDatagram(transactionID: 1, message: .request(request)).serialized()
/// let back = try ConnectionManagementDatagram(parsing: mad)
/// ```
public struct ConnectionManagementDatagram: Hashable, Sendable {
    /// A MAD is always 256 bytes.
    public static let byteCount = 256
    /// The Q_Key of the general services interface (QP 1), carried in the DETH.
    public static let generalServicesQueueKey: UInt32 = 0x8001_0000

    public var header: ManagementDatagramHeader
    public var message: ConnectionManagementMessage

    public enum ConnectionManagementMessage: Hashable, Sendable {
        case request(ConnectRequest)
        case reply(ConnectReply)
        case readyToUse(ConnectionManagementNotice)
        case reject(ConnectReject)
        case messageReceiptAcknowledgement(MessageReceiptAcknowledgement)
        case disconnectRequest(ConnectionManagementNotice)
        case disconnectReply(ConnectionManagementNotice)

        public var attribute: ConnectionManagementAttribute {
            switch self {
            case .request: .connectRequest
            case .reply: .connectReply
            case .readyToUse: .readyToUse
            case .reject: .connectReject
            case .messageReceiptAcknowledgement: .messageReceiptAcknowledgement
            case .disconnectRequest: .disconnectRequest
            case .disconnectReply: .disconnectReply
            }
        }
    }

    public init(transactionID: UInt64, message: ConnectionManagementMessage) {
        header = ManagementDatagramHeader(attribute: message.attribute, transactionID: transactionID)
        self.message = message
    }

    /// Parses and validates one MAD.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ConnectionManagementError) {
        guard bytes.count == Self.byteCount else { throw .wrongLength(what: "CM MAD", expected: Self.byteCount, actual: bytes.count) }
        header = try ManagementDatagramHeader(validating: bytes)
        let attribute = UnsafeRawBufferPointer(rebasing: bytes[ManagementDatagramHeader.byteCount...])
        switch header.attribute {
        case .connectRequest: message = .request(try ConnectRequest(validating: attribute))
        case .connectReply: message = .reply(ConnectReply(validating: attribute))
        case .readyToUse: message = .readyToUse(ConnectionManagementNotice(validating: attribute, carriesQueuePair: false))
        case .connectReject: message = .reject(try ConnectReject(validating: attribute))
        case .messageReceiptAcknowledgement: message = .messageReceiptAcknowledgement(try MessageReceiptAcknowledgement(validating: attribute))
        case .disconnectRequest: message = .disconnectRequest(ConnectionManagementNotice(validating: attribute, carriesQueuePair: true))
        case .disconnectReply: message = .disconnectReply(ConnectionManagementNotice(validating: attribute, carriesQueuePair: false))
        case .serviceIDResolutionRequest, .serviceIDResolutionReply, .loadAlternatePath, .alternatePathResponse:
            throw .unsupported(field: "MAD attribute ID (SIDR, LAP and APR are not implemented)", value: UInt64(header.attribute.rawValue))
        }
    }

    public init(parsing bytes: [UInt8]) throws(ConnectionManagementError) {
        var result: Result<ConnectionManagementDatagram, ConnectionManagementError> = .failure(.wrongLength(what: "CM MAD", expected: 256, actual: 0))
        bytes.withUnsafeBytes { raw in
            do throws(ConnectionManagementError) { result = .success(try ConnectionManagementDatagram(parsing: raw)) } catch { result = .failure(error) }
        }
        self = try result.get()
    }

    /// Writes the 256-byte MAD into `buffer` (zeroing reserved bytes).
    public func serialize(into buffer: UnsafeMutableRawBufferPointer) throws(ConnectionManagementError) {
        guard buffer.count >= Self.byteCount else { throw .tooLong(field: "CM MAD output buffer", limit: buffer.count, actual: Self.byteCount) }
        let mad = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Self.byteCount])
        mad.initializeMemory(as: UInt8.self, repeating: 0)
        var header = header
        header.attribute = message.attribute
        header.write(into: mad)
        let attribute = UnsafeMutableRawBufferPointer(rebasing: mad[ManagementDatagramHeader.byteCount...])
        switch message {
        case .request(let request): try request.write(into: attribute)
        case .reply(let reply): try reply.write(into: attribute)
        case .readyToUse(let notice): try notice.write(into: attribute, carriesQueuePair: false, name: "RTU")
        case .reject(let reject): try reject.write(into: attribute)
        case .messageReceiptAcknowledgement(let mra): try mra.write(into: attribute)
        case .disconnectRequest(let notice): try notice.write(into: attribute, carriesQueuePair: true, name: "DREQ")
        case .disconnectReply(let notice): try notice.write(into: attribute, carriesQueuePair: false, name: "DREP")
        }
    }

    /// The 256-byte MAD.
    public func serialized() throws(ConnectionManagementError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.byteCount)
        var failure: ConnectionManagementError?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(ConnectionManagementError) { try serialize(into: buffer) } catch { failure = error }
        }
        if let failure { throw failure }
        return bytes
    }
}
