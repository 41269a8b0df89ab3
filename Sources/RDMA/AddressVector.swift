import CIBVerbs

/// How to reach a remote port: on RoCE always through a global route header, addressed by
/// GID, leaving from the local GID at `sourceGIDIndex`.
///
/// ```swift
/// let path = AddressVector(destinationGID: remote.gid, sourceGIDIndex: 1, port: 1)
/// ```
/// The corresponding C type is `struct ibv_ah_attr`.
public struct AddressVector: Sendable, Equatable {
    public var destinationGID: GID
    /// The local GID table index to send from (perftest's `-x`).
    public var sourceGIDIndex: UInt8
    /// The local port, numbered from 1.
    public var port: UInt8
    /// The destination LID: 0 on RoCE.
    public var destinationLID: UInt16
    public var serviceLevel: UInt8
    /// IPv4 TTL / IPv6 hop limit of the packets.
    public var hopLimit: UInt8
    /// DSCP and ECN bits of the packets (DSCP << 2). Lossless classes are chosen by DSCP.
    public var trafficClass: UInt8
    public var flowLabel: UInt32

    public init(destinationGID: GID, sourceGIDIndex: UInt8, port: UInt8 = 1, destinationLID: UInt16 = 0,
                serviceLevel: UInt8 = 0, hopLimit: UInt8 = 64, trafficClass: UInt8 = 0, flowLabel: UInt32 = 0) {
        self.destinationGID = destinationGID
        self.sourceGIDIndex = sourceGIDIndex
        self.port = port
        self.destinationLID = destinationLID
        self.serviceLevel = serviceLevel
        self.hopLimit = hopLimit
        self.trafficClass = trafficClass
        self.flowLabel = flowLabel
    }

    var verbs: ibv_ah_attr {
        var attributes = ibv_ah_attr()
        attributes.is_global = 1
        withUnsafeMutableBytes(of: &attributes.grh.dgid.raw) { destination in
            withUnsafeBytes(of: destinationGID.bytes) { destination.copyMemory(from: $0) }
        }
        attributes.grh.sgid_index = sourceGIDIndex
        attributes.grh.hop_limit = hopLimit
        attributes.grh.traffic_class = trafficClass
        attributes.grh.flow_label = flowLabel
        attributes.dlid = destinationLID
        attributes.sl = serviceLevel
        attributes.port_num = port
        return attributes
    }
}
