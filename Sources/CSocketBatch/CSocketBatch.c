#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>
#include "CSocketBatch.h"

_Static_assert(sizeof(struct csocketbatch_message) == sizeof(struct mmsghdr), "mmsghdr layout");
_Static_assert(offsetof(struct csocketbatch_message, length) == offsetof(struct mmsghdr, msg_len), "mmsghdr layout");

int csocketbatch_recvmmsg(int fd, struct csocketbatch_message *messages, unsigned int count, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)messages, count, flags, NULL);
}

int csocketbatch_sendmmsg(int fd, struct csocketbatch_message *messages, unsigned int count, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)messages, count, flags);
}
