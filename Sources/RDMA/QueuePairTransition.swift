/// The rules of `ibv_modify_qp`: which state changes exist, and which attributes each one
/// requires and allows per transport (IBTA Vol 1 §11.2.5; the same table the kernel checks
/// in `ib_modify_qp_is_ok`). Checked before the C call so that a mistake is reported as
/// "INIT→RTR on RC needs pathMTU, receivePSN" instead of EINVAL.
///
/// ```swift
/// let needed = QueuePairTransition.requiredAttributes(kind: .reliableConnected,
///                                                     from: .initialized, to: .readyToReceive)
/// ```
public enum QueuePairTransition {
    typealias Name = QueuePairAttributes.Name

    /// What `from → to` requires on a QP of `kind`; nil when the transition does not exist.
    public static func requiredAttributes(kind: QueuePairKind, from: QueuePairState,
                                          to: QueuePairState) -> Set<QueuePairAttributes.Name>? {
        rule(kind: kind, from: from, to: to)?.required
    }

    /// What `from → to` additionally accepts on a QP of `kind`.
    public static func optionalAttributes(kind: QueuePairKind, from: QueuePairState,
                                          to: QueuePairState) -> Set<QueuePairAttributes.Name> {
        rule(kind: kind, from: from, to: to)?.optional ?? []
    }

    private static func rule(kind: QueuePairKind, from: QueuePairState,
                             to: QueuePairState) -> (required: Set<Name>, optional: Set<Name>)? {
        let ud = kind == .unreliableDatagram, rc = kind == .reliableConnected
        switch (from, to) {
        case (_, .reset), (_, .error):
            return ([], [])
        case (.reset, .initialized):
            return (ud ? [.pkeyIndex, .port, .qkey] : [.pkeyIndex, .port, .access], [])
        case (.initialized, .initialized):
            return ([], ud ? [.pkeyIndex, .port, .qkey] : [.pkeyIndex, .port, .access])
        case (.initialized, .readyToReceive):
            if ud { return ([], [.pkeyIndex, .qkey]) }
            let connected: Set<Name> = [.addressVector, .pathMTU, .destinationQueuePairNumber, .receivePSN]
            return rc ? (connected.union([.maxDestinationReadAtomic, .minRNRTimer]), [.access, .pkeyIndex])
                      : (connected, [.access, .pkeyIndex])
        case (.readyToReceive, .readyToSend):
            if ud { return ([.sendPSN], [.qkey]) }
            return rc ? ([.sendPSN, .timeout, .retryCount, .rnrRetry, .maxReadAtomic], [.access, .minRNRTimer])
                      : ([.sendPSN], [.access])
        case (.readyToSend, .readyToSend), (.sendQueueDrained, .readyToSend):
            if ud { return ([], [.qkey]) }
            return rc ? ([], [.access, .minRNRTimer]) : ([], [.access])
        case (.sendQueueError, .readyToSend):
            return ([], ud ? [.qkey] : [.access])
        case (.readyToSend, .sendQueueDrained):
            return ([], [])
        case (.sendQueueDrained, .sendQueueDrained):
            if ud { return ([], [.pkeyIndex, .qkey]) }
            return rc ? ([], [.access, .addressVector, .pkeyIndex, .port, .timeout, .retryCount, .rnrRetry,
                              .maxReadAtomic, .maxDestinationReadAtomic, .minRNRTimer])
                      : ([], [.access, .addressVector, .pkeyIndex, .port])
        default:
            return nil
        }
    }

    /// Throws `.invalidArgument` naming every problem: a transition that does not exist,
    /// missing and disallowed attributes, out-of-range values.
    public static func validate(kind: QueuePairKind, from: QueuePairState,
                                attributes: QueuePairAttributes) throws(RDMAError) {
        let to = attributes.targetState
        let operation = "QueuePair.modify(\(from)→\(to)) on \(kind)"
        guard let rule = rule(kind: kind, from: from, to: to) else {
            throw RDMAError(operation: operation, kind: .invalidArgument,
                            hint: "a \(kind) queue pair cannot go from \(from) to \(to); the path is RESET→INIT→RTR→RTS")
        }
        var problems = [String]()
        let given = attributes.setNames
        let missing = rule.required.subtracting(given)
        if !missing.isEmpty {
            problems.append("missing " + missing.map(\.rawValue).sorted().joined(separator: ", "))
        }
        let extra = given.subtracting(rule.required).subtracting(rule.optional)
        if !extra.isEmpty {
            problems.append("not allowed in this transition: " + extra.map(\.rawValue).sorted().joined(separator: ", "))
        }
        problems += rangeProblems(attributes)
        if !problems.isEmpty {
            throw RDMAError(operation: operation, kind: .invalidArgument, hint: problems.joined(separator: "; "))
        }
    }

    private static func rangeProblems(_ attributes: QueuePairAttributes) -> [String] {
        var problems = [String]()
        func check(_ value: UInt32?, below limit: UInt32, _ name: String) {
            if let value, value >= limit { problems.append("\(name) \(value) exceeds \(limit - 1)") }
        }
        check(attributes.receivePSN, below: 1 << 24, "receivePSN")
        check(attributes.sendPSN, below: 1 << 24, "sendPSN")
        check(attributes.destinationQueuePairNumber, below: 1 << 24, "destinationQueuePairNumber")
        check(attributes.timeout.map(UInt32.init), below: 32, "timeout")
        check(attributes.minRNRTimer.map(UInt32.init), below: 32, "minRNRTimer")
        check(attributes.retryCount.map(UInt32.init), below: 8, "retryCount")
        check(attributes.rnrRetry.map(UInt32.init), below: 8, "rnrRetry")
        if attributes.port == 0 { problems.append("port numbers start at 1") }
        if let vector = attributes.addressVector, vector.port == 0 { problems.append("addressVector.port numbers start at 1") }
        return problems
    }
}
