/// An error a user can cause, with the message the tools print and their exit status.
///
/// ```swift
/// throw PerfError("unknown device \"mlx9\"", hint: "devices present: rxe0", exitCode: 2)
/// ```
public struct PerfError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public var hint: String?
    /// 2: bad arguments or environment; 3: the peer or network; 1: anything else.
    public var exitCode: Int32
    /// The field of a peer's message that was refused (`hello.sizes[0]`); nil for other
    /// errors. A server that refuses a client goes on to serve the next one.
    public var refusedField: String?

    public init(_ message: String, hint: String? = nil, exitCode: Int32 = 1) {
        self.message = message
        self.hint = hint
        self.exitCode = exitCode
    }

    public var description: String {
        hint.map { "\(message) — \($0)" } ?? message
    }

    public static func usage(_ message: String, hint: String? = nil) -> PerfError {
        PerfError(message, hint: hint, exitCode: 2)
    }

    public static func peer(_ message: String, hint: String? = nil) -> PerfError {
        PerfError(message, hint: hint, exitCode: 3)
    }

    /// A peer's message refused: `field` names what was wrong (exit status 3).
    public static func refused(_ field: String, _ why: String) -> PerfError {
        var error = PerfError("refused \(field): \(why)", exitCode: 3)
        error.refusedField = field
        return error
    }
}
