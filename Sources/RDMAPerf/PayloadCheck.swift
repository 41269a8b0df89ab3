/// `--verify`: what each message carries and what the client expects back, byte for byte.
///
/// Byte `k` of message `n` is byte `k % 8` (little-endian) of a 64-bit mix of `n`, `k / 8`
/// and who wrote it: every message differs from the one before, so a byte that was not
/// written (stale) is caught as surely as one that was changed.
///
/// - SEND/WRITE ping-pong: the client fills its message `n`; the server, asked to verify,
///   echoes the bytes it received (it replies from its landing area), so the client's check
///   of the echo covers both directions. WRITE's last byte stays the marker the loops wait for.
/// - READ: the server fills what is read once per size; before each READ the client
///   overwrites its landing area with the complement of what it expects.
/// - atomic: fetch-and-add 1 from 0 returns `n` to message `n`; the landing word is set to
///   `~n` before each one.
///
/// Filling and checking happen outside the timed region: with --verify a sample is the
/// period from just before the post to the moment the completion (or marker) is seen.
///
/// ```swift
/// var check = PayloadCheck(operation: .send, size: 64, base: memory, slot: 64)
/// check.prepare(message: 0)          // before the post
/// try check.verify(message: 0)       // after the reply was seen: throws naming the byte
/// ```
struct PayloadCheck {
    let operation: LatencyOperation
    let size: Int
    let send: UnsafeMutableRawPointer
    let landing: UnsafeMutableRawPointer
    /// Bytes compared so far.
    private(set) var verifiedBytes = 0

    init(operation: LatencyOperation, size: Int, base: UnsafeMutableRawPointer, slot: Int) {
        self.operation = operation
        self.size = size
        send = base
        landing = base + slot
    }

    /// The stream a side writes: the client's messages, or what the server offers to READ.
    enum Writer: UInt64 { case client = 0x243F_6A88_85A3_08D3, server = 0x1319_8A2E_0370_7344 }

    /// Eight bytes of the pattern: word `word` of message `message`.
    @inline(__always)
    static func word(message: Int, word: Int, writer: Writer) -> UInt64 {
        var x = UInt64(truncatingIfNeeded: message) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(truncatingIfNeeded: word) &* 0xBF58_476D_1CE4_E5B9 ^ writer.rawValue
        x ^= x >> 31
        x &*= 0x94D0_49BB_1331_11EB
        return x ^ (x >> 29)
    }

    @inline(__always)
    static func byte(message: Int, offset: Int, writer: Writer) -> UInt8 {
        UInt8(truncatingIfNeeded: word(message: message, word: offset >> 3, writer: writer) >> UInt64(8 * (offset & 7)))
    }

    /// Writes `count` bytes of the pattern (or its complement) at `destination`.
    static func fill(_ destination: UnsafeMutableRawPointer, count: Int, message: Int, writer: Writer, complement: Bool = false) {
        let mask: UInt64 = complement ? .max : 0
        var offset = 0
        while offset + 8 <= count {
            destination.storeBytes(of: (word(message: message, word: offset >> 3, writer: writer) ^ mask).littleEndian,
                                   toByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        while offset < count {
            destination.storeBytes(of: byte(message: message, offset: offset, writer: writer) ^ UInt8(truncatingIfNeeded: mask),
                                   toByteOffset: offset, as: UInt8.self)
            offset += 1
        }
    }

    /// The first offset in `count` bytes at `source` that differs from the pattern.
    static func firstMismatch(_ source: UnsafeRawPointer, count: Int, message: Int, writer: Writer) -> Int? {
        var offset = 0
        while offset + 8 <= count {
            let expected = word(message: message, word: offset >> 3, writer: writer).littleEndian
            if source.loadUnaligned(fromByteOffset: offset, as: UInt64.self) != expected { break }
            offset += 8
        }
        while offset < count {
            if source.load(fromByteOffset: offset, as: UInt8.self) != byte(message: message, offset: offset, writer: writer) { return offset }
            offset += 1
        }
        return nil
    }

    /// The server's side of a READ run: what the client will read, once per size.
    static func offerForRead(_ base: UnsafeMutableRawPointer, size: Int) {
        fill(base, count: size, message: 0, writer: .server)
    }

    /// Before message `message` is posted: fill what we send, spoil what we expect.
    mutating func prepare(message: Int) {
        switch operation {
        case .send, .write:
            Self.fill(send, count: size, message: message, writer: .client)
        case .read:
            Self.fill(landing, count: size, message: 0, writer: .server, complement: true)
        case .atomic:
            landing.storeBytes(of: ~UInt64(truncatingIfNeeded: message), as: UInt64.self)
        }
    }

    /// After message `message`'s reply or completion was seen: every received byte must be
    /// what was sent. Throws naming the message (counting the warm-up) and the byte offset.
    mutating func verify(message: Int) throws(PerfError) {
        let mismatch: Int?
        let expected: (Int) -> UInt8
        switch operation {
        case .send:
            mismatch = Self.firstMismatch(landing, count: size, message: message, writer: .client)
            expected = { Self.byte(message: message, offset: $0, writer: .client) }
        case .write:
            // The last byte is the marker the loop already waited for.
            mismatch = Self.firstMismatch(landing, count: size - 1, message: message, writer: .client)
            expected = { Self.byte(message: message, offset: $0, writer: .client) }
        case .read:
            mismatch = Self.firstMismatch(landing, count: size, message: 0, writer: .server)
            expected = { Self.byte(message: 0, offset: $0, writer: .server) }
        case .atomic:
            let value = landing.load(as: UInt64.self)
            let want = UInt64(truncatingIfNeeded: message)
            mismatch = value == want ? nil : (0..<8).first { UInt8(truncatingIfNeeded: value >> (8 * $0)) != UInt8(truncatingIfNeeded: want >> (8 * $0)) }
            expected = { UInt8(truncatingIfNeeded: want >> (8 * $0)) }
        }
        if let offset = mismatch {
            let got = landing.load(fromByteOffset: offset, as: UInt8.self)
            throw PerfError("--verify: \(operation) message \(message) (counting the warm-up), byte \(offset) of \(operation == .atomic ? 8 : size): expected 0x\(String(expected(offset), radix: 16)), got 0x\(String(got, radix: 16))",
                            hint: "the data was changed between the two memories (the path, the device, or the peer)")
        }
        verifiedBytes += operation == .atomic ? 8 : size
    }
}
