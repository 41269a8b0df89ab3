import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import FabricMonitor

/// Serves `GET /metrics` in the Prometheus text format (version 0.0.4), or OpenMetrics 1.0.0
/// when the scraper's Accept header prefers it (``OpenMetricsText``), over HTTP/1.1 with
/// swift-nio, from a swift-prometheus registry. Anything else is 404; methods other than GET
/// and HEAD are 405.
///
/// ```swift
/// let server = try MetricsHTTPServer.start(host: "127.0.0.1", port: 9879, registry: exporter.registry)
/// defer { server.close() }
/// ```
public final class MetricsHTTPServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    /// The port actually bound (useful with port 0).
    public let port: Int
    public let host: String

    private init(group: MultiThreadedEventLoopGroup, channel: any Channel, host: String, port: Int) {
        self.group = group
        self.channel = channel
        self.host = host
        self.port = port
    }

    /// Binds and starts serving on one event-loop thread. A port in use or an address that is
    /// not this machine's is a ``MonitorError`` naming HOST:PORT.
    public static func start(host: String, port: Int, registry: PrometheusCollectorRegistry) throws(MonitorError) -> MetricsHTTPServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry))
                }
            }
        do {
            let channel = try bootstrap.bind(host: host, port: port).wait()
            return MetricsHTTPServer(group: group, channel: channel, host: host, port: channel.localAddress?.port ?? port)
        } catch {
            try? group.syncShutdownGracefully()
            let reason: String
            if let io = error as? IOError, io.errnoCode == EADDRINUSE {
                reason = "the port is in use (another exporter, or an earlier rdma-monitor still running?); pick another with --prometheus HOST:PORT"
            } else if let io = error as? IOError, io.errnoCode == EADDRNOTAVAIL {
                reason = "the address is not one of this machine's"
            } else {
                reason = "\(error)"
            }
            throw MonitorError("listen on \(host):\(port)", reason)
        }
    }

    /// Idempotent.
    public func close() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private var head: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead): head = requestHead
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let status: HTTPResponseStatus
        let body: String
        var contentType = "text/plain; charset=utf-8"
        switch (head.method, path) {
        case (.GET, "/metrics"), (.HEAD, "/metrics"):
            status = .ok
            if OpenMetricsText.isPreferred(byAccept: head.headers["Accept"].joined(separator: ",")) {
                body = OpenMetricsText.convert(registry.emitToString())
                contentType = OpenMetricsText.contentType
            } else {
                body = registry.emitToString()
                contentType = "text/plain; version=0.0.4; charset=utf-8"
            }
        case (.GET, "/"), (.HEAD, "/"):
            status = .ok
            body = "rdma-monitor: metrics at /metrics\n"
        case (.GET, _), (.HEAD, _):
            status = .notFound
            body = "not found: \(path) (metrics are at /metrics)\n"
        default:
            status = .methodNotAllowed
            body = "only GET and HEAD\n"
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        let done = context.eventLoop.makePromise(of: Void.self)
        if !keepAlive {
            let channel = context.channel
            done.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
    }
}
