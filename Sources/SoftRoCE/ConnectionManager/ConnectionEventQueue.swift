#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where the events of some connection ids go (rdma_cm's event channel): the manager has a
/// default queue, and `SoftConnectionManager.makeEventQueue()` makes more, so that each
/// channel (or each connection, after `migrate`) waits on its own descriptor. Touched only
/// under the device's lock, except `fileDescriptor`.
package final class SoftConnectionEventQueue: @unchecked Sendable {
    /// The read end of a non-blocking pipe holding one byte exactly while events wait
    /// (glibc's eventfd is not visible to Swift; a pipe polls the same).
    package let fileDescriptor: Int32
    private let signalDescriptor: Int32
    private var signalled = false
    private var events: [SoftConnectionEvent] = []
    private var head = 0
    private(set) var closed = false

    init() throws(SoftRoCEError) {
        (fileDescriptor, signalDescriptor) = try SoftCompletionChannel.makePipe(for: "the connection manager's events")
    }

    deinit { close() }

    func post(_ event: SoftConnectionEvent) {
        guard !closed else { return }
        if head > 64 && head * 2 > events.count {
            events.removeFirst(head)
            head = 0
        }
        events.append(event)
        if !signalled {
            var one: UInt8 = 1
            signalled = write(signalDescriptor, &one, 1) == 1
        }
    }

    func take() -> SoftConnectionEvent? {
        guard head < events.count else { return nil }
        let event = events[head]
        head += 1
        if head == events.count {
            events.removeAll(keepingCapacity: true)
            head = 0
            var byte: UInt8 = 0
            if signalled && read(fileDescriptor, &byte, 1) == 1 { signalled = false }   // drained: no longer readable
        }
        return event
    }

    var pending: Int { events.count - head }

    /// Closes both ends; later events for it are dropped. Idempotent.
    func close() {
        guard !closed else { return }
        closed = true
        events.removeAll()
        head = 0
        _ = Glibc.close(fileDescriptor)
        _ = Glibc.close(signalDescriptor)
    }
}
