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
 *
 * Its own CPU state is checked too (see report_pass and vectors_kept): on Xen
 * under QEMU the guest once printed "memcheck: pass %lu ok", its format
 * unfilled.  This program has no formatter of its own: it is glibc's printf
 * (static), which prints a whole format verbatim only when its search for
 * the first '%' (strchrnul: SIMD compares of the text against a vector
 * register holding '%', AVX2 or SSE2 as the CPU offers) finds the string's
 * end first -- so that register did not hold '%' when compared, i.e. the
 * vCPU's vector state changed under the program.  That is guest-visible
 * corruption like a bad page, so it is reported as CORRUPT, never as a
 * malformed pass line that the tests misread.
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

/* "memcheck: pass N ok\n" built without printf or SIMD library code: the
 * reference report_pass holds printf's line against. */
static void pass_line(char *buf, unsigned long pass)
{
    static const char head[] = "memcheck: pass ", tail[] = " ok\n";
    char digits[24];
    size_t n = 0, len = 0, i;

    do {
        digits[n++] = (char)('0' + pass % 10);
        pass /= 10;
    } while (pass);
    for (i = 0; head[i]; i++)
        buf[len++] = head[i];
    while (n)
        buf[len++] = digits[--n];
    for (i = 0; tail[i]; i++)
        buf[len++] = tail[i];
    buf[len] = '\0';
}

