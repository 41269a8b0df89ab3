/// A scenario file that cannot be simulated, with the JSON path of the field at fault.
///
/// ```swift
/// do { _ = try ScenarioLoader.load(json: data) }
/// catch let error as ScenarioError { print(error) }   // "flows[2].route[1]: unknown node "S9""
/// ```
public struct ScenarioError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Dotted JSON path, e.g. `links[3].between`; empty for the document as a whole.
    public var field: String
    public var problem: String

    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { field.isEmpty ? problem : "\(field): \(problem)" }
}
