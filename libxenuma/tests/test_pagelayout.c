/* Unit tests of pagelayout (layout recognition, grant entries, superpage
 * runs, unfreed frames); prints "N passed, N failed". */
#include "pagelayout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond) do { if (cond) passed++; else { failed++; \
    fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)

static uint8_t page[XN_PAGE_SIZE];

static void put32(size_t off, uint32_t v) { memcpy(page + off, &v, 4); }
static void put64(size_t off, uint64_t v) { memcpy(page + off, &v, 8); }

/* A vcpu_info as Xen leaves it, at byte offset `at`. */
static void vcpu_info_at(size_t at)
{
    page[at] = 0;                           /* upcall_pending */
    page[at + 1] = 1;                       /* upcall_mask */
    put64(at + 8, 0x5);                     /* pending_sel */
    put64(at + 16, 0xffff888000001000ull);  /* cr2 */
    put32(at + 32, 42);                     /* version */
    put64(at + 40, 123456789012ull);        /* tsc_timestamp */
    put64(at + 48, 61000000000ull);         /* system_time: 61 s */
    put32(at + 56, 0x9a8b7c6d);             /* tsc_to_system_mul */
    page[at + 60] = (uint8_t)-1;            /* tsc_shift */
    page[at + 61] = 1;                      /* flags: TSC_STABLE */
}

static void test_plain_pages(void)
{
    memset(page, 0, sizeof(page));
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
    memset(page, 0xa5, sizeof(page));
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
}

static void test_vcpu_info(void)
{
    memset(page, 0x11, sizeof(page));
    vcpu_info_at(64 * 5);
    /* the bytes around the record are the per-CPU area's: anything */
    page[64 * 5 + 2] = 0; put32(64 * 5 + 2, 0); page[64 * 5 + 6] = 0; page[64 * 5 + 7] = 0;
    put64(64 * 5 + 24, 0);
    put32(64 * 5 + 36, 0); page[64 * 5 + 62] = 0; page[64 * 5 + 63] = 0;
    CHECK(xn_page_layout(page) == XN_LAYOUT_VCPU_INFO);
    page[64 * 5 + 62] = 7; /* pad1 must be zero: no longer a time record */
    page[64 * 5 + 32 + 30] = 7;
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);

    memset(page, 0, sizeof(page));
    vcpu_info_at(0);
    put32(56, 0); /* no multiplier: Xen never leaves one unset */
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
    memset(page, 0, sizeof(page));
    vcpu_info_at(0);
    put64(48, 0); /* system time zero: not a live record */
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
    memset(page, 0, sizeof(page));
    vcpu_info_at(0);
    page[61] = 0x80; /* undefined flag bit */
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
    /* a bare time record (a time area: Xen writes it by copy) is left to move */
    memset(page, 0, sizeof(page));
    vcpu_info_at(1024);
    memmove(page + 128, page + 1024 + 32, 32); /* at the start of a slot: no vcpu_info around it */
    memset(page + 1024, 0, 64);
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
    /* page-table entries look much like a time record, but for the multiplier */
    memset(page, 0, sizeof(page));
    vcpu_info_at(0);
    put32(56, 0x12345067); /* below 2^30: Xen's multiplier never is */
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
    /* a calibration that slowed a fast clock takes the multiplier below 2^31, never below 2^30 */
    memset(page, 0, sizeof(page));
    vcpu_info_at(0);
    put32(56, 0x7ffe1234);
    CHECK(xn_page_layout(page) == XN_LAYOUT_VCPU_INFO);
    put32(56, 0x40000000);
    CHECK(xn_page_layout(page) == XN_LAYOUT_VCPU_INFO);
    put32(56, 0x3fffffff);
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
}

static void test_event_array(void)
{
    unsigned int i;
    for (i = 0; i < XN_PAGE_SIZE / 4; i++)
        put32(4 * i, i >= 1 && i < 40 ? 0 : 1u << 30); /* ports 1-39 bound and unmasked, as in a guest */
    CHECK(xn_page_layout(page) == XN_LAYOUT_EVTCHN);
    put32(4 * 3, 0);                          /* bound and unmasked */
    put32(4 * 9, (1u << 31) | (1u << 29) | 17); /* pending, linked to 17 */
    CHECK(xn_page_layout(page) == XN_LAYOUT_EVTCHN);
    put32(4 * 100, (1u << 30) | (1u << 20));  /* a bit no event word uses */
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
    for (i = 0; i < XN_PAGE_SIZE / 4; i++)
        put32(4 * i, i < 600 ? 0 : 1u << 30); /* mostly unmasked: not an array page */
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
}

