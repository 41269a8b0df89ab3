// udp-floor: what the socket layer of this machine can do on loopback — the floor any
// UDP-based RoCEv2 engine stands on. Built and run by tools/bench-floor.
//
//   udp-floor pingpong N          2-byte busy-polling ping-pong 127.0.0.1 <-> 127.0.0.2
//                                 (MSG_DONTWAIT recv in a loop, no poll/epoll); prints the
//                                 half round trip p50/p99 in microseconds.
//   udp-floor bandwidth MODE SECS  one sender thread, one receiver thread, 4096 B + 40 B of
//                                 RoCE headers per datagram, for SECS seconds; MODE is
//                                 sendto (one syscall per datagram), mmsg (sendmmsg/recvmmsg,
//                                 batches of 32) or gso (UDP_SEGMENT 15 segments per send,
//                                 UDP_GRO on receive); prints payload GB/s and datagrams/s.
//   udp-floor rate SECS           64 B + 40 B datagrams with sendmmsg/recvmmsg batches of 32;
//                                 prints datagrams/s (the message-rate floor).
// Every loop is bounded in time; the receiver stops when the sender says so.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int bound_socket(const char *address, int port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) { perror("socket"); exit(2); }
    int size = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, address, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) { perror("bind"); exit(2); }
    return fd;
}

static struct sockaddr_in endpoint(const char *address, int port) {
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, address, &sa.sin_addr);
    return sa;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// ---- ping-pong ----
static int pong_fd;
static atomic_int pong_stop;
static void *ponger(void *unused) {
    (void)unused;
    char buffer[64];
    struct sockaddr_in from;
    socklen_t length = sizeof from;
    while (!atomic_load_explicit(&pong_stop, memory_order_relaxed)) {
        ssize_t n = recvfrom(pong_fd, buffer, sizeof buffer, MSG_DONTWAIT, (struct sockaddr *)&from, &length);
        if (n > 0) sendto(pong_fd, buffer, n, 0, (struct sockaddr *)&from, length);
    }
    return NULL;
}

static int pingpong(long iterations) {
    int port = 21000 + getpid() % 2000;
    int ping = bound_socket("127.0.0.1", port);
    pong_fd = bound_socket("127.0.0.2", port);
    pthread_t thread;
    pthread_create(&thread, NULL, ponger, NULL);
    struct sockaddr_in peer = endpoint("127.0.0.2", port);
    long warmup = iterations / 10 + 100, total = warmup + iterations;
    double *samples = calloc(iterations, sizeof *samples);
    char buffer[64] = "hi";
    double deadline = now() + 60;
    for (long i = 0; i < total && now() < deadline; i++) {
        double start = now();
        sendto(ping, buffer, 2, 0, (struct sockaddr *)&peer, sizeof peer);
        while (recv(ping, buffer, sizeof buffer, MSG_DONTWAIT) < 0 && now() < deadline) {}
        if (i >= warmup) samples[i - warmup] = (now() - start) / 2 * 1e6;
    }
    atomic_store(&pong_stop, 1);
    pthread_join(thread, NULL);
    qsort(samples, iterations, sizeof *samples, compare);
    printf("udp busy-poll ping-pong 2 B: half-RTT us p50 %.3f p99 %.3f min %.3f (%ld iterations)\n",
           samples[iterations / 2], samples[iterations * 99 / 100], samples[0], iterations);
    return 0;
}

// ---- bandwidth and rate ----
enum mode { MODE_SENDTO, MODE_MMSG, MODE_GSO };
struct flow {
    enum mode mode;
    int payload;          // bytes of payload per datagram (plus 40 of RoCE headers)
    double seconds;
    int sender, receiver;
    struct sockaddr_in destination;
    atomic_int done;
    long long received_datagrams, received_bytes;
};

#define BATCH 32
#define SEGMENTS 15   // 15 × (4096 + 40) B stays under the 65,507-byte UDP limit

