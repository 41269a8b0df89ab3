import CIBVerbs
import Testing
@testable import RDMA

@Suite("Work requests are built straight into the C structs")
struct WorkRequestTests {
    let remote = RemoteMemory(address: 0x10_0000, rkey: 0xABCD, length: 4096)

    @Test func mirroredLayoutsMatchTheCStructs() {
        #expect(MemoryLayout<WorkCompletion>.size == MemoryLayout<ibv_wc>.size)
        #expect(MemoryLayout<WorkCompletion>.stride == MemoryLayout<ibv_wc>.stride)
        #expect(MemoryLayout<WorkCompletion>.alignment == MemoryLayout<ibv_wc>.alignment)
        #expect(MemoryLayout<ScatterGatherElement>.size == MemoryLayout<ibv_sge>.size)
    }

    @Test func chainLinksRequestsAndFillsEveryField() throws {
        let chain = SendRequestChain(capacity: 4, maxScatterGather: 2)
        try chain.append(SendWorkRequest(id: 1, operation: .sendWithImmediate(0x0102_0304), flags: [.signaled, .solicited]),
                         scatterGather: ScatterGatherElement(address: 0x1000, length: 64, lkey: 7))
        try chain.append(SendWorkRequest(id: 2, operation: .write(remote), flags: []),
                         scatterGather: ScatterGatherElement(address: 0x2000, length: 4096, lkey: 7))
        let pair = [ScatterGatherElement(address: 0x3000, length: 8, lkey: 9), ScatterGatherElement(address: 0x4000, length: 16, lkey: 9)]
        try pair.withUnsafeBufferPointer { elements in
            try chain.append(SendWorkRequest(id: 3, operation: .read(remote)), scatterGather: elements)
        }
        try chain.append(SendWorkRequest(id: 4, operation: .compareAndSwap(remote.slice(offset: 8, length: 8), compare: 5, swap: 9)),
                         scatterGather: ScatterGatherElement(address: 0x5000, length: 8, lkey: 7))
        #expect(chain.count == 4)

        let first = chain.requests[0]
        #expect(first.wr_id == 1)
        #expect(first.opcode == IBV_WR_SEND_WITH_IMM)
        #expect(first.imm_data == UInt32(0x0102_0304).bigEndian)
        #expect(first.send_flags == IBV_SEND_SIGNALED.rawValue | IBV_SEND_SOLICITED.rawValue)
        #expect(first.next == chain.requests + 1)
        #expect(first.num_sge == 1 && first.sg_list.pointee.addr == 0x1000 && first.sg_list.pointee.lkey == 7)

        let second = chain.requests[1]
        #expect(second.opcode == IBV_WR_RDMA_WRITE && second.send_flags == 0)
        #expect(second.wr.rdma.remote_addr == 0x10_0000 && second.wr.rdma.rkey == 0xABCD)

        let third = chain.requests[2]
        #expect(third.num_sge == 2)
        #expect(third.sg_list[1].addr == 0x4000 && third.sg_list[1].length == 16)

        let fourth = chain.requests[3]
        #expect(fourth.opcode == IBV_WR_ATOMIC_CMP_AND_SWP)
        #expect(fourth.wr.atomic.remote_addr == 0x10_0008)
        #expect(fourth.wr.atomic.compare_add == 5 && fourth.wr.atomic.swap == 9)
        #expect(fourth.next == nil)
    }

