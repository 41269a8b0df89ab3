import Foundation

/// A parsed JSON document, kept exact: whole numbers stay `UInt64`/`Int64` (a 64-bit
/// counter does not survive a trip through `Double`), and `true` never reads as 1.
enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case unsigned(UInt64)
    case signed(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses `data` (RFC 8259, nesting at most 512 deep), naming `document` in the error.
    static func parse(_ data: Data, document: String) throws(MonitorError) -> JSONValue {
        var parser = JSONParser(bytes: [UInt8](data))
        do {
            return try parser.document()
        } catch {
            throw MonitorError(document, "not valid JSON (\(error.reason) at byte \(error.offset))")
        }
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "true/false"
        case .unsigned, .signed, .double: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "an object"
        }
    }
}

/// A byte-level JSON reader: Foundation's decoders either lose 64-bit integers (JSONSerialization
/// goes through NSNumber) or, asked for an untyped tree, cost seconds on a 20 MB fabric snapshot.
struct JSONParser {
    struct Failure: Error {
        var reason: String
        var offset: Int
    }

    static let maximumDepth = 512
    let bytes: [UInt8]
    var position = 0
    var depth = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func document() throws(Failure) -> JSONValue {
        let value = try self.value()
        skipWhitespace()
        guard position == bytes.count else { throw Failure(reason: "unexpected text after the document", offset: position) }
        return value
    }

    mutating func skipWhitespace() {
        while position < bytes.count, bytes[position] == 0x20 || bytes[position] == 0x0A || bytes[position] == 0x0D || bytes[position] == 0x09 {
            position += 1
        }
    }

    mutating func value() throws(Failure) -> JSONValue {
        skipWhitespace()
        guard position < bytes.count else { throw Failure(reason: "unexpected end", offset: position) }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw Failure(reason: "unexpected character", offset: position)
        }
    }

    mutating func literal(_ word: StaticString) throws(Failure) {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw Failure(reason: "unexpected end", offset: position) }
        for index in 0..<count where bytes[position + index] != word.utf8Start[index] {
            throw Failure(reason: "unexpected character", offset: position + index)
        }
        position += count
    }

    mutating func enter() throws(Failure) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw Failure(reason: "nested more than \(Self.maximumDepth) deep", offset: position) }
    }

    mutating func object() throws(Failure) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        position += 1
        var fields: [String: JSONValue] = [:]
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .object(fields) }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw Failure(reason: "expected a field name", offset: position) }
            let key = try string()
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw Failure(reason: "expected ':'", offset: position) }
            position += 1
            fields[key] = try value()
            skipWhitespace()
            guard position < bytes.count else { throw Failure(reason: "unexpected end", offset: position) }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            if bytes[position] == UInt8(ascii: "}") { position += 1; return .object(fields) }
            throw Failure(reason: "expected ',' or '}'", offset: position)
        }
    }

    mutating func array() throws(Failure) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        position += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
        while true {
            items.append(try value())
            skipWhitespace()
            guard position < bytes.count else { throw Failure(reason: "unexpected end", offset: position) }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            if bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
            throw Failure(reason: "expected ',' or ']'", offset: position)
        }
    }

    mutating func string() throws(Failure) -> String {
        position += 1
        let start = position
        // Fast path: no escapes.
        while position < bytes.count, bytes[position] != UInt8(ascii: "\""), bytes[position] != UInt8(ascii: "\\"), bytes[position] >= 0x20 {
            position += 1
        }
        guard position < bytes.count else { throw Failure(reason: "unterminated string", offset: start) }
        if bytes[position] == UInt8(ascii: "\"") {
            defer { position += 1 }
            return try utf8(bytes[start..<position], at: start)
        }
        var scalars = Array(bytes[start..<position])
        while true {
            guard position < bytes.count else { throw Failure(reason: "unterminated string", offset: start) }
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") { position += 1; return try utf8(scalars[...], at: start) }
            guard byte >= 0x20 else { throw Failure(reason: "control character in a string", offset: position) }
            if byte != UInt8(ascii: "\\") { scalars.append(byte); position += 1; continue }
            guard position + 1 < bytes.count else { throw Failure(reason: "unterminated string", offset: start) }
            let escape = bytes[position + 1]
            position += 2
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escape)
            case UInt8(ascii: "b"): scalars.append(0x08)
            case UInt8(ascii: "f"): scalars.append(0x0C)
            case UInt8(ascii: "n"): scalars.append(0x0A)
            case UInt8(ascii: "r"): scalars.append(0x0D)
            case UInt8(ascii: "t"): scalars.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code) {
                    guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                        throw Failure(reason: "unpaired surrogate", offset: position)
                    }
                    position += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw Failure(reason: "unpaired surrogate", offset: position) }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw Failure(reason: "invalid \\u escape", offset: position) }
                scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
            default:
                throw Failure(reason: "invalid escape", offset: position - 1)
            }
        }
    }

    mutating func hex4() throws(Failure) -> UInt32 {
        guard position + 4 <= bytes.count else { throw Failure(reason: "unexpected end", offset: position) }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw Failure(reason: "invalid \\u escape", offset: position)
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    func utf8(_ slice: ArraySlice<UInt8>, at offset: Int) throws(Failure) -> String {
        guard let text = String(validating: slice, as: UTF8.self) else { throw Failure(reason: "invalid UTF-8", offset: offset) }
        return text
    }

    mutating func number() throws(Failure) -> JSONValue {
        let start = position
        let negative = bytes[position] == UInt8(ascii: "-")
        if negative { position += 1 }
        func digits(_ parser: inout JSONParser) -> Int {
            let first = parser.position
            while parser.position < parser.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(parser.bytes[parser.position]) { parser.position += 1 }
            return parser.position - first
        }
        let integerStart = position
        let integerDigits = digits(&self)
        guard integerDigits > 0 else { throw Failure(reason: "invalid number", offset: start) }
        guard integerDigits == 1 || bytes[integerStart] != UInt8(ascii: "0") else { throw Failure(reason: "leading zero in a number", offset: start) }
        var isInteger = true
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard digits(&self) > 0 else { throw Failure(reason: "invalid number", offset: start) }
            isInteger = false
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard digits(&self) > 0 else { throw Failure(reason: "invalid number", offset: start) }
            isInteger = false
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        if isInteger {
            if !negative, let value = UInt64(text) { return .unsigned(value) }
            if negative, let value = Int64(text) { return .signed(value) }
        }
        guard let value = Double(text), value.isFinite else { throw Failure(reason: "number out of range", offset: start) }
        return .double(value)
    }
}

