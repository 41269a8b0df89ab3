// LD_PRELOAD shim: counts malloc/calloc/realloc/posix_memalign/aligned_alloc calls process-wide.
// The program reads the total with dlsym(RTLD_DEFAULT, "malloc_count_total").
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

static _Atomic uint64_t count;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

uint64_t malloc_count_total(void) { return atomic_load(&count); }
void *malloc(size_t n) { atomic_fetch_add(&count, 1); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add(&count, 1); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add(&count, 1); return __libc_realloc(p, n); }
int posix_memalign(void **out, size_t alignment, size_t n) {
    atomic_fetch_add(&count, 1);
    void *p = __libc_memalign(alignment, n);
    if (!p) return 12;
    *out = p;
    return 0;
}
void *aligned_alloc(size_t alignment, size_t n) { atomic_fetch_add(&count, 1); return __libc_memalign(alignment, n); }

// With MALLOC_COUNT_REPORT set, print the total at exit, so a program that does not read
// the counter itself (rdma-pingpong, rdma-throughput) can still be measured from outside.
#include <stdio.h>
#include <stdlib.h>
__attribute__((destructor)) static void report_malloc_count(void) {
    if (getenv("MALLOC_COUNT_REPORT")) fprintf(stderr, "malloc_count_total=%llu\n", (unsigned long long)atomic_load(&count));
}