static void test_control_block(void)
{
    memset(page, 0, sizeof(page));
    put32(8 + 4 * 7, 5); /* head[7] = the timer's port */
    CHECK(xn_page_layout(page) == XN_LAYOUT_EVTCHN);
    put32(0, 1u << 7);   /* ready bit for priority 7 */
    CHECK(xn_page_layout(page) == XN_LAYOUT_EVTCHN);
    put32(8 + 4 * 3, 1u << 17); /* not a port */
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
    put32(8 + 4 * 3, 0);
    page[2000] = 1;      /* the rest of the page must be zero */
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
    page[2000] = 0;
    put32(4, 9);         /* reserved word */
    CHECK(xn_page_layout(page) == XN_LAYOUT_PLAIN);
}

static void test_grants(void)
{
    uint8_t table[16 * 8];
    uint64_t gfns[16];
    size_t busy = 9;
    uint16_t flags;
    uint32_t frame;
    uint64_t frame64;

    memset(table, 0, sizeof(table));
    /* v1: flags u16, domid u16, frame u32 */
    flags = 1 | (1u << 3) | (1u << 4); frame = 0xfeffc; /* in use: mapped by the backend */
    memcpy(table + 8 * 0, &flags, 2); memcpy(table + 8 * 0 + 4, &frame, 4);
    flags = 1; frame = 0x1234;                           /* granted, idle */
    memcpy(table + 8 * 2, &flags, 2); memcpy(table + 8 * 2 + 4, &frame, 4);
    flags = 2; frame = 0x999;                            /* accept_transfer: not a grant of ours */
    memcpy(table + 8 * 3, &flags, 2); memcpy(table + 8 * 3 + 4, &frame, 4);
    CHECK(xn_granted_gfns(table, 16, 1, gfns, 16, &busy) == 2);
    CHECK(gfns[0] == 0xfeffc && gfns[1] == 0x1234 && busy == 1);
    CHECK(xn_granted_gfns(table, 16, 1, gfns, 1, &busy) == 1);
    CHECK(xn_granted_gfns(table, 16, 3, gfns, 16, &busy) < 0);

    memset(table, 0, sizeof(table));
    flags = 1 | (1u << 4); frame64 = 0x123456789ull;     /* v2 full_page, being written */
    memcpy(table + 16 * 1, &flags, 2); memcpy(table + 16 * 1 + 8, &frame64, 8);
    CHECK(xn_granted_gfns(table, 8, 2, gfns, 16, &busy) == 1);
    CHECK(gfns[0] == 0x123456789ull && busy == 1);
}

static void test_superpage_runs(void)
{
    uint64_t *g = malloc(2048 * sizeof(*g));
    uint8_t *s = malloc(2048);
    size_t i;

    for (i = 0; i < 1536; i++)
        g[i] = 512 + i;      /* three whole runs: 512.., 1024.., 1536.. */
    CHECK(xn_superpage_runs(g, 1536, s) == 3);
    CHECK(s[0] && s[1535]);
    for (i = 700; i < 1536; i++)
        g[i] = 512 + i + 1;  /* a gap at 1212: run 1024.. broken; 1536.. now at index 1023 */
    CHECK(xn_superpage_runs(g, 1536, s) == 2);
    CHECK(s[0] && s[511] && !s[512] && !s[700] && s[1023] && s[1534] && !s[1535]);
    for (i = 0; i < 600; i++)
        g[i] = 100 + i;      /* unaligned start */
    CHECK(xn_superpage_runs(g, 600, s) == 0);
    for (i = 0; i < 511; i++)
        g[i] = 1024 + i;     /* one page short */
    CHECK(xn_superpage_runs(g, 511, s) == 0);
    free(g);
    free(s);
}

/* Released frames Xen did not free, from the page counts around a release. */
static void test_unfreed(void)
{
    CHECK(xn_unfreed(1000, 984, 16) == 0);   /* all 16 freed */
    CHECK(xn_unfreed(1000, 985, 16) == 1);   /* one still referenced */
    CHECK(xn_unfreed(1000, 1000, 16) == 16); /* none freed */
    CHECK(xn_unfreed(1000, 900, 16) == 0);   /* more dropped (ballooning meanwhile): nothing hidden */
    /* The count rose meanwhile: the old unsigned before - after wrapped to a
     * huge "freed" and hid every unfreed frame. */
    CHECK(xn_unfreed(1000, 1010, 16) == 16);
    CHECK(xn_unfreed(0, 5, 1) == 1);
}

int main(void)
{
    test_plain_pages();
    test_vcpu_info();
    test_event_array();
    test_control_block();
    test_grants();
    test_superpage_runs();
    test_unfreed();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
