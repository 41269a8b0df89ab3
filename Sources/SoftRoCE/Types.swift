// The value types the soft engine speaks. Numeric codes (access bits, completion status,
// completion opcode) are the verbs values, so the RDMA module translates by copying.

/// What a memory region or queue pair allows. Same bits as `IBV_ACCESS_*`.
package struct SoftAccess: OptionSet, Hashable, Sendable {
    package let rawValue: Int32
    package init(rawValue: Int32) { self.rawValue = rawValue }
    package static let localWrite = SoftAccess(rawValue: 1)
    package static let remoteWrite = SoftAccess(rawValue: 2)
    package static let remoteRead = SoftAccess(rawValue: 4)
    package static let remoteAtomic = SoftAccess(rawValue: 8)
}

package enum SoftQueuePairType: Sendable, Equatable {
    case reliableConnected, unreliableDatagram
}

/// The verbs QP states (same order as `enum ibv_qp_state`).
package enum SoftQueuePairState: UInt32, Sendable, Equatable {
    case reset = 0, initialized, readyToReceive, readyToSend, sendQueueDrained, sendQueueError, error
}

/// The verbs work-completion status codes (`enum ibv_wc_status`).
package enum SoftCompletionStatus: UInt32, Sendable, Equatable {
    case success = 0, localLengthError = 1, localQueuePairOperationError = 2, localProtectionError = 4,
         flushed = 5, badResponse = 7, localAccessError = 8, remoteInvalidRequest = 9,
         remoteAccessError = 10, remoteOperationError = 11, retryExceeded = 12,
         receiverNotReadyRetryExceeded = 13, general = 21
}

/// The verbs work-completion opcodes (`enum ibv_wc_opcode`).
package enum SoftCompletionOpcode: UInt32, Sendable, Equatable {
    case send = 0, rdmaWrite = 1, rdmaRead = 2, compareAndSwap = 3, fetchAndAdd = 4
    case receive = 128, receiveRDMAWriteWithImmediate = 129
}

/// What a send work request does.
package enum SoftSendOpcode: UInt8, Sendable, Equatable {
    case send, sendWithImmediate, write, writeWithImmediate, read, compareAndSwap, fetchAndAdd

    var isReadOrAtomic: Bool { self == .read || self == .compareAndSwap || self == .fetchAndAdd }
    var completionOpcode: SoftCompletionOpcode {
        switch self {
        case .send, .sendWithImmediate: .send
        case .write, .writeWithImmediate: .rdmaWrite
        case .read: .rdmaRead
        case .compareAndSwap: .compareAndSwap
        case .fetchAndAdd: .fetchAndAdd
        }
    }
}

/// One local buffer: a virtual address inside a region registered with `lkey`.
package struct SoftScatterGather: Sendable, Equatable {
    package var address: UInt64
    package var length: UInt32
    package var lkey: UInt32
    package init(address: UInt64, length: UInt32, lkey: UInt32) {
        self.address = address
        self.length = length
        self.lkey = lkey
    }
}

/// A send work request as the engine keeps it.
package struct SoftSendRequest: Sendable {
    package var id: UInt64
    package var opcode: SoftSendOpcode
    package var signaled: Bool
    package var inline: Bool
    package var solicited: Bool
    /// Immediate data in host order.
    package var immediate: UInt32
    package var remoteAddress: UInt64
    package var remoteKey: UInt32
    /// CAS: compare; FAA: add.
    package var compareAdd: UInt64
    package var swap: UInt64
    /// UD only: where to send.
    package var destination: SoftAddress?
    package var remoteQueuePairNumber: UInt32
    package var remoteQKey: UInt32

    package init(id: UInt64, opcode: SoftSendOpcode = .send, signaled: Bool = true, inline: Bool = false,
                solicited: Bool = false, immediate: UInt32 = 0, remoteAddress: UInt64 = 0, remoteKey: UInt32 = 0,
                compareAdd: UInt64 = 0, swap: UInt64 = 0, destination: SoftAddress? = nil,
                remoteQueuePairNumber: UInt32 = 0, remoteQKey: UInt32 = 0) {
        self.id = id
        self.opcode = opcode
        self.signaled = signaled
        self.inline = inline
        self.solicited = solicited
        self.immediate = immediate
        self.remoteAddress = remoteAddress
        self.remoteKey = remoteKey
        self.compareAdd = compareAdd
        self.swap = swap
        self.destination = destination
        self.remoteQueuePairNumber = remoteQueuePairNumber
        self.remoteQKey = remoteQKey
    }
}

/// A finished work request.
package struct SoftCompletion: Sendable {
    package var id: UInt64 = 0
    package var status: SoftCompletionStatus = .success
    package var opcode: SoftCompletionOpcode = .send
    package var byteLength: UInt32 = 0
    /// Host order; meaningful when `hasImmediate`.
    package var immediate: UInt32 = 0
    package var hasImmediate = false
    package var queuePairNumber: UInt32 = 0
    package var sourceQueuePairNumber: UInt32 = 0
    package var hasGlobalRouteHeader = false
    package init() {}
}

/// The attributes of one QP modification; nil = unchanged.
package struct SoftQueuePairAttributes: Sendable {
    package var state: SoftQueuePairState
    package var access: SoftAccess?
    package var qkey: UInt32?
    package var pathMTU: Int?
    package var destination: SoftAddress?
    package var destinationQueuePairNumber: UInt32?
    package var receivePSN: UInt32?
    package var minRNRTimer: UInt8?
    package var sendPSN: UInt32?
    package var timeout: UInt8?
    package var retryCount: UInt8?
    package var rnrRetry: UInt8?
    package var pkeyIndex: UInt16?
    package init(state: SoftQueuePairState) { self.state = state }
}

/// Errors of the engine's control and post paths; `errno` is what verbs would return.
package struct SoftRoCEError: Error, Sendable, CustomStringConvertible {
    package var operation: String
    package var errno: Int32
    package var message: String
    package init(_ operation: String, errno: Int32, _ message: String) {
        self.operation = operation
        self.errno = errno
        self.message = message
    }
    package var description: String { "\(operation): \(message) (errno \(errno))" }
}
