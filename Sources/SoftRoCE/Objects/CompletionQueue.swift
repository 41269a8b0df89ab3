#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// A completion channel: a non-blocking pipe the engine writes one byte into when an armed
/// queue gets a completion, so `fileDescriptor` (the read end) becomes readable.
package final class SoftCompletionChannel: @unchecked Sendable {
    package let fileDescriptor: Int32
    let writeDescriptor: Int32
    var pending: ContiguousArray<SoftCompletionQueue> = []
    /// Whether the descriptors are closed, and whether a `wake()` is not yet taken by a wait
    /// (its byte is in the pipe). One lock orders a wake's write against the close: a wake
    /// from another thread must never write into a descriptor number freed for reuse.
    private let state = Mutex<(closed: Bool, wakeRequested: Bool)>((false, false))

    init() throws(SoftRoCEError) {
        (fileDescriptor, writeDescriptor) = try Self.makePipe(for: "the completion channel")
        pending.reserveCapacity(64)
    }

    /// `pipe(2)`, both ends non-blocking and close-on-exec: (read end, write end). The
    /// engine's pollable descriptors (completion channels, the CM's events) are such pipes.
    static func makePipe(for owner: String) throws(SoftRoCEError) -> (Int32, Int32) {
        var descriptors: (Int32, Int32) = (-1, -1)
        let result = withUnsafeMutableBytes(of: &descriptors) { pipe($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        guard result == 0 else { throw SoftRoCEError("pipe", errno: errno, "cannot create \(owner)'s descriptor") }
        for descriptor in [descriptors.0, descriptors.1] {
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        }
        return descriptors
    }

    func signal(_ queue: SoftCompletionQueue) {
        if pending.count < pending.capacity { pending.append(queue) }
        var one: UInt8 = 1
        _ = write(writeDescriptor, &one, 1)
    }

    /// Makes the next (or the current) `SoftDevice.waitForEvent` on this channel return
    /// nil at once. Any thread; one byte in the pipe however many calls until it is taken.
    package func wake() {
        state.withLock { state in
            guard !state.closed, !state.wakeRequested else { return }
            state.wakeRequested = true
            var one: UInt8 = 1
            _ = write(writeDescriptor, &one, 1)
        }
    }

    /// Takes a pending `wake()` (and its byte); false when there is none.
    func takeWake() -> Bool {
        state.withLock { state in
            guard state.wakeRequested else { return false }
            state.wakeRequested = false
            _ = consume()
            return true
        }
    }

    /// Consumes one event byte; true if there was one.
    func consume() -> Bool {
        var byte: UInt8 = 0
        return read(fileDescriptor, &byte, 1) == 1
    }

    /// Closes both ends. Idempotent.
    func closeDescriptors() {
        state.withLock { state in
            guard !state.closed else { return }
            state.closed = true
            _ = Glibc.close(fileDescriptor)
            _ = Glibc.close(writeDescriptor)
        }
    }
}

/// A completion queue: a fixed ring of completions. A completion that finds it full is
/// counted as an overrun (verbs would move the CQ to error; the count makes it visible).
package final class SoftCompletionQueue: @unchecked Sendable {
    package let capacity: Int
    private let ring: UnsafeMutablePointer<SoftCompletion>
    @exclusivity(unchecked) private var head = 0
    @exclusivity(unchecked) private(set) var count = 0
    @exclusivity(unchecked) var armed = false
    var solicitedOnly = false
    package let channel: SoftCompletionChannel?
    /// Free for the owner (the RDMA module keeps its CompletionQueue here, like cq_context).
    package var userContext: UnsafeMutableRawPointer?
    private(set) var overruns: UInt64 = 0
    var valid = true

    init(capacity: Int, channel: SoftCompletionChannel?) {
        self.capacity = max(capacity, 1)
        self.channel = channel
        ring = .allocate(capacity: self.capacity)
        ring.initialize(repeating: SoftCompletion(), count: self.capacity)
    }

    deinit { ring.deallocate() }

    /// Adds a completion; false (and an overrun counted) when the queue is full.
    @discardableResult
    func push(_ completion: SoftCompletion) -> Bool {
        guard count < capacity else { overruns += 1; return false }
        ring[(head + count) % capacity] = completion
        count += 1
        if armed, let channel {
            armed = false
            channel.signal(self)
        }
        return true
    }

    func pop(into buffer: UnsafeMutableBufferPointer<SoftCompletion>) -> Int {
        var taken = 0
        while taken < buffer.count && count > 0 {
            buffer[taken] = ring[head]
            head = (head + 1) % capacity
            count -= 1
            taken += 1
        }
        return taken
    }
}
