/// The 24-byte common MAD header (IBTA 13.4.3) in front of every CM message.
///
/// ```swift
/// let header = ManagementDatagramHeader(attribute: .connectRequest, transactionID: 7)
/// ```
@frozen
public struct ManagementDatagramHeader: Hashable, Sendable {
    public static let byteCount = 24
    /// Base version 1 (the only one CM uses).
    public static let baseVersion: UInt8 = 1
    /// Management class 0x07: Communication Management.
    public static let communicationManagementClass: UInt8 = 0x07
    /// CM class version 2 (IBTA 1.2, what Linux sends and requires).
    public static let communicationManagementClassVersion: UInt8 = 2
    /// Method SEND (0x03): every CM message is an unsolicited send.
    public static let sendMethod: UInt8 = 0x03

    public var baseVersion: UInt8 = Self.baseVersion
    public var managementClass: UInt8 = Self.communicationManagementClass
    public var classVersion: UInt8 = Self.communicationManagementClassVersion
    public var method: UInt8 = Self.sendMethod
    public var status: UInt16 = 0
    public var classSpecific: UInt16 = 0
    public var transactionID: UInt64
    public var attribute: ConnectionManagementAttribute
    public var attributeModifier: UInt32 = 0

    public init(attribute: ConnectionManagementAttribute, transactionID: UInt64) {
        self.attribute = attribute
        self.transactionID = transactionID
    }

    enum Layout {
        static let baseVersion = 0, managementClass = 1, classVersion = 2, method = 3, status = 4
        static let classSpecific = 6, transactionID = 8, attributeID = 16, reserved = 18, attributeModifier = 20
    }

    /// Reads and validates the header of a CM MAD: base version 1, class 0x07 version 2,
    /// method SEND, a CM attribute this codec knows.
    init(validating bytes: UnsafeRawBufferPointer) throws(ConnectionManagementError) {
        guard bytes.count >= Self.byteCount else {
            throw .wrongLength(what: "MAD header", expected: Self.byteCount, actual: bytes.count)
        }
        baseVersion = bytes[Layout.baseVersion]
        guard baseVersion == Self.baseVersion else { throw .unsupported(field: "MAD base version", value: UInt64(baseVersion)) }
        managementClass = bytes[Layout.managementClass]
        guard managementClass == Self.communicationManagementClass else {
            throw .unsupported(field: "MAD management class", value: UInt64(managementClass))
        }
        classVersion = bytes[Layout.classVersion]
        guard classVersion == Self.communicationManagementClassVersion else {
            throw .unsupported(field: "MAD class version", value: UInt64(classVersion))
        }
        method = bytes[Layout.method]
        guard method == Self.sendMethod else { throw .unsupported(field: "MAD method", value: UInt64(method)) }
        status = bytes.loadBigEndian(at: Layout.status)
        classSpecific = bytes.loadBigEndian(at: Layout.classSpecific)
        transactionID = bytes.loadBigEndian(at: Layout.transactionID)
        let rawAttribute: UInt16 = bytes.loadBigEndian(at: Layout.attributeID)
        guard let attribute = ConnectionManagementAttribute(rawValue: rawAttribute) else {
            throw .unsupported(field: "MAD attribute ID", value: UInt64(rawAttribute))
        }
        self.attribute = attribute
        attributeModifier = bytes.loadBigEndian(at: Layout.attributeModifier)
    }

    func write(into bytes: UnsafeMutableRawBufferPointer) {
        bytes[Layout.baseVersion] = baseVersion
        bytes[Layout.managementClass] = managementClass
        bytes[Layout.classVersion] = classVersion
        bytes[Layout.method] = method
        bytes.storeBigEndian(status, at: Layout.status)
        bytes.storeBigEndian(classSpecific, at: Layout.classSpecific)
        bytes.storeBigEndian(transactionID, at: Layout.transactionID)
        bytes.storeBigEndian(attribute.rawValue, at: Layout.attributeID)
        bytes.storeBigEndian(UInt16(0), at: Layout.reserved)
        bytes.storeBigEndian(attributeModifier, at: Layout.attributeModifier)
    }
}

/// The CM attribute IDs (IBTA 12.6, `cm_msgs.h`).
public enum ConnectionManagementAttribute: UInt16, Hashable, Sendable, CaseIterable {
    case connectRequest = 0x10          // REQ
    case messageReceiptAcknowledgement = 0x11  // MRA
    case connectReject = 0x12           // REJ
    case connectReply = 0x13            // REP
    case readyToUse = 0x14              // RTU
    case disconnectRequest = 0x15       // DREQ
    case disconnectReply = 0x16         // DREP
    case serviceIDResolutionRequest = 0x17  // SIDR_REQ
    case serviceIDResolutionReply = 0x18    // SIDR_REP
    case loadAlternatePath = 0x19       // LAP
    case alternatePathResponse = 0x1A   // APR
}
