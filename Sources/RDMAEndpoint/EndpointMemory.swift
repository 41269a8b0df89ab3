#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import RDMA

/// An endpoint's registered memory. The bytes are allocated here and registered with
/// `unsafeRegistering:`, so they outlive the registrations: a `ReceivedMessage` still held
/// after `close()` (or after the context closed the regions) keeps pointing at live memory,
/// freed only when the last view and the endpoint are gone.
final class EndpointMemory: @unchecked Sendable {
    /// Header + eager payload, rounded up to a cache line.
    let slotStride: Int
    let receive: Pool
    let send: Pool
    /// Where the peer WRITEs large messages (remote write).
    let rendezvousIn: Pool?
    /// Where our large messages wait for their RDMA WRITE to finish.
    let rendezvousOut: Pool?
    /// The block the peer WRITEs credits and close into (remote write, nothing else there).
    let controlIn: Pool
    /// The sources of our control writes: one 32-byte block per write in flight.
    let controlOut: Pool
    static let controlWritesInFlight = 4

    /// Registered bytes of one role.
    final class Pool: @unchecked Sendable {
        let bytes: UnsafeMutableRawBufferPointer
        let region: MemoryRegion

        init(domain: ProtectionDomain, length: Int, access: AccessFlags) throws(EndpointError) {
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 4096, max(length, 64)) == 0, let raw else {
                throw .invalidConfiguration(field: "memory", detail: "cannot allocate \(length) bytes")
            }
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: max(length, 64))
            bytes = UnsafeMutableRawBufferPointer(start: raw, count: max(length, 64))
            do {
                region = try MemoryRegion(protectionDomain: domain, unsafeRegistering: bytes, access: access)
            } catch {
                free(raw)
                throw .rdma(error)
            }
        }

        @inline(__always) var base: UnsafeMutableRawPointer { bytes.baseAddress! }
        @inline(__always) func address(_ offset: Int) -> UInt64 { region.address + UInt64(offset) }

        deinit {
            // Deregister before freeing: the device must let go of the bytes first.
            try? region.close()
            free(bytes.baseAddress)
        }
    }

    init(domain: ProtectionDomain, configuration: EndpointConfiguration) throws(EndpointError) {
        slotStride = (MessageHeader.size + configuration.eagerLimit + 63) & ~63
        receive = try Pool(domain: domain, length: slotStride * configuration.receiveSlots, access: .localWrite)
        send = try Pool(domain: domain, length: slotStride * configuration.sendSlots, access: .localWrite)
        let rendezvousLength = configuration.rendezvousSlots * configuration.rendezvousSlotSize
        if rendezvousLength > 0 {
            rendezvousIn = try Pool(domain: domain, length: rendezvousLength, access: [.localWrite, .remoteWrite])
            rendezvousOut = try Pool(domain: domain, length: rendezvousLength, access: .localWrite)
        } else {
            rendezvousIn = nil
            rendezvousOut = nil
        }
        controlIn = try Pool(domain: domain, length: ControlBlock.size, access: [.localWrite, .remoteWrite])
        controlOut = try Pool(domain: domain, length: ControlBlock.size * Self.controlWritesInFlight, access: .localWrite)
    }

    /// Stops the device from touching the bytes (deregisters every region); the bytes stay.
    func deregister() {
        for pool in [receive, send, rendezvousIn, rendezvousOut, controlIn, controlOut] { try? pool?.region.close() }
    }
}
