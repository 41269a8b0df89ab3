// The batched socket calls glibc declares only under _GNU_SOURCE, which Swift's Glibc module
// is not built with. Each wrapper is a pure pass-through, so its Swift caller's doc comment
// can name the C call.
#ifndef CSOCKETBATCH_H
#define CSOCKETBATCH_H

#include <sys/socket.h>

/// `struct mmsghdr` under another name (its layout is checked against glibc's in the .c file).
struct csocketbatch_message {
    struct msghdr header;
    unsigned int length;
};

/// `recvmmsg(fd, messages, count, flags, NULL)`.
int csocketbatch_recvmmsg(int fd, struct csocketbatch_message *messages, unsigned int count, int flags);

/// `sendmmsg(fd, messages, count, flags)`.
int csocketbatch_sendmmsg(int fd, struct csocketbatch_message *messages, unsigned int count, int flags);

#endif
