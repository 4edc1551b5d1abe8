/*
 * Payload of the PVH test guest for page migration (make xen-test).
 *
 * Fills MiB of its own memory with a pattern and keeps checking it, page by
 * page, against checksums it keeps apart, rewriting a share of the pages
 * with a new pattern on every pass so the memory keeps changing.  Reports on
 * the console: "memcheck: pass N ok" lines, or "memcheck: CORRUPT ..." once.
 *
 * It also grants one page to dom0 (gntalloc) and prints its grant ref and
 * gfn; whatever dom0 writes into that page is reported as "grant saw X".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xen/sys/gntalloc.h>

#define PAGE 4096u

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
    return x;
}

static uint64_t fill(uint64_t *page, uint64_t seed)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < PAGE / 8; i++) {
        page[i] = mix(seed * 512 + i);
        sum += page[i] * (i + 1);
    }
    return sum;
}

static uint64_t checksum(const uint64_t *page)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < PAGE / 8; i++)
        sum += page[i] * (i + 1);
    return sum;
}

/* The gfn behind a virtual address (a PVH guest's pfn is its gfn). */
static uint64_t gfn_of(const void *addr)
{
    uint64_t entry = 0;
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0)
        return 0;
    if (pread(fd, &entry, 8, (off_t)((uintptr_t)addr / PAGE) * 8) != 8)
        entry = 0;
    close(fd);
    return entry & ((1ull << 55) - 1);
}

static volatile uint32_t *grant_page(void)
{
    struct ioctl_gntalloc_alloc_gref req = { .domid = 0, .flags = GNTALLOC_FLAG_WRITABLE, .count = 1 };
    int fd = open("/dev/xen/gntalloc", O_RDWR);
    void *page;

    if (fd < 0 || ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, &req)) {
        printf("memcheck: no grant (gntalloc unavailable)\n");
        return NULL;
    }
    page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)req.index);
    if (page == MAP_FAILED) {
        printf("memcheck: no grant (mmap failed)\n");
        return NULL;
    }
    memset(page, 0, PAGE);
    printf("memcheck: gref %u gfn %#llx\n", req.gref_ids[0], (unsigned long long)gfn_of(page));
    return page;
}

int main(int argc, char **argv)
{
    unsigned long mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 32;
    size_t pages = mib * 256, i;
    uint64_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                         -1, 0);
    uint64_t *sums = calloc(pages, sizeof(*sums)), *seeds = calloc(pages, sizeof(*seeds));
    volatile uint32_t *granted;
    uint32_t seen = 0;
    unsigned long pass;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (mem == MAP_FAILED || !sums || !seeds) {
        printf("memcheck: out of memory\n");
        return 1;
    }
    mlock(mem, pages * PAGE);
    for (i = 0; i < pages; i++) {
        seeds[i] = i + 1;
        sums[i] = fill(mem + i * (PAGE / 8), seeds[i]);
    }
    granted = grant_page();
    printf("memcheck: checking %lu MiB\n", mib);
    for (pass = 1;; pass++) {
        for (i = 0; i < pages; i++) {
            uint64_t *page = mem + i * (PAGE / 8);
            if (checksum(page) != sums[i]) {
                printf("memcheck: CORRUPT page %zu (gfn %#llx) in pass %lu\n", i,
                       (unsigned long long)gfn_of(page), pass);
                for (;;)
                    pause();
            }
            if ((i + pass) % 8 == 0) { /* an eighth of the pages changes every pass */
                seeds[i] += pages;
                sums[i] = fill(page, seeds[i]);
            }
        }
        if (granted && granted[0] != seen) {
            seen = granted[0];
            printf("memcheck: grant saw %#x\n", seen);
        }
        printf("memcheck: pass %lu ok\n", pass);
    }
}
