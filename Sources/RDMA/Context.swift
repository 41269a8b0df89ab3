import CIBVerbs
import SoftRoCE

/// An open RDMA device: the root of every other object.
///
/// Children (protection domains, completion queues and channels) keep their context alive;
/// `close()` closes them first, then the device. Closing twice is harmless.
///
/// ```swift
/// let context = try Context(deviceNamed: "rxe0")
/// let port = try context.portAttributes(port: 1)
/// let gid = try context.preferredRoCEv2GID(port: 1)   // the ::ffff:a.b.c.d entry
/// ```
public final class Context: @unchecked Sendable {
    /// The backend's device operations: a `let`, so that a call through it needs no retain;
    /// it outlives `close()`, and every use checks `isClosed` first.
    private let operations: any DeviceOperations
    /// True after `close()` — set once the destroy call succeeded.
    public private(set) var isClosed = false
    /// The device this context was opened on.
    public let device: Device
    let children = ChildRegistry()

    /// Opens `device`. The corresponding C function is `ibv_open_device`.
    public init(device: Device) throws(RDMAError) {
        self.device = device
        if let soft = device.soft {
            guard !soft.isClosed else {
                throw RDMAError(operation: "open soft device \(soft.name)", kind: .closed, hint: "the soft device was closed")
            }
            operations = SoftBackendDevice(device: soft, owned: false)
            return
        }
        operations = try VerbsDevice(opening: device.pointer)
    }

    /// Opens the device called `name` (e.g. `rxe0`), with an error naming the devices
    /// present when there is none of that name.
    public convenience init(deviceNamed name: String) throws(RDMAError) {
        try self.init(device: try Device.named(name))
    }

    /// Opens a soft (SoftRoCE) device: the userspace RoCEv2 engine bound to
    /// `configuration.address` (IPv4 or IPv6) and UDP `configuration.port` (4791 by default).
    /// Its one port has GID index 0: the IPv4-mapped address (or the IPv6 address).
    ///
    /// ```swift
    /// let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.2", port: 4791))
    /// ```
    /// Polling a completion queue drives the engine in the caller's thread; for
    /// event-driven use call `startBackgroundProgress()`.
    public init(soft configuration: SoftDeviceConfiguration) throws(RDMAError) {
        let soft: SoftDevice
        do throws(SoftRoCEError) { soft = try SoftDevice(configuration: configuration) } catch { throw RDMAError(soft: error) }
        SoftDeviceRegistry.add(soft)
        device = Device(soft: soft)
        operations = SoftBackendDevice(device: soft, owned: true)
    }

    /// Which implementation this context runs on.
    public var backend: BackendKind { device.soft != nil ? .soft : .verbs }

    /// The backend's operations, or a `.closed` error naming `operation`.
    @inline(__always)
    func operations(_ operation: StaticString) throws(RDMAError) -> any DeviceOperations {
        if isClosed { throw RDMAError.closed(operation, "Context") }
        return operations
    }

    /// The soft engine behind this context, nil on verbs or once closed.
    package var softEngine: SoftDevice? { isClosed ? nil : (operations as? SoftBackendDevice)?.device }

    /// The soft engine's counters (named as rxe's hw_counters: `counters.named`); nil on
    /// verbs, where the kernel shows them under /sys/class/infiniband/*/ports/*/hw_counters.
    ///
    /// ```swift
    /// if let counters = context.softCounters { print(counters.retryExceeded) }
    /// ```
    public var softCounters: SoftCounters? { softEngine?.snapshotCounters() }

    /// The UDP port the soft engine is bound to — the kernel's choice when the
    /// configuration asked for port 0; nil on verbs.
    ///
    /// ```swift
    /// let context = try Context(soft: SoftDeviceConfiguration(address: "127.0.0.1", port: 0))
    /// print(context.softUDPPort!)   // e.g. 41234
    /// ```
    public var softUDPPort: UInt16? { softEngine?.port }

    /// How the soft engine checks received ICRCs — what `.automatic` resolved to (strict
    /// where raw sockets are permitted); nil on verbs.
    ///
    /// ```swift
    /// print(context.softICRCVerification ?? "verbs")   // strict (real IP header from a raw socket)
    /// ```
    public var softICRCVerification: ICRCVerification? { softEngine?.icrcVerification }

    /// Runs the soft engine's progress on a background thread, so that completion channels
    /// are signalled without anyone polling. No-op on verbs (the kernel/NIC progresses).
    ///
    /// ```swift
    /// context.startBackgroundProgress()
    /// // … wait on a CompletionChannel's descriptor in an event loop …
    /// context.stopBackgroundProgress()
    /// ```
    public func startBackgroundProgress() { softEngine?.startBackgroundProgress() }

    /// Stops the thread `startBackgroundProgress()` started (and waits for it); polling
    /// drives the engine again. No-op on verbs, or when none runs.
    public func stopBackgroundProgress() { softEngine?.stopBackgroundProgress() }

    /// The device's limits. The corresponding C function is `ibv_query_device`.
    public func deviceAttributes() throws(RDMAError) -> DeviceAttributes {
        try operations("ibv_query_device").deviceAttributes()
    }

    /// The state of `port` (numbered from 1). The corresponding C function is `ibv_query_port`.
    public func portAttributes(port: UInt8 = 1) throws(RDMAError) -> PortAttributes {
        try operations("ibv_query_port").portAttributes(port: port)
    }

    /// Every valid GID of every port, with its type, in index order.
    /// The corresponding C function is `ibv_query_gid_table`.
    public func gidTable() throws(RDMAError) -> [GIDEntry] {
        try operations("ibv_query_gid_table").gidTable()
    }

    /// The GID table of one port.
    public func gidTable(port: UInt8) throws(RDMAError) -> [GIDEntry] {
        try gidTable().filter { $0.port == port }
    }

    /// The RoCEv2 entry with an IPv4-mapped address on `port` — the one perftest users
    /// pass as `-x` by hand (index 1 on a fresh rxe; index 0 is the IPv6 link-local one).
    /// Throws with a hint when the port has none (no IPv4 address on its netdev).
    public func preferredRoCEv2GID(port: UInt8 = 1) throws(RDMAError) -> GIDEntry {
        let table = try gidTable(port: port)
        if let entry = GIDEntry.preferredRoCEv2(in: table) { return entry }
        throw RDMAError(operation: "select RoCEv2 GID on \(device.name) port \(port)", kind: .noDevice,
                        hint: "no RoCEv2 GID with an IPv4 address: give the netdev under \(device.name) an IPv4 address (`ip addr add … dev …`) or pass the GID index explicitly")
    }

    /// Closes the children, then the device. Idempotent; after a failure the context stays
    /// open and `close()` may be retried. The corresponding C function is `ibv_close_device`.
    public func close() throws(RDMAError) {
        if isClosed { return }
        try children.closeAll()
        try operations.close()
        isClosed = true
    }

    deinit {
        LeakCheck.objectDeinitialized("Context", isOpen: !isClosed, detail: device.name)
        try? close()
    }
}
