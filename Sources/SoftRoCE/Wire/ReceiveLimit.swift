/// How many datagrams the next receive call asks for. A `recvmmsg(2)` given room for 64 (or
/// the `recvmsg` loop) tries the socket again after each datagram it takes, so a busy-polling
/// ping-pong's lone datagram cost a second, empty try in every call (2 B ping-pong half round
/// trip +0.2 µs in a C model of the engine's loop, room for 64 against 1).
///
/// The rule: a call right after an empty one (the thread is polling an idle socket) asks for
/// one datagram; any other asks for the batch's capacity. A ping-pong's request, an RPC's
/// reply, costs one try; a burst that arrives while polling costs one call more (its first
/// datagram alone), a stream none, since its calls follow calls that received.
struct ReceiveLimit {
    /// The call before received nothing.
    private var previousEmpty = false

    /// The most datagrams the next call asks for, given the batch's `capacity`.
    func next(capacity: Int) -> Int { previousEmpty ? 1 : capacity }

    /// Takes the outcome of a call.
    mutating func record(received: Int) { previousEmpty = received == 0 }
}
