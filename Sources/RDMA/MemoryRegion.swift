#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Memory registered with a device: the device may DMA into and out of it, and — with the
/// right access flags — a peer may too, using `remoteDescriptor`.
///
/// A region either owns its bytes (page-aligned, zeroed, freed with the region) or
/// registers bytes the caller owns (`unsafeRegistering:`), which must then outlive it.
///
/// ```swift
/// let region = try MemoryRegion(protectionDomain: pd, length: 4096,
///                               access: [.localWrite, .remoteWrite])
/// region.bytes.copyBytes(from: "hello".utf8)
/// let sge = region.scatterGather(offset: 0, length: 5)
/// let descriptor = region.remoteDescriptor   // send to the peer
/// ```
public final class MemoryRegion: ClosableResource, @unchecked Sendable {
    /// The backend's registration: a `let`, so that a call through it needs no retain;
    /// it outlives `close()`, and every use checks `isClosed` first.
    private let operations: any MemoryRegionOperations
    /// True after `close()` — set once the destroy call succeeded.
    public private(set) var isClosed = false
    /// The protection domain the region is registered in.
    public let protectionDomain: ProtectionDomain
    /// The registered bytes. Reading them while the device writes is a data race: wait for
    /// the completion that says the device is done.
    public let bytes: UnsafeMutableRawBufferPointer
    /// What the region allows.
    public let access: AccessFlags
    /// The key local work requests use (`ScatterGatherElement.lkey`).
    public let lkey: UInt32
    /// The key a peer uses in RDMA READ/WRITE/atomic requests.
    public let rkey: UInt32
    private let ownsBytes: Bool

    /// Allocates `length` zeroed, page-aligned bytes and registers them.
    /// The corresponding C function is `ibv_reg_mr`.
    public convenience init(protectionDomain: ProtectionDomain, length: Int,
                            access: AccessFlags = .localWrite, alignment: Int = 4096) throws(RDMAError) {
        guard length > 0 else {
            throw RDMAError(operation: "MemoryRegion(length:)", kind: .invalidArgument, hint: "length must be positive, got \(length)")
        }
        guard alignment > 0, alignment & (alignment - 1) == 0, alignment % MemoryLayout<UnsafeRawPointer>.size == 0 else {
            throw RDMAError(operation: "MemoryRegion(alignment:)", kind: .invalidArgument, hint: "alignment must be a power of two and a multiple of the pointer size, got \(alignment)")
        }
        var raw: UnsafeMutableRawPointer?
        let code = posix_memalign(&raw, alignment, length)
        guard code == 0, let raw else {
            throw RDMAError(operation: "posix_memalign(\(length))", kind: .system(errno: code), hint: "cannot allocate the region's memory")
        }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        let buffer = UnsafeMutableRawBufferPointer(start: raw, count: length)
        do {
            try self.init(protectionDomain: protectionDomain, bytes: buffer, access: access, owns: true)
        } catch {
            free(raw)
            throw error
        }
    }

    /// Registers `bytes`, which the caller owns.
    ///
    /// - Important: `bytes` must stay allocated until this region is closed, and until every
    ///   work request that names it has completed.
    /// The corresponding C function is `ibv_reg_mr`.
    public convenience init(protectionDomain: ProtectionDomain, unsafeRegistering bytes: UnsafeMutableRawBufferPointer,
                            access: AccessFlags = .localWrite) throws(RDMAError) {
        guard bytes.baseAddress != nil, bytes.count > 0 else {
            throw RDMAError(operation: "MemoryRegion(unsafeRegistering:)", kind: .invalidArgument, hint: "cannot register an empty buffer")
        }
        try self.init(protectionDomain: protectionDomain, bytes: bytes, access: access, owns: false)
    }

    private init(protectionDomain: ProtectionDomain, bytes: UnsafeMutableRawBufferPointer,
                 access: AccessFlags, owns: Bool) throws(RDMAError) {
        try access.validateForRegistration(operation: "ibv_reg_mr")
        let region = try protectionDomain.operations("ibv_reg_mr").registerMemory(bytes, access: access)
        self.protectionDomain = protectionDomain
        self.bytes = bytes
        self.access = access
        self.ownsBytes = owns
        lkey = region.lkey
        rkey = region.rkey
        operations = region
        protectionDomain.children.add(self)
    }

    /// The address the device knows the first byte by (what a peer puts in RETH.VA).
    public var address: UInt64 { UInt64(UInt(bitPattern: bytes.baseAddress)) }

    /// The registered length in bytes.
    public var length: Int { bytes.count }

    /// What a peer needs to read or write this region: address, rkey, length.
    public var remoteDescriptor: RemoteMemory {
        RemoteMemory(address: address, rkey: rkey, length: UInt32(clamping: bytes.count))
    }

    /// A scatter-gather element for `length` bytes at `offset` (all of it by default).
    /// Traps when the range leaves the region: the device would report a local protection
    /// error only at completion time, far from the mistake.
    @inlinable
    public func scatterGather(offset: Int = 0, length: Int? = nil) -> ScatterGatherElement {
        let size = length ?? (bytes.count - offset)
        precondition(offset >= 0 && size >= 0 && offset + size <= bytes.count,
                     "MemoryRegion.scatterGather: \(size) bytes at offset \(offset) exceed the region's \(bytes.count)")
        return ScatterGatherElement(address: address + UInt64(offset), length: UInt32(size), lkey: lkey)
    }

    /// Deregisters the region (and frees the bytes it owns). Idempotent; after a failure
    /// the region stays registered and `close()` may be retried.
    /// The corresponding C function is `ibv_dereg_mr`.
    public func close() throws(RDMAError) {
        if isClosed { return }
        // Free owned bytes only once the device has let go of them: after a failed
        // deregistration the device may still DMA there.
        try operations.deregister()
        isClosed = true
        if ownsBytes { free(bytes.baseAddress) }
    }

    deinit {
        LeakCheck.objectDeinitialized("MemoryRegion", isOpen: !isClosed, detail: "\(bytes.count) bytes, lkey 0x\(String(lkey, radix: 16))")
        try? close()
    }
}