    @Test func chainIsReusableAndBounded() throws {
        let chain = SendRequestChain(capacity: 2)
        let element = ScatterGatherElement(address: 0x1000, length: 8, lkey: 1)
        try chain.append(SendWorkRequest(id: 1), scatterGather: element)
        try chain.append(SendWorkRequest(id: 2), scatterGather: element)
        #expect(throws: RDMAError.self) { try chain.append(SendWorkRequest(id: 3), scatterGather: element) }
        chain.removeAll()
        #expect(chain.count == 0)
        try chain.append(SendWorkRequest(id: 9))
        #expect(chain.requests[0].wr_id == 9 && chain.requests[0].num_sge == 0 && chain.requests[0].next == nil)
        let three = [element, element, element]
        #expect(throws: RDMAError.self) {
            try three.withUnsafeBufferPointer { try chain.append(SendWorkRequest(id: 4), scatterGather: $0) }
        }
    }

    @Test func mistakesThatWouldOnlyShowAsCompletionErrorsAreCaughtAtBuildTime() {
        let chain = SendRequestChain(capacity: 8)
        let big = ScatterGatherElement(address: 0x1000, length: 8192, lkey: 1)
        #expect(throws: RDMAError.self) { try chain.append(SendWorkRequest(id: 1, operation: .write(remote)), scatterGather: big) }
        let eight = ScatterGatherElement(address: 0x1000, length: 8, lkey: 1)
        #expect(throws: RDMAError.self) {   // misaligned
            try chain.append(SendWorkRequest(id: 2, operation: .fetchAndAdd(remote.slice(offset: 4, length: 8), add: 1)), scatterGather: eight)
        }
        #expect(throws: RDMAError.self) {   // local buffer is not 8 bytes
            try chain.append(SendWorkRequest(id: 3, operation: .fetchAndAdd(remote, add: 1)), scatterGather: big)
        }
        #expect(chain.count == 0)
    }

    @Test func receiveChainLinksRequests() throws {
        let chain = ReceiveRequestChain(capacity: 3)
        for index in 0..<3 {
            try chain.append(id: UInt64(index), scatterGather: ScatterGatherElement(address: UInt64(index) * 4096, length: 4096, lkey: 3))
        }
        #expect(throws: RDMAError.self) { try chain.append(id: 4, scatterGather: ScatterGatherElement(address: 0, length: 1, lkey: 3)) }
        #expect(chain.requests[0].next == chain.requests + 1)
        #expect(chain.requests[2].next == nil)
        #expect(chain.requests[2].sg_list.pointee.addr == 8192)
        chain.removeAll()
        #expect(chain.count == 0)
    }

    @Test func completionsDecodeTheCStruct() {
        var raw = ibv_wc()
        raw.wr_id = 42
        raw.status = IBV_WC_SUCCESS
        raw.opcode = IBV_WC_RECV_RDMA_WITH_IMM
        raw.byte_len = 100
        raw.wc_flags = IBV_WC_WITH_IMM.rawValue | IBV_WC_GRH.rawValue
        raw.imm_data = UInt32(0xCAFE_F00D).bigEndian
        let completion = WorkCompletion(raw: raw)
        #expect(completion.id == 42 && completion.status == .success && completion.byteLength == 100)
        #expect(completion.opcode == .receiveRDMAWriteWithImmediate && completion.opcode.isReceive)
        #expect(completion.immediateData == 0xCAFE_F00D)
        #expect(completion.hasGlobalRouteHeader)
        raw.wc_flags = 0
        #expect(WorkCompletion(raw: raw).immediateData == nil)
    }

    @Test func everyStatusMatchesItsCValueAndExplainsItself() {
        #expect(WorkCompletion.Status.allCases.count == 24)
        for status in WorkCompletion.Status.allCases {
            let cName = String(cString: ibv_wc_status_str(ibv_wc_status(rawValue: status.rawValue)))
            #expect(!cName.isEmpty)
            #expect(!status.explanation.isEmpty)
        }
        #expect(WorkCompletion.Status.retryExceeded.rawValue == IBV_WC_RETRY_EXC_ERR.rawValue)
        #expect(WorkCompletion.Status.flushed.rawValue == IBV_WC_WR_FLUSH_ERR.rawValue)
        let retry = WorkCompletion.Status.retryExceeded.description
        #expect(retry.hasPrefix("RETRY_EXC_ERR"))
        #expect(retry.contains("GID index") && retry.contains("4791"))
        #expect(WorkCompletion.Status.receiverNotReadyRetryExceeded.description.contains("post receives"))
        var raw = ibv_wc()
        raw.status = ibv_wc_status(rawValue: 77)
        #expect(WorkCompletion(raw: raw).status == .general)
    }
}
