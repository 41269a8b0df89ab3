import Congestion
import Foundation

/// Reads a scenario file (JSON, format in scenarios/README.md) into a ``FabricScenario``.
///
/// Every problem is reported as a ``ScenarioError`` naming the JSON field at fault: a
/// misspelt key, a wrong type, a missing value, an unknown node, a route hop with no link.
///
/// ```swift
/// let data = try Data(contentsOf: URL(fileURLWithPath: "scenarios/incast-16to1.json"))
/// let scenario = try ScenarioLoader.load(json: data)
/// ```
public enum ScenarioLoader {
    public static func load(json data: Data) throws -> FabricScenario {
        let tree: Any
        do {
            tree = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ScenarioError(field: "", problem: "not valid JSON (\(error.localizedDescription))")
        }
        guard tree is [String: Any] else {
            throw ScenarioError(field: "", problem: "the document must be a JSON object")
        }
        if let unknown = ScenarioFile.keySchema.firstUnknownKey(in: tree) { throw unknown }
        let file: ScenarioFile
        do {
            file = try JSONDecoder().decode(ScenarioFile.self, from: data)
        } catch let error as DecodingError {
            throw scenarioError(error)
        }
        return try ScenarioResolver(file: file).resolve()
    }

    private static func scenarioError(_ error: DecodingError) -> ScenarioError {
        func path(_ keys: [any CodingKey]) -> String {
            var text = ""
            for key in keys {
                if let index = key.intValue { text += "[\(index)]" } else { text += text.isEmpty ? key.stringValue : ".\(key.stringValue)" }
            }
            return text
        }
        func expected(_ type: Any.Type) -> String {
            switch type {
            case is Double.Type: "a number"
            case is Int.Type: "a whole number"
            case is UInt64.Type: "a non-negative whole number"
            case is String.Type: "a string"
            case is Bool.Type: "true or false"
            case is [Any].Type, is [String].Type: "a list"
            default: "\(type)"
            }
        }
        switch error {
        case .typeMismatch(let type, let context):
            return ScenarioError(field: path(context.codingPath), problem: "expected \(expected(type))")
        case .valueNotFound(let type, let context):
            return ScenarioError(field: path(context.codingPath), problem: "must not be null (expected \(expected(type)))")
        case .keyNotFound(let key, let context):
            return ScenarioError(field: path(context.codingPath + [key]), problem: "missing required field")
        case .dataCorrupted(let context):
            return ScenarioError(field: path(context.codingPath), problem: context.debugDescription)
        @unknown default:
            return ScenarioError(field: "", problem: "\(error)")
        }
    }
}