static void *receiver(void *argument) {
    struct flow *flow = argument;
    int size = flow->payload + 40;
    if (flow->mode == MODE_GSO) { int on = 1; setsockopt(flow->receiver, IPPROTO_UDP, UDP_GRO, &on, sizeof on); }
    static char buffers[BATCH][65536];
    struct mmsghdr messages[BATCH];
    struct iovec vectors[BATCH];
    for (int i = 0; i < BATCH; i++) {
        vectors[i] = (struct iovec){ buffers[i], sizeof buffers[i] };
        messages[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &vectors[i], .msg_iovlen = 1 } };
    }
    while (!atomic_load(&flow->done)) {
        int n = recvmmsg(flow->receiver, messages, BATCH, MSG_DONTWAIT, NULL);
        for (int i = 0; i < n; i++) {
            long long bytes = messages[i].msg_len;
            flow->received_bytes += bytes;
            flow->received_datagrams += (bytes + size - 1) / size;   // a GRO'd datagram holds several
        }
    }
    return NULL;
}

static void run_flow(struct flow *flow, const char *label) {
    int size = flow->payload + 40;
    pthread_t thread;
    pthread_create(&thread, NULL, receiver, flow);
    static char data[SEGMENTS * 4200];
    memset(data, 0x5A, sizeof data);
    struct mmsghdr messages[BATCH];
    struct iovec vectors[BATCH];
    for (int i = 0; i < BATCH; i++) {
        vectors[i] = (struct iovec){ data, size };
        messages[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &flow->destination, .msg_namelen = sizeof flow->destination,
                                                     .msg_iov = &vectors[i], .msg_iovlen = 1 } };
    }
    if (flow->mode == MODE_GSO) { int segment = size; setsockopt(flow->sender, IPPROTO_UDP, UDP_SEGMENT, &segment, sizeof segment); }
    double start = now(), end = start + flow->seconds;
    long long sent = 0;
    while (now() < end) {
        switch (flow->mode) {
        case MODE_SENDTO:
            if (sendto(flow->sender, data, size, 0, (struct sockaddr *)&flow->destination, sizeof flow->destination) > 0) sent++;
            break;
        case MODE_MMSG: {
            int n = sendmmsg(flow->sender, messages, BATCH, 0);
            if (n > 0) sent += n;
            break;
        }
        case MODE_GSO:
            if (sendto(flow->sender, data, (size_t)size * SEGMENTS, 0, (struct sockaddr *)&flow->destination, sizeof flow->destination) > 0) sent += SEGMENTS;
            break;
        }
    }
    double elapsed = now() - start;
    usleep(20000);   // let the receiver drain what is queued
    atomic_store(&flow->done, 1);
    pthread_join(thread, NULL);
    double datagrams = flow->received_datagrams / elapsed;
    printf("%s: %.3f GB/s payload, %.0f datagrams/s received (%lld sent, %lld received)\n",
           label, datagrams * flow->payload / 1e9, datagrams, sent, flow->received_datagrams);
}

static int bandwidth(const char *mode, double seconds, int payload) {
    int port = 23000 + getpid() % 2000;
    struct flow flow = { .payload = payload, .seconds = seconds };
    flow.mode = !strcmp(mode, "sendto") ? MODE_SENDTO : !strcmp(mode, "mmsg") ? MODE_MMSG : !strcmp(mode, "gso") ? MODE_GSO : -1;
    if ((int)flow.mode < 0) { fprintf(stderr, "udp-floor: mode is sendto, mmsg or gso\n"); return 2; }
    flow.sender = bound_socket("127.0.0.1", port);
    flow.receiver = bound_socket("127.0.0.2", port);
    flow.destination = endpoint("127.0.0.2", port);
    char label[96];
    snprintf(label, sizeof label, "udp %s %d B + 40 B", mode, payload);
    run_flow(&flow, label);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "pingpong")) return pingpong(atol(argv[2]) > 0 ? atol(argv[2]) : 20000);
    if (argc >= 4 && !strcmp(argv[1], "bandwidth")) return bandwidth(argv[2], atof(argv[3]) > 0 ? atof(argv[3]) : 2, 4096);
    if (argc >= 3 && !strcmp(argv[1], "rate")) return bandwidth("mmsg", atof(argv[2]) > 0 ? atof(argv[2]) : 2, 64);
    fprintf(stderr, "usage: udp-floor pingpong N | bandwidth sendto|mmsg|gso SECONDS | rate SECONDS\n");
    return 2;
}
