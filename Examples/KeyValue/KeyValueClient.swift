#if canImport(Glibc)
import Glibc
#endif
import RDMAEndpoint

/// Puts and gets small and 1 MiB values, checks every byte, prints what each took.
func runKeyValueClient(_ endpoint: MessageEndpoint, rounds: Int) async throws {
    func value(_ count: Int, seed: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ seed) } }
    let clock = ContinuousClock()
    for (label, size) in [("small", 64), ("1 MiB", 1 << 20)] {
        var putTime = Duration.zero, getTime = Duration.zero
        for round in 0..<rounds {
            let key = "\(label)-\(round)", stored = value(size, seed: round)
            var start = clock.now
            let put = try await endpoint.call(KeyValueRequest(operation: .put, key: key, value: stored).encoded, timeout: .seconds(30))
            putTime += clock.now - start
            guard put.withUnsafeBytes({ $0.first }) == KeyValueStatus.ok.rawValue else { throw KeyValueFailure("put \(key) refused") }
            put.release()
            start = clock.now
            let got = try await endpoint.call(KeyValueRequest(operation: .get, key: key).encoded, timeout: .seconds(30))
            getTime += clock.now - start
            let intact = got.withUnsafeBytes { $0.first == KeyValueStatus.ok.rawValue && $0.dropFirst().elementsEqual(stored) }
            guard intact else { throw KeyValueFailure("get \(key) returned other bytes than were put") }
        }
        print("\(label) values (\(size) B): \(rounds) puts, mean \(putTime / rounds); \(rounds) gets, mean \(getTime / rounds); every byte checked")
    }
    let missing = try await endpoint.call(KeyValueRequest(operation: .get, key: "absent").encoded, timeout: .seconds(30))
    guard missing.withUnsafeBytes({ $0.first }) == KeyValueStatus.notFound.rawValue else { throw KeyValueFailure("a missing key was found") }
    print("get of a missing key: not found, as expected")
}

struct KeyValueFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
