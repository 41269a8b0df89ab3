// epoll for Swift: Glibc's module map leaves out <sys/epoll.h>. Nothing else belongs here.
#ifndef CEPOLL_H
#define CEPOLL_H
#include <sys/epoll.h>
#endif
