import Foundation
import Testing
@testable import FabricMonitor

@Suite struct JSONParserTests {
    func parse(_ text: String) throws(MonitorError) -> JSONValue { try JSONValue.parse(Data(text.utf8), document: "doc") }

    @Test func valuesKeepTheirExactTypes() throws {
        guard case .object(let fields) = try parse(#" {"a": 18446744073709551615, "b": -9223372036854775808, "c": 1.5e3, "d": true, "e": null, "f": [0, -0, 1E2], "g": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"} "#) else {
            Issue.record("not an object"); return
        }
        guard case .unsigned(UInt64.max) = fields["a"], case .signed(Int64.min) = fields["b"], case .double(1500) = fields["c"],
              case .bool(true) = fields["d"], case .null = fields["e"] else { Issue.record("\(fields)"); return }
        guard case .array(let items) = fields["f"], items.count == 3, case .unsigned(0) = items[0], case .signed(0) = items[1], case .double(100) = items[2] else {
            Issue.record("\(String(describing: fields["f"]))"); return
        }
        guard case .string(let text) = fields["g"] else { Issue.record("g"); return }
        #expect(text == "x\"\\/\u{8}\u{c}\n\r\té😀")
        // Beyond 64 bits a whole number is a double (and a counter field refuses it).
        guard case .double = try parse("18446744073709551616") else { Issue.record("2^64"); return }
    }

    @Test(arguments: [
        ("", "unexpected end at byte 0"), ("{", "expected a field name at byte 1"), (#"{"a" 1}"#, "expected ':' at byte 5"),
        ("[1 2]", "expected ',' or ']' at byte 3"), ("01", "leading zero in a number at byte 0"), ("1.", "invalid number at byte 0"),
        ("-", "invalid number at byte 0"), ("tru", "unexpected end at byte 0"), ("[1] x", "unexpected text after the document at byte 4"),
        (#""abc"#, "unterminated string at byte 1"), ("\"a\u{1}\"", "control character in a string at byte 2"), (#""\x""#, "invalid escape at byte 2"),
        (#""\ud800x""#, "unpaired surrogate at byte 7"), ("1e999", "number out of range at byte 0"), ("nul", "unexpected end at byte 0"),
    ])
    func malformedDocumentsAreRefusedWithThePlace(text: String, message: String) {
        #expect(throws: MonitorError("doc", "not valid JSON (\(message))")) { _ = try parse(text) }
    }

    @Test func invalidUTF8IsRefused() {
        #expect(throws: MonitorError("doc", "not valid JSON (invalid UTF-8 at byte 1)")) {
            _ = try JSONValue.parse(Data([0x22, 0xC3, 0x28, 0x22]), document: "doc")
        }
    }
}
