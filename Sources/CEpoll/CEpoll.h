// epoll and eventfd for Swift: Glibc's module map leaves out <sys/epoll.h> and
// <sys/eventfd.h>. Nothing else belongs here.
#ifndef CEPOLL_H
#define CEPOLL_H
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif
