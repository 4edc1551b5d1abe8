/* Run-time detection of XenServer's patched libxenctrl calls.  Built once
 * against the real libxenctrl; run against the real one ("real": stock, no
 * Xen needed for the lookup), or, through LD_LIBRARY_PATH, against
 * fake_xenctrl.c built without ("stock") or with ("patched") the patched
 * calls.  Prints "N passed, N failed". */
#define _GNU_SOURCE
#include "libxenuma.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond) do { if (cond) passed++; else { failed++; \
    fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)

/* A counter the fake exports (absent from the real library). */
static unsigned long fake_counter(const char *name)
{
    unsigned long *p = dlsym(RTLD_DEFAULT, name);
    return p ? *p : (unsigned long)-1;
}

/* The DMA zone's free memory and the command line it depends on */
static void dma_zone_calls(xn_handle *h)
{
    uint64_t bytes = 1;
    char line[1024], small[16];

    CHECK(xn_node_free_below(h, 0, 32, &bytes) == 0 && bytes == 16384ull << 12);
    CHECK(xn_node_free_below(h, 1, 32, &bytes) == 0 && bytes == 0);
    /* a width of 0 would be every zone to Xen; a node the host lacks is refused */
    CHECK(xn_node_free_below(h, 0, 0, &bytes) == -EINVAL);
    CHECK(xn_node_free_below(h, 2, 32, &bytes) == -EINVAL);
    CHECK(xn_xen_commandline(h, line, sizeof(line)) == 0 && strstr(line, "dom0_mem=") == line);
    CHECK(xn_xen_commandline(h, small, sizeof(small)) == -ENOSPC);
    setenv("FAKE_XC_FAIL", "xc_availheap=EPERM,xc_version=EACCES", 1);
    CHECK(xn_node_free_below(h, 0, 32, &bytes) == -EPERM);
    CHECK(xn_xen_commandline(h, line, sizeof(line)) == -EACCES);
    unsetenv("FAKE_XC_FAIL");
}

static void common_calls(xn_handle *h)
{
    struct xn_vcpu v;
    unsigned int nodes = 8;
    uint64_t size[8], free_bytes[8];
    uint32_t dist[64];

    CHECK(xn_numainfo(h, &nodes, size, free_bytes, dist) == 0 && nodes == 2 && dist[1] == 20);
    CHECK(xn_vcpu_info(h, 1, 1, &v) == 0 && v.cpu_time_ns == 3000000000ull && v.cpu == 3);
    CHECK(xn_claim(h, 1, ~0u, 100) == 0); /* host-wide: stock everywhere */
    dma_zone_calls(h);
}

/* vNUMA: set a layout, read it back through the sizing call Xen answers ENOBUFS */
static void vnuma_round_trip(xn_handle *h)
{
    struct xn_vmemrange set[2] = { { 0, 1u << 28, 0 }, { 1u << 28, 1u << 29, 1 } }, got[2];
    uint32_t dist[4] = { 10, 20, 20, 10 }, v2n[2] = { 0, 1 }, n2p[2] = { 1, 0 }, gdist[4], gv2n[2];
    uint32_t nodes = 0, ranges = 0, vcpus = 0;

    CHECK(xn_domain_getvnuma(h, 1, &nodes, &ranges, &vcpus, NULL, NULL, NULL) == -EOPNOTSUPP);
    CHECK(xn_domain_setvnuma(h, 1, 2, 2, set, 2, dist, v2n, n2p) == 0);
    CHECK(xn_domain_getvnuma(h, 1, &nodes, &ranges, &vcpus, NULL, NULL, NULL) == -ENOBUFS);
    CHECK(nodes == 2 && ranges == 2 && vcpus == 2); /* the sizing answer carries the counts */
    CHECK(xn_domain_getvnuma(h, 1, &nodes, &ranges, &vcpus, got, gdist, gv2n) == 0);
    CHECK(got[1].start == 1u << 28 && got[1].end == 1u << 29 && got[1].vnode == 1 && got[0].vnode == 0);
    CHECK(gdist[1] == 20 && gdist[3] == 10 && gv2n[0] == 0 && gv2n[1] == 1);
    nodes = 1; /* too little room for the distances: refused before anything is written */
    gdist[0] = 99;
    CHECK(xn_domain_getvnuma(h, 1, &nodes, &ranges, &vcpus, got, gdist, gv2n) == -ENOBUFS && gdist[0] == 99);
    CHECK(xn_domain_getvnuma(h, 9, &nodes, &ranges, &vcpus, got, gdist, gv2n) == -ESRCH);
    CHECK(xn_domain_getvnuma(h, 1, &nodes, &ranges, NULL, got, gdist, gv2n) == -EINVAL);
}

