/// Which keys the objects of a JSON document may have; finds the first key that is not one.
///
/// JSONDecoder ignores keys it does not know, which turns a typo in a scenario file into a
/// setting that silently keeps its default.
indirect enum JSONKeySchema: Sendable {
    case any
    case object(Set<String>, nested: [String: JSONKeySchema])
    case array(JSONKeySchema)

    static func object(_ keys: [String], nested: [String: JSONKeySchema] = [:]) -> JSONKeySchema {
        .object(Set(keys), nested: nested)
    }

    /// The first unknown key in document order of the arrays and sorted order of the keys,
    /// as a `ScenarioError`; nil when every key is known. `json` is a `JSONSerialization` tree.
    func firstUnknownKey(in json: Any, path: String = "") -> ScenarioError? {
        switch self {
        case .any:
            return nil
        case .array(let element):
            guard let items = json as? [Any] else { return nil }
            for (index, item) in items.enumerated() {
                if let error = element.firstUnknownKey(in: item, path: "\(path)[\(index)]") { return error }
            }
            return nil
        case .object(let keys, let nested):
            guard let object = json as? [String: Any] else { return nil }
            for key in object.keys.sorted() {
                let keyPath = path.isEmpty ? key : "\(path).\(key)"
                guard keys.contains(key) else {
                    return ScenarioError(
                        field: keyPath,
                        problem: "unknown field (known here: \(keys.sorted().joined(separator: ", ")))"
                    )
                }
                if let schema = nested[key], let value = object[key],
                   let error = schema.firstUnknownKey(in: value, path: keyPath) {
                    return error
                }
            }
            return nil
        }
    }
}
