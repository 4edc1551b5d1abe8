/* Unit tests of the console-dump parser; prints "N passed, N failed". */
#include "udump.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond) do { if (cond) passed++; else { failed++; \
    fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)

static int parse(const char *text, uint32_t domid, unsigned nodes, uint64_t *pages, uint64_t *total)
{
    return xn_udump_parse(text, strlen(text), domid, nodes, pages, total);
}

static void test_plain(void)
{
    const char *t =
        "(XEN) 'u' pressed -> dumping numa info (now = 1234)\n"
        "(XEN) Memory location of each domain:\n"
        "(XEN) Domain 0 (total: 262144):\n"
        "(XEN)     Node 0: 131072\n"
        "(XEN)     Node 1: 131072\n"
        "(XEN) Domain 1 (total: 65536):\n"
        "(XEN)     Node 0: 0\n"
        "(XEN)     Node 1: 65536\n";
    uint64_t pages[2], total;
    CHECK(parse(t, 1, 2, pages, &total) == 0);
    CHECK(pages[0] == 0 && pages[1] == 65536 && total == 65536);
    CHECK(parse(t, 0, 2, pages, &total) == 0);
    CHECK(pages[0] == 131072 && pages[1] == 131072);
    CHECK(parse(t, 7, 2, pages, &total) == -ENOENT);
}

static void test_new_format_and_timestamps(void)
{
    const char *t =
        "(XEN) [  101.000001] Memory location of each domain:\n"
        "(XEN) [  101.000002] d3 (total: 10):\n"
        "(XEN) [  101.000003]     Node 0: 4\n"
        "(XEN) [  101.000004]     Node 1: 6\n";
    uint64_t pages[2], total;
    CHECK(parse(t, 3, 2, pages, &total) == 0);
    CHECK(pages[0] == 4 && pages[1] == 6 && total == 10);
}

static void test_interleaved(void)
{
    const char *t =
        "(XEN) Memory location of each domain:\n"
        "(XEN) Domain 2 (total: 300):\n"
        "(XEN) grant_table.c:1234: d2v0 something else entirely\n"
        "[  12.3] dom0 kernel line without a Xen prefix\n"
        "(XEN)     Node 1: 200\n"
        "(XEN) HVM d5v0 save: CPU\n"
        "(XEN)     Node 0: 100\n"
        "(XEN)     2 vnodes, 2 vcpus, guest physical layout:\n";
    uint64_t pages[2], total;
    CHECK(parse(t, 2, 2, pages, &total) == 0);
    CHECK(pages[0] == 100 && pages[1] == 200 && total == 300);
}

static void test_only_last_dump_counts(void)
{
    const char *t =
        "(XEN) Memory location of each domain:\n"
        "(XEN) Domain 1 (total: 5):\n"
        "(XEN)     Node 0: 5\n"
        "(XEN)     Node 1: 0\n"
        "(XEN) Memory location of each domain:\n"
        "(XEN) Domain 1 (total: 5):\n"
        "(XEN)     Node 0: 1\n"
        "(XEN)     Node 1: 4\n";
    uint64_t pages[2], total;
    CHECK(parse(t, 1, 2, pages, &total) == 0);
    CHECK(pages[0] == 1 && pages[1] == 4);
}

static void test_truncated(void)
{
    uint64_t pages[2], total;
    const char *cut_at_end =
        "(XEN) Memory location of each domain:\n"
        "(XEN) Domain 1 (total: 65536):\n"
        "(XEN)     Node 0: 0\n";
    CHECK(parse(cut_at_end, 1, 2, pages, &total) == -EAGAIN);
    const char *cut_mid_line =
        "(XEN) Memory location of each domain:\n"
        "(XEN) Domain 1 (total: 65536):\n"
        "(XEN)     Node 0: 0\n"
        "(XEN)     Node 1: 655";
    CHECK(parse(cut_mid_line, 1, 2, pages, &total) == -EAGAIN);
    const char *next_domain_too_soon =
        "(XEN) Memory location of each domain:\n"
        "(XEN) Domain 1 (total: 65536):\n"
        "(XEN)     Node 0: 0\n"
        "(XEN) Domain 2 (total: 1):\n";
    CHECK(parse(next_domain_too_soon, 1, 2, pages, &total) == -EAGAIN);
    const char *header_lost = "(XEN)     Node 0: 0\n(XEN)     Node 1: 5\n";
    CHECK(parse(header_lost, 1, 2, pages, &total) == -ENODATA);
}

static void test_bad_input(void)
{
    uint64_t pages[2], total;
    const char *garbled =
        "(XEN) Memory location of each domain:\n"
        "(XEN) Domain 1 (total: 3):\n"
        "(XEN)     Node 0: lots\n";
    CHECK(parse(garbled, 1, 2, pages, &total) == -EINVAL);
    CHECK(xn_udump_parse(NULL, 0, 1, 2, pages, &total) == -EINVAL);
    CHECK(xn_udump_parse("x", 1, 1, 0, pages, &total) == -EINVAL);
    const char *huge =
        "(XEN) Memory location of each domain:\n"
        "(XEN) Domain 1 (total: 3):\n"
        "(XEN)     Node 0: 99999999999999999999999\n";
    CHECK(parse(huge, 1, 2, pages, &total) == -EINVAL);
}

int main(void)
{
    test_plain();
    test_new_format_and_timestamps();
    test_interleaved();
    test_only_last_dump_counts();
    test_truncated();
    test_bad_input();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