static void patched(xn_handle *h)
{
    struct xn_features f;
    uint64_t pages[2] = { 0, 0 };
    unsigned long before = fake_counter("fake_xc_patched_calls");

    CHECK(xn_patched_ops() == (XN_PATCHED_CLAIM_NODE | XN_PATCHED_NODE_PAGES));
    xn_features(h, &f);
    CHECK(f.node_pages == XN_NATIVE && f.node_claims == XN_NATIVE && f.claims == XN_NATIVE);
    /* the probe has room for every node Xen supports, whatever the call writes */
    CHECK(fake_counter("fake_xc_node_pages_room") >= 64);
    CHECK(xn_claim(h, 1, 1, 4096) == 0);
    CHECK(fake_counter("fake_xc_last_claim_node") == 1 && fake_counter("fake_xc_last_claim_pages") == 4096);
    CHECK(xn_node_pages_native(h, 1, 2, pages) == 2 && pages[0] == 1001 && pages[1] == 2001);
    CHECK(fake_counter("fake_xc_patched_calls") >= before + 2);
    /* errors of the patched calls come back as -errno */
    CHECK(xn_claim(h, 1, 5, 4096) == -EINVAL);
    CHECK(xn_node_pages_native(h, 9, 2, pages) == -ESRCH);
    setenv("FAKE_XC_FAIL", "xc_domain_numa_get_node_pages=ENOSYS", 1);
    /* the library has the call, the hypervisor not: the fallback is used */
    xn_features(h, &f);
    CHECK(f.node_pages == XN_FALLBACK && f.node_claims == XN_NATIVE);
    /* Xen's code says "no such hypercall" with EOPNOTSUPP too: the same fallback */
    setenv("FAKE_XC_FAIL", "xc_domain_numa_get_node_pages=EOPNOTSUPP", 1);
    xn_features(h, &f);
    CHECK(f.node_pages == XN_FALLBACK && xn_node_pages_native(h, 1, 2, pages) == -ENOSYS);
    unsetenv("FAKE_XC_FAIL");
    /* a count written back above the room given is refused, never read past the buffer */
    setenv("FAKE_XC_NODE_PAGES_COUNT", "40", 1);
    CHECK(xn_node_pages_native(h, 1, 2, pages) == -ENOBUFS);
    unsetenv("FAKE_XC_NODE_PAGES_COUNT");
}

/* Debug key 'u' captured from a quiet console, from one the hypervisor floods,
 * and from a big ring (conring_size=) already holding 16 MiB with an older dump
 * in it: the capture ends every time, and what it returns is the new dump. */
static void console_capture(xn_handle *h)
{
    static char buf[65536];
    const char *modes[] = { "quiet", "flood", "old:16777216" };
    uint64_t pages[2], total;
    size_t len;
    unsigned int i;

    for (i = 0; i < 3; i++) {
        setenv("FAKE_XC_CONSOLE", modes[i], 1);
        len = sizeof(buf);
        CHECK(xn_udump_capture(h, buf, &len, 2000) == 0);
        CHECK(len > 0 && len < sizeof(buf));
        CHECK(xn_udump_parse(buf, len, 1, 2, pages, &total) == 0 && pages[0] == 1001 && pages[1] == 2001);
    }
    unsetenv("FAKE_XC_CONSOLE");
}

static void stock(xn_handle *h)
{
    struct xn_features f;
    uint64_t pages[2];

    CHECK(xn_patched_ops() == 0);
    xn_features(h, &f);
    CHECK(f.node_pages == XN_FALLBACK && f.node_claims == XN_UNAVAILABLE && f.claims == XN_NATIVE);
    CHECK(xn_claim(h, 1, 1, 4096) == -ENOSYS);
    CHECK(xn_node_pages_native(h, 1, 2, pages) == -ENOSYS);
}

/* Layouts Xen 4.17 refuses are refused before the hypercall: more than 32 vnodes
 * (vnuma_alloc: nr_vnodes^2 distances must fit a page), more than 170 ranges
 * (PAGE_SIZE / sizeof(xen_vmemrange_t)), a pnode the host lacks (Xen takes any
 * below 64: the memory would come from anywhere), vCPUs not the domain's maximum. */
static void vnuma_limits(xn_handle *h)
{
    static struct xn_vmemrange r[171];
    static uint32_t dist[33 * 33], v2n[171];
    struct xn_vmemrange two[2] = { { 0, 1u << 28, 0 }, { 1u << 28, 1u << 29, 1 } };
    uint32_t d2[4] = { 10, 20, 20, 10 }, v2[2] = { 0, 1 }, beyond[2] = { 5, 0 }, last[2] = { 0, 63 };
    uint32_t i;

    for (i = 0; i < 33 * 33; i++)
        dist[i] = 10;
    for (i = 0; i < 171; i++) {
        r[i].start = (uint64_t)i << 20;
        r[i].end = (uint64_t)(i + 1) << 20;
        r[i].vnode = i < 33 ? i : 0;
        v2n[i] = i < 33 ? i : 0;
    }
    CHECK(xn_vnuma_check(32, 32, r, 32, dist, v2n) == 0);
    CHECK(xn_vnuma_check(33, 33, r, 33, dist, v2n) == -EINVAL);
    for (i = 0; i < 171; i++)
        r[i].vnode = 0;
    CHECK(xn_vnuma_check(1, 170, r, 1, dist, v2n) == 0);
    CHECK(xn_vnuma_check(1, 171, r, 1, dist, v2n) == -EINVAL);
    CHECK(xn_domain_setvnuma(h, 1, 2, 2, two, 2, d2, v2, beyond) == -EINVAL);
    CHECK(xn_domain_setvnuma(h, 1, 2, 2, two, 2, d2, v2, last) == -EINVAL);
    CHECK(xn_domain_setvnuma(h, 1, 2, 2, two, 3, d2, (uint32_t[]){ 0, 1, 1 }, v2) == -EINVAL);
    CHECK(xn_domain_setvnuma(h, 1, 2, 2, two, 2, d2, v2, v2) == 0);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    xn_handle *h = NULL;

    if (strcmp(mode, "real") == 0) {
        /* the stock libxenctrl has neither call; no hypervisor needed to tell */
        CHECK(xn_patched_ops() == 0);
        CHECK(dlsym(RTLD_DEFAULT, "fake_xc_open_handles") == NULL);
    } else {
        CHECK(dlsym(RTLD_DEFAULT, "fake_xc_open_handles") != NULL); /* the fake is the one loaded */
        CHECK(xn_open(&h) == 0);
        if (h) {
            common_calls(h);
            vnuma_round_trip(h);
            vnuma_limits(h);
            console_capture(h);
            if (strcmp(mode, "patched") == 0)
                patched(h);
            else
                stock(h);
            xn_close(h);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
