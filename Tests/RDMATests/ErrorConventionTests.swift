import Glibc
import Testing
@testable import RDMA

@Suite("C return conventions and errors")
struct ErrorConventionTests {
    final class Box { var value = 0 }

    /// The errno of a failed call, nil on success.
    func failedErrno<Value>(_ result: Result<Value, RDMAError>) -> Int32? {
        if case .failure(let error) = result { return error.errno }
        return nil
    }

    @Test func nonNullPassesPointersAndTurnsNullIntoErrno() throws {
        let box = Box()
        let storage = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        defer { storage.deallocate() }
        let pointer = try CReturn.nonNull("ibv_alloc_pd") { storage }.get()
        #expect(pointer == storage)
        let failure = CReturn.nonNull("ibv_alloc_pd") { () -> UnsafeMutablePointer<Int>? in
            box.value += 1
            errno = ENOMEM
            return nil
        }
        #expect(box.value == 1)
        guard case .failure(let error) = failure else { Issue.record("expected a failure"); return }
        #expect(error.operation == "ibv_alloc_pd")
        #expect(error.kind == .system(errno: ENOMEM))
        // NULL without errno: providers do this; verbs means EINVAL then.
        let silent = CReturn.nonNull("ibv_create_ah") { () -> UnsafeMutablePointer<Int>? in nil }
        #expect(failedErrno(silent) == EINVAL)
    }

    @Test func returnedErrnoUsesTheReturnValueNotErrno() {
        #expect((try? CReturn.returnedErrno("ibv_modify_qp") { errno = EIO; return 0 }.get()) != nil)
        guard case .failure(let error) = CReturn.returnedErrno("ibv_modify_qp", { errno = 0; return EINVAL }) else {
            Issue.record("expected a failure"); return
        }
        #expect(error.errno == EINVAL)
        #expect(error.hint?.contains("GID index") == true)
        // Some providers return -errno or -1 + errno here.
        #expect(failedErrno(CReturn.returnedErrno("ibv_post_send") { -ENOMEM }) == ENOMEM)
        #expect(failedErrno(CReturn.returnedErrno("ibv_post_send") { errno = EAGAIN; return -1 }) == EAGAIN)
    }

    @Test func negativeCountCarriesErrno() {
        #expect((try? CReturn.count("ibv_poll_cq") { 3 }.get()) == 3)
        #expect(failedErrno(CReturn.count("ibv_query_gid_table") { -Int(ENODATA) }) == ENODATA)
        #expect(failedErrno(CReturn.count("ibv_poll_cq") { -1 }) == EIO)
        #expect(failedErrno(CReturn.count("ibv_poll_cq") { errno = EAGAIN; return -1 }) == EAGAIN)
    }

    @Test func minusOneReadsErrno() {
        #expect((try? CReturn.minusOneErrno("ibv_get_cq_event") { 0 }.get()) == 0)
        #expect(failedErrno(CReturn.minusOneErrno("ibv_get_cq_event") { errno = EINTR; return -1 }) == EINTR)
        #expect(failedErrno(CReturn.minusOneErrno("ibv_close_device") { errno = 0; return -1 }) == EIO)
    }

    @Test func programmerErrorsTrap() async {
        await #expect(processExitsWith: .failure) {
            _ = CReturn.returnedErrno("ibv_post_send") { EFAULT }
        }
        await #expect(processExitsWith: .failure) {
            _ = CReturn.minusOneErrno("ibv_get_cq_event") { errno = EBADF; return -1 }
        }
    }

    @Test func errorsNameOperationErrnoAndHint() {
        let error = CReturn.failure("ibv_reg_mr", ENOMEM)
        #expect(error.description.hasPrefix("ibv_reg_mr failed: Cannot allocate memory (ENOMEM)"))
        #expect(error.description.contains("ulimit -l"))
        let noDevice = RDMAError(operation: "open device x", kind: .noDevice, hint: "load rdma_rxe")
        #expect(noDevice.description == "open device x: no RDMA device — load rdma_rxe")
        #expect(RDMAError.describe(errno: 9999).contains("errno 9999"))
    }

    @Test func openingAMissingDeviceIsAClearErrorNotACrash() {
        do {
            _ = try Context(deviceNamed: "no-such-rdma-device")
            Issue.record("opening a missing device succeeded")
        } catch {
            #expect(error.kind == .noDevice)
            let hint = error.hint ?? ""
            // Without kernel RDMA support the hint says so; with it, it lists the devices.
            #expect(hint.contains("rxe"), "hint should say how to get a device: \(hint)")
        }
    }

    @Test func deviceListingReportsMissingKernelSupportClearly() {
        do {
            let devices = try Device.all()
            for device in devices { #expect(!device.name.isEmpty) }
        } catch {
            #expect(error.kind == .noDevice)
            #expect(error.description.contains("no RDMA device"))
        }
    }
}

@Suite("Ownership")
struct OwnershipTests {
    final class Recorder: @unchecked Sendable {
        var closed = [String]()
    }

    final class FakeChild: ClosableResource, @unchecked Sendable {
        let name: String
        let recorder: Recorder
        var fails: Bool
        private(set) var isClosed = false
        init(_ name: String, _ recorder: Recorder, fails: Bool = false) {
            self.name = name
            self.recorder = recorder
            self.fails = fails
        }
        func close() throws(RDMAError) {
            recorder.closed.append(name)
            if fails { throw RDMAError(operation: "close \(name)", kind: .system(errno: EBUSY)) }
            isClosed = true
        }
    }

    @Test func parentClosesLiveChildrenNewestFirstAndKeepsGoingAfterAFailure() {
        let recorder = Recorder()
        let registry = ChildRegistry()
        let first = FakeChild("first", recorder)
        let middle = FakeChild("middle", recorder, fails: true)
        var dropped: FakeChild? = FakeChild("dropped", recorder)
        let last = FakeChild("last", recorder)
        for child in [first, middle, dropped!, last] { registry.add(child) }
        dropped = nil
        #expect(throws: RDMAError.self) { try registry.closeAll() }
        #expect(recorder.closed == ["last", "middle", "first"])
        // The child that failed stays registered: the parent's retry retries it, only it.
        #expect(throws: RDMAError.self) { try registry.closeAll() }
        #expect(recorder.closed == ["last", "middle", "first", "middle"])
        middle.fails = false
        #expect(throws: Never.self) { try registry.closeAll() }
        #expect(middle.isClosed && recorder.closed.count == 5)
        #expect(throws: Never.self) { try registry.closeAll() }   // nothing left: idempotent
        #expect(recorder.closed.count == 5)
    }
}
