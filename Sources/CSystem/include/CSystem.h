// Linux calls that Swift's Glibc module does not export (epoll, eventfd, malloc_trim; accept4 needs _GNU_SOURCE).
#ifndef EDGEPROXY_CSYSTEM_H
#define EDGEPROXY_CSYSTEM_H
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/inotify.h>
#include <malloc.h>

int CSystem_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
#endif