static int same(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/* Stop here for the test to see, as for a corrupt page. */
static void halt(void)
{
    for (;;)
        pause();
}

/* The pass line through printf's formatting, checked against pass_line. */
static void report_pass(unsigned long pass)
{
    char got[64], want[64];

    snprintf(got, sizeof(got), "memcheck: pass %lu ok\n", pass);
    pass_line(want, pass);
    if (!same(got, want)) {
        got[strcspn(got, "\n")] = '\0';
        printf("memcheck: CORRUPT cpu state: printf formatted pass %lu as \"%s\"\n", pass, got);
        halt();
    }
    fputs(got, stdout);
}

#if defined(__x86_64__)
/* Load a pattern into the vector registers, spin without touching them (the
 * vCPU may be switched out and in meanwhile), store them back.  ymm0-15 where
 * the CPU has AVX, xmm0-15 otherwise.  0 if they kept it, else the first
 * register that did not (1-based), its value in *got. */
static int vectors_round(unsigned long pass, uint64_t got[4])
{
    uint64_t in[64] __attribute__((aligned(32))), out[64] __attribute__((aligned(32)));
    unsigned long spins = 20000;
    int avx = __builtin_cpu_supports("avx"), width = avx ? 4 : 2, r;

    for (r = 0; r < 64; r++)
        in[r] = mix(pass * 64 + (uint64_t)r) | 1; /* never 0: a register reset to 0 shows */
    if (avx)
        __asm__ volatile(
            "vmovdqa 0(%[in]),%%ymm0\n\t vmovdqa 32(%[in]),%%ymm1\n\t vmovdqa 64(%[in]),%%ymm2\n\t"
            "vmovdqa 96(%[in]),%%ymm3\n\t vmovdqa 128(%[in]),%%ymm4\n\t vmovdqa 160(%[in]),%%ymm5\n\t"
            "vmovdqa 192(%[in]),%%ymm6\n\t vmovdqa 224(%[in]),%%ymm7\n\t vmovdqa 256(%[in]),%%ymm8\n\t"
            "vmovdqa 288(%[in]),%%ymm9\n\t vmovdqa 320(%[in]),%%ymm10\n\t vmovdqa 352(%[in]),%%ymm11\n\t"
            "vmovdqa 384(%[in]),%%ymm12\n\t vmovdqa 416(%[in]),%%ymm13\n\t vmovdqa 448(%[in]),%%ymm14\n\t"
            "vmovdqa 480(%[in]),%%ymm15\n\t"
            "1: dec %[n]\n\t jnz 1b\n\t"
            "vmovdqa %%ymm0,0(%[out])\n\t vmovdqa %%ymm1,32(%[out])\n\t vmovdqa %%ymm2,64(%[out])\n\t"
            "vmovdqa %%ymm3,96(%[out])\n\t vmovdqa %%ymm4,128(%[out])\n\t vmovdqa %%ymm5,160(%[out])\n\t"
            "vmovdqa %%ymm6,192(%[out])\n\t vmovdqa %%ymm7,224(%[out])\n\t vmovdqa %%ymm8,256(%[out])\n\t"
            "vmovdqa %%ymm9,288(%[out])\n\t vmovdqa %%ymm10,320(%[out])\n\t vmovdqa %%ymm11,352(%[out])\n\t"
            "vmovdqa %%ymm12,384(%[out])\n\t vmovdqa %%ymm13,416(%[out])\n\t vmovdqa %%ymm14,448(%[out])\n\t"
            "vmovdqa %%ymm15,480(%[out])\n\t vzeroupper"
            : [n] "+r"(spins)
            : [in] "r"(in), [out] "r"(out)
            : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
              "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    else
        __asm__ volatile(
            "movdqa 0(%[in]),%%xmm0\n\t movdqa 16(%[in]),%%xmm1\n\t movdqa 32(%[in]),%%xmm2\n\t"
            "movdqa 48(%[in]),%%xmm3\n\t movdqa 64(%[in]),%%xmm4\n\t movdqa 80(%[in]),%%xmm5\n\t"
            "movdqa 96(%[in]),%%xmm6\n\t movdqa 112(%[in]),%%xmm7\n\t movdqa 128(%[in]),%%xmm8\n\t"
            "movdqa 144(%[in]),%%xmm9\n\t movdqa 160(%[in]),%%xmm10\n\t movdqa 176(%[in]),%%xmm11\n\t"
            "movdqa 192(%[in]),%%xmm12\n\t movdqa 208(%[in]),%%xmm13\n\t movdqa 224(%[in]),%%xmm14\n\t"
            "movdqa 240(%[in]),%%xmm15\n\t"
            "1: dec %[n]\n\t jnz 1b\n\t"
            "movdqa %%xmm0,0(%[out])\n\t movdqa %%xmm1,16(%[out])\n\t movdqa %%xmm2,32(%[out])\n\t"
            "movdqa %%xmm3,48(%[out])\n\t movdqa %%xmm4,64(%[out])\n\t movdqa %%xmm5,80(%[out])\n\t"
            "movdqa %%xmm6,96(%[out])\n\t movdqa %%xmm7,112(%[out])\n\t movdqa %%xmm8,128(%[out])\n\t"
            "movdqa %%xmm9,144(%[out])\n\t movdqa %%xmm10,160(%[out])\n\t movdqa %%xmm11,176(%[out])\n\t"
            "movdqa %%xmm12,192(%[out])\n\t movdqa %%xmm13,208(%[out])\n\t movdqa %%xmm14,224(%[out])\n\t"
            "movdqa %%xmm15,240(%[out])"
            : [n] "+r"(spins)
            : [in] "r"(in), [out] "r"(out)
            : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
              "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    for (r = 0; r < 16 * width; r++)
        if (in[r] != out[r]) {
            memcpy(got, out + r / width * width, (size_t)width * 8);
            return r / width + 1;
        }
    return 0;
}

/* Vector registers that do not keep their contents: CORRUPT, as for a page. */
static void vectors_kept(unsigned long pass)
{
    uint64_t got[4] = { 0, 0, 0, 0 };
    int bad = vectors_round(pass, got);

    if (bad) {
        printf("memcheck: CORRUPT cpu state: %cmm%d lost its value in pass %lu (now %016llx%016llx%016llx%016llx)\n",
               __builtin_cpu_supports("avx") ? 'y' : 'x', bad - 1, pass, (unsigned long long)got[3],
               (unsigned long long)got[2], (unsigned long long)got[1], (unsigned long long)got[0]);
        halt();
    }
}
#else
static void vectors_kept(unsigned long pass)
{
    (void)pass;
}
#endif

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
                halt();
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
        vectors_kept(pass);
        report_pass(pass);
    }
}
