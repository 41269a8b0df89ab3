import RDMAEndpoint

/// Serves get/put requests on one endpoint until the client goes away. The store is the
/// task's own dictionary: one connection, one task, no locks.
func serveKeyValue(_ endpoint: MessageEndpoint) async -> EndpointError? {
    var store: [[UInt8]: [UInt8]] = [:]
    while true {
        let request: ReceivedMessage
        do { request = try await endpoint.receive() } catch { return error }
        let callID = request.callID
        // Decoded in place from the registered buffer, then released: the value is copied
        // once, into the store.
        let decoded = request.withUnsafeBytes { KeyValueRequest(decoding: $0) }
        request.release()
        var response: [UInt8]
        switch decoded {
        case nil:
            response = [KeyValueStatus.badRequest.rawValue]
        case let request? where request.operation == .put:
            store[request.key] = request.value
            response = [KeyValueStatus.ok.rawValue]
        case let request?:
            if let value = store[request.key] {
                response = [KeyValueStatus.ok.rawValue]
                response += value
            } else {
                response = [KeyValueStatus.notFound.rawValue]
            }
        }
        do { try await endpoint.respond(to: callID, with: response) } catch { return error }
    }
}
