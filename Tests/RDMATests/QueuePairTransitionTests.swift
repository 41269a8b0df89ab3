import CIBVerbs
import Testing
@testable import RDMA

@Suite("Queue pair transitions are validated before the C call")
struct QueuePairTransitionTests {
    func attributes(_ state: QueuePairState, _ configure: (inout QueuePairAttributes) -> Void) -> QueuePairAttributes {
        var value = QueuePairAttributes(targetState: state)
        configure(&value)
        return value
    }

    var rcInit: QueuePairAttributes {
        attributes(.initialized) { $0.port = 1; $0.pkeyIndex = 0; $0.access = [.remoteWrite] }
    }

    var rcReadyToReceive: QueuePairAttributes {
        attributes(.readyToReceive) {
            $0.pathMTU = .mtu1024
            $0.addressVector = AddressVector(destinationGID: GID("::ffff:10.0.0.2")!, sourceGIDIndex: 1)
            $0.destinationQueuePairNumber = 0x11
            $0.receivePSN = 0
            $0.maxDestinationReadAtomic = 1
            $0.minRNRTimer = 12
        }
    }

    var rcReadyToSend: QueuePairAttributes {
        attributes(.readyToSend) { $0.sendPSN = 0; $0.timeout = 14; $0.retryCount = 7; $0.rnrRetry = 7; $0.maxReadAtomic = 1 }
    }

    @Test func theCompleteRCPathValidates() throws {
        try QueuePairTransition.validate(kind: .reliableConnected, from: .reset, attributes: rcInit)
        try QueuePairTransition.validate(kind: .reliableConnected, from: .initialized, attributes: rcReadyToReceive)
        try QueuePairTransition.validate(kind: .reliableConnected, from: .readyToReceive, attributes: rcReadyToSend)
        try QueuePairTransition.validate(kind: .reliableConnected, from: .readyToSend, attributes: .init(targetState: .error))
        try QueuePairTransition.validate(kind: .reliableConnected, from: .error, attributes: .init(targetState: .reset))
    }

    @Test func missingAttributesAreNamed() {
        var partial = rcReadyToReceive
        partial.pathMTU = nil
        partial.receivePSN = nil
        do {
            try QueuePairTransition.validate(kind: .reliableConnected, from: .initialized, attributes: partial)
            Issue.record("validation passed without pathMTU and receivePSN")
        } catch {
            #expect(error.kind == .invalidArgument)
            #expect(error.operation == "QueuePair.modify(INIT→RTR) on RC")
            #expect(error.hint == "missing pathMTU, receivePSN")
        }
    }

    @Test func attributesNotAllowedInTheTransitionAreNamed() {
        var extra = rcInit
        extra.pathMTU = .mtu1024
        extra.qkey = 7
        do {
            try QueuePairTransition.validate(kind: .reliableConnected, from: .reset, attributes: extra)
            Issue.record("validation passed with pathMTU on RESET→INIT")
        } catch {
            #expect(error.hint == "not allowed in this transition: pathMTU, qkey")
        }
    }

    @Test func transitionsThatDoNotExistAreRejected() {
        #expect(QueuePairTransition.requiredAttributes(kind: .reliableConnected, from: .reset, to: .readyToSend) == nil)
        do {
            try QueuePairTransition.validate(kind: .reliableConnected, from: .reset, attributes: rcReadyToSend)
            Issue.record("RESET→RTS accepted")
        } catch {
            #expect(error.hint?.contains("cannot go from RESET to RTS") == true)
        }
    }

    @Test func outOfRangeValuesAreRejected() {
        var wide = rcReadyToSend
        wide.sendPSN = 1 << 24
        wide.retryCount = 8
        wide.timeout = 32
        do {
            try QueuePairTransition.validate(kind: .reliableConnected, from: .readyToReceive, attributes: wide)
            Issue.record("out-of-range values accepted")
        } catch {
            let hint = error.hint ?? ""
            #expect(hint.contains("sendPSN 16777216 exceeds 16777215"))
            #expect(hint.contains("retryCount 8 exceeds 7"))
            #expect(hint.contains("timeout 32 exceeds 31"))
        }
        var portZero = rcInit
        portZero.port = 0
        #expect(throws: RDMAError.self) {
            try QueuePairTransition.validate(kind: .reliableConnected, from: .reset, attributes: portZero)
        }
    }

    @Test func udAndUCRulesDifferFromRC() throws {
        let udInit = attributes(.initialized) { $0.port = 1; $0.pkeyIndex = 0; $0.qkey = 0x1111_1111 }
        try QueuePairTransition.validate(kind: .unreliableDatagram, from: .reset, attributes: udInit)
        try QueuePairTransition.validate(kind: .unreliableDatagram, from: .initialized, attributes: .init(targetState: .readyToReceive))
        #expect(throws: RDMAError.self) {   // UD needs a qkey, not access flags
            try QueuePairTransition.validate(kind: .unreliableDatagram, from: .reset, attributes: self.rcInit)
        }
        // UC: no read/atomic or RNR attributes.
        var ucReady = rcReadyToReceive
        #expect(throws: RDMAError.self) {
            try QueuePairTransition.validate(kind: .unreliableConnected, from: .initialized, attributes: ucReady)
        }
        ucReady.maxDestinationReadAtomic = nil
        ucReady.minRNRTimer = nil
        try QueuePairTransition.validate(kind: .unreliableConnected, from: .initialized, attributes: ucReady)
        #expect(QueuePairTransition.requiredAttributes(kind: .unreliableConnected, from: .readyToReceive, to: .readyToSend) == [.sendPSN])
    }

    @Test func attributesBuildTheMaskAndStruct() {
        let (raw, mask) = rcReadyToReceive.verbs
        let expected = IBV_QP_STATE.rawValue | IBV_QP_AV.rawValue | IBV_QP_PATH_MTU.rawValue | IBV_QP_DEST_QPN.rawValue
            | IBV_QP_RQ_PSN.rawValue | IBV_QP_MAX_DEST_RD_ATOMIC.rawValue | IBV_QP_MIN_RNR_TIMER.rawValue
        #expect(UInt32(bitPattern: mask) == expected)
        #expect(raw.qp_state == IBV_QPS_RTR)
        #expect(raw.path_mtu == IBV_MTU_1024)
        #expect(raw.dest_qp_num == 0x11)
        #expect(raw.ah_attr.is_global == 1)
        #expect(raw.ah_attr.grh.sgid_index == 1)
        #expect(raw.ah_attr.port_num == 1)
        #expect(withUnsafeBytes(of: raw.ah_attr.grh.dgid.raw) { Array($0) } == GID("::ffff:10.0.0.2")!.byteArray)
    }
}
