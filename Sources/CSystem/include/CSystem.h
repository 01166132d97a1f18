// Linux calls that Swift's Glibc module does not export (epoll, eventfd, malloc_trim; accept4 needs _GNU_SOURCE).
#ifndef EDGEPROXY_CSYSTEM_H
#define EDGEPROXY_CSYSTEM_H
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/inotify.h>
#include <malloc.h>

int CSystem_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

// SCM_RIGHTS ancillary data (passing listening sockets to a new process): the CMSG_* macros.
static inline size_t CSystem_CMSG_SPACE(size_t length) { return CMSG_SPACE(length); }
static inline size_t CSystem_CMSG_LEN(size_t length) { return CMSG_LEN(length); }
static inline struct cmsghdr *CSystem_CMSG_FIRSTHDR(struct msghdr *m) { return CMSG_FIRSTHDR(m); }
static inline struct cmsghdr *CSystem_CMSG_NXTHDR(struct msghdr *m, struct cmsghdr *c) { return CMSG_NXTHDR(m, c); }
static inline unsigned char *CSystem_CMSG_DATA(struct cmsghdr *c) { return CMSG_DATA(c); }

// Per-thread pointers for what each event loop keeps to itself (its metrics shard, its copies of
// the certificate snapshot and ticket keys), so the hot path touches no line another loop writes.
// Swift cannot declare a thread-local; these inline accessors compile to one %fs-relative load.
enum { CSystem_slotMetrics = 0, CSystem_slotCertificates = 1, CSystem_slotTicketKeys = 2, CSystem_slotCount = 4 };
extern _Thread_local void *CSystem_threadSlots[CSystem_slotCount];
static inline void *CSystem_threadSlot(int slot) { return CSystem_threadSlots[slot]; }
static inline void CSystem_setThreadSlot(int slot, void *value) { CSystem_threadSlots[slot] = value; }
#endif
