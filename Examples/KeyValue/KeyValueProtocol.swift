/// The example's request and response bytes. A request: operation (1 byte: 1 get, 2 put),
/// key length (2 bytes, little-endian), key, value (put only, the rest). A response:
/// status (1 byte: 0 ok, 1 not found, 2 bad request), then the value (get).
enum KeyValueOperation: UInt8 {
    case get = 1, put = 2
}

enum KeyValueStatus: UInt8 {
    case ok = 0, notFound = 1, badRequest = 2
}

struct KeyValueRequest {
    static let maxKeyLength = 1024

    var operation: KeyValueOperation
    var key: [UInt8]
    var value: [UInt8]

    var encoded: [UInt8] {
        var bytes: [UInt8] = [operation.rawValue, UInt8(key.count & 0xFF), UInt8(key.count >> 8)]
        bytes.reserveCapacity(3 + key.count + value.count)
        bytes += key
        bytes += value
        return bytes
    }

    /// Parses a request from the network: every field checked, nil when malformed.
    init?(decoding bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 3, let operation = KeyValueOperation(rawValue: bytes[0]) else { return nil }
        let keyLength = Int(bytes[1]) | Int(bytes[2]) << 8
        guard keyLength >= 1, keyLength <= Self.maxKeyLength, bytes.count >= 3 + keyLength else { return nil }
        if operation == .get && bytes.count != 3 + keyLength { return nil }
        self.operation = operation
        key = Array(bytes[3..<(3 + keyLength)])
        value = Array(bytes[(3 + keyLength)...])
    }

    init(operation: KeyValueOperation, key: String, value: [UInt8] = []) {
        self.operation = operation
        self.key = Array(key.utf8)
        self.value = value
    }
}
