#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The one error type of the RDMA API.
///
/// Every error names the operation that failed (the C call, or the API step for checks
/// made before any C call), carries the `errno` the C library reported when there was one,
/// and a hint that says what to do about it.
///
/// ```swift
/// do {
///     let context = try Context(deviceNamed: "rxe0")
/// } catch let error as RDMAError {
///     print(error)   // "ibv_get_device_list failed: Function not implemented (ENOSYS) — …"
/// }
/// ```
public struct RDMAError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public enum Kind: Equatable, Sendable {
        /// A C call failed with this `errno`.
        case system(errno: Int32)
        /// No RDMA device (or no device of the requested name) is present.
        case noDevice
        /// An argument or attribute was rejected before any C call was made.
        case invalidArgument
        /// The object was closed before this call.
        case closed
        /// The operation needs something the backend or device does not offer.
        case unsupported
        /// The peer's connection manager refused the connection (an IB CM REJ).
        case rejected(ConnectionRejectReason)
    }

    /// The C call or API step that failed, e.g. `ibv_create_qp` or `QueuePair.modify(INIT→RTR)`.
    public var operation: String
    /// What kind of failure this is.
    public var kind: Kind
    /// A sentence that says why this usually happens and what to do.
    public var hint: String?

    public init(operation: String, kind: Kind, hint: String? = nil) {
        self.operation = operation
        self.kind = kind
        self.hint = hint
    }

    /// The `errno` value when the failure came from a C call.
    public var errno: Int32? {
        if case .system(let code) = kind { return code }
        return nil
    }

    public var description: String {
        var text: String
        switch kind {
        case .system(let code):
            text = "\(operation) failed: \(Self.describe(errno: code))"
        case .noDevice:
            text = "\(operation): no RDMA device"
        case .invalidArgument:
            text = "\(operation): invalid argument"
        case .closed:
            text = "\(operation): the object is closed"
        case .unsupported:
            text = "\(operation): not supported"
        case .rejected(let reason):
            text = "\(operation): rejected by the peer: \(reason)"
        }
        if let hint { text += " — \(hint)" }
        return text
    }

    /// `strerror` text plus the symbolic name, because users search for "ENOMEM", not for
    /// "Cannot allocate memory".
    static func describe(errno code: Int32) -> String {
        let message = String(cString: strerror(code))
        if let name = errnoNames[code] { return "\(message) (\(name))" }
        return "\(message) (errno \(code))"
    }

    private static let errnoNames: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", EIO: "EIO", EAGAIN: "EAGAIN",
        ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST",
        ENODEV: "ENODEV", EINVAL: "EINVAL", ENOSPC: "ENOSPC", ENOSYS: "ENOSYS",
        EOPNOTSUPP: "EOPNOTSUPP", ETIMEDOUT: "ETIMEDOUT", ENODATA: "ENODATA", EBADF: "EBADF",
        ENXIO: "ENXIO", EPROTONOSUPPORT: "EPROTONOSUPPORT", ENETUNREACH: "ENETUNREACH",
        EADDRINUSE: "EADDRINUSE", EADDRNOTAVAIL: "EADDRNOTAVAIL", ECONNREFUSED: "ECONNREFUSED",
        ECONNRESET: "ECONNRESET", EHOSTUNREACH: "EHOSTUNREACH", ECANCELED: "ECANCELED",
    ]
}

extension RDMAError {
    /// The hint for failures that come from the environment rather than the caller: the
    /// common causes per `errno`, phrased for RDMA (ENOMEM from `ibv_reg_mr` is nearly
    /// always the locked-memory limit, not the machine being out of memory).
    static func hint(forOperation operation: String, errno code: Int32) -> String? {
        switch code {
        case ENOSYS:
            return "the kernel has no RDMA support: load rdma_rxe (tools/rxe-setup), use the kernel-rxe lab (tools/rxe-lab), or run with the userspace engine"
        case ENOMEM where operation.contains("reg_mr") || operation.contains("create_cq") || operation.contains("create_qp"):
            return "the locked-memory limit is probably too low: raise it with `ulimit -l unlimited` (or memlock in limits.conf)"
        case ENODEV where operation.hasPrefix("rdma_create_event_channel") || operation.hasPrefix("rdma_create_id"):
            return "no rdma_cm in the kernel: load rdma_ucm (`modprobe rdma_ucm`) and check /dev/infiniband/rdma_cm"
        case ENOENT where operation.hasPrefix("rdma_create_event_channel"):
            return "no /dev/infiniband/rdma_cm: load rdma_ucm (`modprobe rdma_ucm`), or use the kernel-rxe lab (tools/rxe-lab)"
        case ENODEV where operation.hasPrefix("rdma_bind_addr") || operation.hasPrefix("rdma_resolve_addr"):
            return "no RDMA device has that address: give the netdev under the RDMA device the address, or bind to one it has (`rdma link`, `ip addr`)"
        case EADDRNOTAVAIL where operation.hasPrefix("rdma_bind_addr"):
            return "no interface has that address"
        case EADDRINUSE:
            return "the port is already bound in this port space: pick another or stop the other listener"
        case EPERM, EACCES:
            return "permission denied: run as root or give access to /dev/infiniband/uverbs*"
        case EINVAL where operation.contains("modify_qp"):
            return "the device rejected the attributes: check the GID index, path MTU and port number"
        case EINVAL:
            return "the device rejected an argument: compare it with the device and port attributes"
        case ENODEV, ENXIO:
            return "the device went away: check `rdma link` and `ibv_devices`"
        default:
            return nil
        }
    }
}
