// LD_PRELOAD shim: counts malloc/calloc/realloc/posix_memalign/aligned_alloc calls process-wide,
// and the blocks and bytes still allocated (what a leak grows, whatever RSS does).
// The program reads them with dlsym(RTLD_DEFAULT, "malloc_count_total"), "malloc_count_live_blocks"
// and "malloc_count_live_bytes".
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

static _Atomic uint64_t count;
static _Atomic int64_t live_blocks, live_bytes;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

uint64_t malloc_count_total(void) { return atomic_load(&count); }
int64_t malloc_count_live_blocks(void) { return atomic_load(&live_blocks); }
int64_t malloc_count_live_bytes(void) { return atomic_load(&live_bytes); }

// Usable size, not the size asked for: what free() will give back is what was counted.
static void *gained(void *p) {
    if (p) { atomic_fetch_add(&live_blocks, 1); atomic_fetch_add(&live_bytes, (int64_t)malloc_usable_size(p)); }
    return p;
}
static void lost(void *p) {
    if (p) { atomic_fetch_sub(&live_blocks, 1); atomic_fetch_sub(&live_bytes, (int64_t)malloc_usable_size(p)); }
}

void *malloc(size_t n) { atomic_fetch_add(&count, 1); return gained(__libc_malloc(n)); }
void *calloc(size_t a, size_t b) { atomic_fetch_add(&count, 1); return gained(__libc_calloc(a, b)); }
void free(void *p) { lost(p); __libc_free(p); }
void *realloc(void *p, size_t n) {
    atomic_fetch_add(&count, 1);
    size_t before = p ? malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, n);
    if (!p) return gained(q);
    if (!q) {
        if (n == 0) { atomic_fetch_sub(&live_blocks, 1); atomic_fetch_sub(&live_bytes, (int64_t)before); }
        return q;   // a failed realloc leaves the old block allocated
    }
    atomic_fetch_add(&live_bytes, (int64_t)malloc_usable_size(q) - (int64_t)before);
    return q;
}
int posix_memalign(void **out, size_t alignment, size_t n) {
    atomic_fetch_add(&count, 1);
    void *p = __libc_memalign(alignment, n);
    if (!p) return 12;
    *out = gained(p);
    return 0;
}
void *aligned_alloc(size_t alignment, size_t n) { atomic_fetch_add(&count, 1); return gained(__libc_memalign(alignment, n)); }
void *memalign(size_t alignment, size_t n) { atomic_fetch_add(&count, 1); return gained(__libc_memalign(alignment, n)); }

// With MALLOC_COUNT_REPORT set, print the total at exit, so a program that does not read
// the counter itself (rdma-pingpong, rdma-throughput) can still be measured from outside.
#include <stdio.h>
#include <stdlib.h>
__attribute__((destructor)) static void report_malloc_count(void) {
    if (getenv("MALLOC_COUNT_REPORT")) fprintf(stderr, "malloc_count_total=%llu\n", (unsigned long long)atomic_load(&count));
}
