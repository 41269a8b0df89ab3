/// Why a CM MAD (or rdma_cm's private-data header) was refused. Every case names the field
/// that failed, so a dropped MAD can be explained from a counter and a log line.
///
/// ```swift
/// do { _ = try ConnectionManagementDatagram(parsing: mad) }
/// catch .unsupported(let field, let value) { print("dropped: \(field) = \(value)") }
/// ```
public enum ConnectionManagementError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A MAD is 256 bytes on the wire; a private-data header 36.
    case wrongLength(what: String, expected: Int, actual: Int)
    /// A field holds a value this implementation does not accept (named, with the value).
    case unsupported(field: String, value: UInt64)
    /// The output buffer or the private data given to a serializer is too large or too small.
    case tooLong(field: String, limit: Int, actual: Int)

    public var description: String {
        switch self {
        case let .wrongLength(what, expected, actual):
            "\(what) of \(actual) bytes, expected \(expected) — truncated or not a CM MAD"
        case let .unsupported(field, value):
            "CM field \(field) = 0x\(String(value, radix: 16)) is not accepted — a different management class, a newer protocol version or a malformed MAD"
        case let .tooLong(field, limit, actual):
            "\(field) of \(actual) bytes exceeds its \(limit) bytes"
        }
    }
}
