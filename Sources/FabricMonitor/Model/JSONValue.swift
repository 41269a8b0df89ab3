import Foundation

/// A parsed JSON document, kept exact: whole numbers stay `UInt64`/`Int64` (a 64-bit
/// counter does not survive a trip through `Double`), and `true` never reads as 1.
enum JSONValue: Decodable, Sendable {
    case null
    case bool(Bool)
    case unsigned(UInt64)
    case signed(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(UInt64.self) { self = .unsigned(value) }
        else if let value = try? container.decode(Int64.self) { self = .signed(value) }
        else if let value = try? container.decode(Double.self) { self = .double(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    /// Parses `data`, naming `document` in the error.
    static func parse(_ data: Data, document: String) throws(MonitorError) -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw MonitorError(document, "not valid JSON (\(error))")
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