/// Reads one JSON object field by field, refusing unknown keys and naming the path of every
/// field at fault (`samples[2].ports[0].kind: expected one of …`).
struct JSONObjectReader {
    let fields: [String: JSONValue]
    let path: String
    let document: String

    init(_ value: JSONValue, path: String, document: String, allowedKeys: Set<String>) throws(MonitorError) {
        guard case .object(let fields) = value else {
            throw MonitorError("\(document) \(path.isEmpty ? "(top level)" : path)", "expected an object, found \(value.typeName)")
        }
        self.fields = fields
        self.path = path
        self.document = document
        for key in fields.keys.sorted() where !allowedKeys.contains(key) {
            throw error(key, "unknown field (known here: \(allowedKeys.sorted().joined(separator: ", ")))")
        }
    }

    func fieldPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ key: String, _ problem: String) -> MonitorError {
        MonitorError("\(document) \(fieldPath(key))", problem)
    }

    func has(_ key: String) -> Bool {
        if let value = fields[key], case .null = value { return false }
        return fields[key] != nil
    }

    func required(_ key: String) throws(MonitorError) -> JSONValue {
        guard let value = fields[key] else { throw error(key, "missing required field") }
        return value
    }

    func string(_ key: String, maximumLength: Int = 256) throws(MonitorError) -> String {
        guard case .string(let text) = try required(key) else { throw error(key, "expected a string") }
        guard !text.isEmpty, text.utf8.count <= maximumLength else {
            throw error(key, "must be 1 to \(maximumLength) bytes long")
        }
        return text
    }

    func optionalString(_ key: String, maximumLength: Int = 256) throws(MonitorError) -> String? {
        has(key) ? try string(key, maximumLength: maximumLength) : nil
    }

    func integer(_ key: String, in range: ClosedRange<Int64>) throws(MonitorError) -> Int64 {
        try Self.integer(try required(key), in: range) { problem in error(key, problem) }
    }

    func optionalInteger(_ key: String, in range: ClosedRange<Int64>) throws(MonitorError) -> Int64? {
        has(key) ? try integer(key, in: range) : nil
    }

    static func integer(_ value: JSONValue, in range: ClosedRange<Int64>, error: (String) -> MonitorError) throws(MonitorError) -> Int64 {
        let number: Int64
        switch value {
        case .unsigned(let unsigned) where unsigned <= UInt64(Int64.max): number = Int64(unsigned)
        case .signed(let signed): number = signed
        default: throw error("expected a whole number in \(range.lowerBound)…\(range.upperBound)")
        }
        guard range.contains(number) else { throw error("\(number) is outside \(range.lowerBound)…\(range.upperBound)") }
        return number
    }

    func array(_ key: String, maximumCount: Int) throws(MonitorError) -> [JSONValue] {
        guard case .array(let items) = try required(key) else { throw error(key, "expected a list") }
        guard items.count <= maximumCount else { throw error(key, "\(items.count) entries (limit \(maximumCount))") }
        return items
    }

    func optionalArray(_ key: String, maximumCount: Int) throws(MonitorError) -> [JSONValue] {
        has(key) ? try array(key, maximumCount: maximumCount) : []
    }

    func stringList(_ key: String, maximumCount: Int) throws(MonitorError) -> [String] {
        var result: [String] = []
        for (index, item) in try optionalArray(key, maximumCount: maximumCount).enumerated() {
            guard case .string(let text) = item, !text.isEmpty, text.utf8.count <= 256 else {
                throw error("\(key)[\(index)]", "expected a name (a string of 1 to 256 bytes)")
            }
            result.append(text)
        }
        return result
    }

    /// An object whose keys are names and whose values pass `convert`.
    func map<Value>(_ key: String, maximumCount: Int, _ convert: (JSONValue, (String) -> MonitorError) throws(MonitorError) -> Value) throws(MonitorError) -> [String: Value] {
        guard has(key) else { return [:] }
        guard case .object(let entries) = try required(key) else { throw error(key, "expected an object") }
        guard entries.count <= maximumCount else { throw error(key, "\(entries.count) entries (limit \(maximumCount))") }
        var result: [String: Value] = [:]
        for (name, value) in entries {
            guard name.utf8.count <= 256, !name.isEmpty else { throw error(key, "a name must be 1 to 256 bytes long") }
            result[name] = try convert(value) { problem in error("\(key).\(name)", problem) }
        }
        return result
    }
}
