/* malloc_counter: an LD_PRELOAD interposer that counts heap calls of the whole process.
 *
 * The counters live in a file-backed MAP_SHARED mapping (path in MALLOC_COUNTER_FILE), so the test
 * reads them at any moment without the process's cooperation. Layout: 10 little-endian uint64 in
 * the order of `enum slot` below. Adds are relaxed atomics: readers only need totals, not order.
 *
 * Built by test_allocations.py with `cc -shared -fPIC -O2 -o malloc_counter.so malloc_counter.c -ldl`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum slot { MALLOC, CALLOC, REALLOC, POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN, VALLOC, PVALLOC, FREE, BYTES, SLOTS };

/* Until the constructor maps the file (and if it cannot), counts land here and nobody reads them. */
static uint64_t early[SLOTS];
static uint64_t *counters = early;

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);

/* dlsym itself may calloc (its error state) before calloc is resolved: serve that from here. */
static _Alignas(16) char arena[4096];
static size_t arena_used;
static int resolving;

static int in_arena(const void *p) {
    return (const char *)p >= arena && (const char *)p < arena + sizeof arena;
}

static void *arena_alloc(size_t n) {
    size_t start = (arena_used + 15) & ~(size_t)15;
    if (start + n > sizeof arena) return NULL;
    arena_used = start + n;
    return memset(arena + start, 0, n);
}

static void resolve(void) {
    if (real_malloc || resolving) return;
    resolving = 1;
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = dlsym(RTLD_NEXT, "memalign");
    real_valloc = dlsym(RTLD_NEXT, "valloc");
    real_pvalloc = dlsym(RTLD_NEXT, "pvalloc");
    real_malloc = dlsym(RTLD_NEXT, "malloc");   /* last: it is the "all resolved" flag */
    resolving = 0;
}

__attribute__((constructor)) static void map_counters(void) {
    resolve();
    const char *path = getenv("MALLOC_COUNTER_FILE");
    if (!path) return;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    size_t size = sizeof(uint64_t) * SLOTS;
    if (ftruncate(fd, (off_t)size) == 0) {
        void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) counters = m;
    }
    close(fd);
}

static inline void count(enum slot s, size_t bytes) {
    __atomic_fetch_add(&counters[s], 1, __ATOMIC_RELAXED);
    if (bytes) __atomic_fetch_add(&counters[BYTES], bytes, __ATOMIC_RELAXED);
}

void *malloc(size_t n) {
    resolve();
    if (!real_malloc) return arena_alloc(n);
    count(MALLOC, n);
    return real_malloc(n);
}

void *calloc(size_t k, size_t n) {
    resolve();
    if (!real_calloc) return k && n > SIZE_MAX / k ? NULL : arena_alloc(k * n);
    count(CALLOC, k * n);
    return real_calloc(k, n);
}

void *realloc(void *p, size_t n) {
    resolve();
    if (in_arena(p)) {   /* rare: move an early block onto the real heap */
        size_t room = (size_t)(arena + sizeof arena - (char *)p);
        void *q = malloc(n);
        if (q) memcpy(q, p, n < room ? n : room);
        return q;
    }
    count(REALLOC, n);
    return real_realloc(p, n);
}

void free(void *p) {
    if (!p || in_arena(p)) return;
    resolve();
    count(FREE, 0);
    real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n) {
    resolve();
    count(POSIX_MEMALIGN, n);
    return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n) {
    resolve();
    count(ALIGNED_ALLOC, n);
    return real_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n) {
    resolve();
    count(MEMALIGN, n);
    return real_memalign(align, n);
}

void *valloc(size_t n) {
    resolve();
    count(VALLOC, n);
    return real_valloc(n);
}

void *pvalloc(size_t n) {
    resolve();
    count(PVALLOC, n);
    return real_pvalloc(n);
}
