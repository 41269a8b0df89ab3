#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// libibverbs uses four return conventions. Each gets exactly one helper here, so that no
// call site interprets a C return value on its own (swift-nio's System.swift habit):
//
// | convention            | examples                                                      |
// |-----------------------|---------------------------------------------------------------|
// | NULL + errno          | ibv_open_device, ibv_alloc_pd, ibv_reg_mr, ibv_create_cq/qp/ah |
// | returned errno        | ibv_modify_qp, ibv_query_port, ibv_post_send, ibv_destroy_*    |
// | negative count        | ibv_poll_cq (−errno-ish), ibv_query_gid_table (−errno)         |
// | −1 + errno            | ibv_get_cq_event, ibv_close_device, ibv_query_gid              |
//
// Each helper returns a `Result` (the middle layer of swift-system's three); callers use
// `.get()` to throw. Programmer errors — EFAULT (a bad pointer) and EBADF (a closed file
// descriptor) — mean memory safety is already lost, so they trap instead of throwing.

enum CReturn {
    /// NULL + errno: a pointer on success; NULL with `errno` set on failure.
    @inline(__always)
    static func nonNull<Pointee>(
        _ operation: StaticString,
        _ call: () -> UnsafeMutablePointer<Pointee>?
    ) -> Result<UnsafeMutablePointer<Pointee>, RDMAError> {
        errno = 0
        if let pointer = call() { return .success(pointer) }
        // Some providers return NULL without setting errno; EINVAL is what verbs means then.
        return .failure(failure(operation, errno == 0 ? EINVAL : errno))
    }

    /// Returned errno: 0 on success, a positive errno on failure (errno itself is not used).
    @inline(__always)
    static func returnedErrno(_ operation: StaticString, _ call: () -> Int32) -> Result<Void, RDMAError> {
        let code = call()
        if code == 0 { return .success(()) }
        // A few providers return -errno or -1 here; normalise rather than misreport.
        return .failure(failure(operation, code > 0 ? code : (code == -1 ? (errno == 0 ? EINVAL : errno) : -code)))
    }

    /// Negative count: a count ≥ 0 on success; a negative value on failure, which is
    /// −errno for the calls that document it and an unspecified negative value for
    /// ibv_poll_cq (then `errno` if set, else EIO).
    @inline(__always)
    static func count(_ operation: StaticString, _ call: () -> Int) -> Result<Int, RDMAError> {
        errno = 0
        let value = call()
        if value >= 0 { return .success(value) }
        let code: Int32 = value < -1 && value > -4096 ? Int32(-value) : (errno != 0 ? errno : EIO)
        return .failure(failure(operation, code))
    }

    /// −1 + errno: 0 (or any non-negative value) on success; −1 with `errno` set on failure.
    @inline(__always)
    static func minusOneErrno(_ operation: StaticString, _ call: () -> Int32) -> Result<Int32, RDMAError> {
        errno = 0
        let value = call()
        if value >= 0 { return .success(value) }
        return .failure(failure(operation, errno == 0 ? EIO : errno))
    }

    static func failure(_ operation: StaticString, _ code: Int32) -> RDMAError {
        precondition(code != EFAULT && code != EBADF,
                     "\(operation) returned \(RDMAError.describe(errno: code)): a programmer error (bad pointer or closed descriptor)")
        let name = "\(operation)"
        return RDMAError(operation: name, kind: .system(errno: code),
                         hint: RDMAError.hint(forOperation: name, errno: code))
    }
}
