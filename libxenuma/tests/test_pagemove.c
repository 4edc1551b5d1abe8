/* The page mover (scan, move, recovery) end to end over the fake libxenctrl's
 * guest-memory model and fake_xenforeignmemory.c, without Xen: built against
 * the real headers and libraries, run with LD_LIBRARY_PATH at the fakes (as
 * test_patched_ops.c).  What it checks is what must hold at every unpause:
 * every moved gfn backed, by a frame on the node asked for when there was
 * room, holding what the guest had; no frame leaked or freed under a
 * mapping; the pause given back once; the batch record gone.
 * Prints "N passed, N failed". */
#define _GNU_SOURCE
#include "libxenuma.h"
#include "batchrecord.h"
#include "pagemove_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int passed, failed;

#define CHECK(cond) do { if (cond) passed++; else { failed++; \
    fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)

#define RAM 2048u      /* the fake guest's RAM gfns: 0..2047 */
#define MAX_GFN 32767u

/* The fake's model, found at run time (the binary is linked against the real libxenctrl). */
static void (*guest_reset)(void);
static long (*gfn_frame)(uint32_t, uint64_t);
static int (*frame_node)(long);
static const uint8_t *(*gfn_page)(uint64_t);
static void (*initial_page)(uint64_t, uint8_t *);
static void (*retaken_page)(uint64_t, uint8_t *);
static long (*frames_in_use)(void);
static void (*set_node_room)(unsigned int, uint32_t);
static int (*pause_count)(uint32_t);
static void (*frame_get)(long), (*frame_put)(long);
static void (*grant)(unsigned int, uint64_t);
static void (*backend_copies)(int);
static uint32_t (*backend_copied)(void);
static int (*guest_run)(uint32_t, uint64_t);
static long *live_mappings;

static int bind_fake(void)
{
    *(void **)&guest_reset = dlsym(RTLD_DEFAULT, "fake_xc_guest_reset");
    *(void **)&gfn_frame = dlsym(RTLD_DEFAULT, "fake_xc_gfn_frame");
    *(void **)&frame_node = dlsym(RTLD_DEFAULT, "fake_xc_frame_node");
    *(void **)&gfn_page = dlsym(RTLD_DEFAULT, "fake_xc_gfn_page");
    *(void **)&initial_page = dlsym(RTLD_DEFAULT, "fake_xc_initial_page");
    *(void **)&retaken_page = dlsym(RTLD_DEFAULT, "fake_xc_retaken_page");
    *(void **)&frames_in_use = dlsym(RTLD_DEFAULT, "fake_xc_frames_in_use");
    *(void **)&set_node_room = dlsym(RTLD_DEFAULT, "fake_xc_set_node_room");
    *(void **)&pause_count = dlsym(RTLD_DEFAULT, "fake_xc_pause_count");
    *(void **)&frame_get = dlsym(RTLD_DEFAULT, "fake_xc_frame_get");
    *(void **)&frame_put = dlsym(RTLD_DEFAULT, "fake_xc_frame_put");
    *(void **)&grant = dlsym(RTLD_DEFAULT, "fake_xc_grant");
    *(void **)&backend_copies = dlsym(RTLD_DEFAULT, "fake_xc_backend_copies");
    *(void **)&backend_copied = dlsym(RTLD_DEFAULT, "fake_xc_backend_copied");
    *(void **)&guest_run = dlsym(RTLD_DEFAULT, "fake_xc_guest_run");
    live_mappings = dlsym(RTLD_DEFAULT, "fake_fmem_live_mappings");
    return guest_run && guest_reset && gfn_frame && frame_node && gfn_page && initial_page && retaken_page && frames_in_use &&
           set_node_room &&
           pause_count && frame_get && frame_put && grant && backend_copies && backend_copied && live_mappings;
}

static char dir[64], record[128];

/* The domain's handle, as Xen reports it (what a record made for it holds). */
static const uint8_t *handle_of(xn_handle *h, uint32_t domid)
{
    static xc_domaininfo_t info;
    memset(&info, 0, sizeof(info));
    CHECK(xn_domain_info(xn_xch(h), domid, &info) == 0);
    return info.handle;
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Does every gfn in gfns[0..n) hold what it held at the start? */
static int contents_intact(const uint64_t *gfns, uint32_t n)
{
    uint8_t want[4096];
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *page = gfn_page(gfns[i]);
        initial_page(gfns[i], want);
        if (!page || memcmp(page, want, sizeof(want)) != 0) {
            fprintf(stderr, "  gfn %#llx: %s\n", (unsigned long long)gfns[i], page ? "contents differ" : "unbacked");
            return 0;
        }
    }
    return 1;
}

static uint32_t on_node(const uint64_t *gfns, uint32_t n, int node)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; i++)
        count += gfn_frame(1, gfns[i]) >= 0 && frame_node(gfn_frame(1, gfns[i])) == node;
    return count;
}

static uint64_t tot_pages(xn_handle *h)
{
    struct xn_domain d;
    return xn_domains(h, 1, 1, &d) == 1 ? d.tot_pages : 0;
}

/* After every batch, whatever happened: the pause given back, no mapping
 * left, no frame leaked (every frame in use is the guest's), the record gone. */
static void settled(xn_handle *h)
{
    CHECK(pause_count(1) == 0);
    CHECK(*live_mappings == 0);
    CHECK(frames_in_use() == (long)tot_pages(h));
    CHECK(!exists(record));
}

static void test_scan(xn_handle *h)
{
    static uint8_t cls[MAX_GFN + 1];
    struct xn_mig_scan_stats stats;
    uint64_t top = 0;
    uint32_t ram = 0, i;

    guest_reset();
    CHECK(xn_mig_check(h, 1) == 0);
    CHECK(xn_mig_check(h, 0) == -EPROTOTYPE); /* dom0 is PV */
    CHECK(xn_mig_max_gfn(h, 1, &top) == 0 && top == MAX_GFN);
    CHECK(xn_mig_scan(h, 1, top + 1, cls, 0, NULL, &stats) == 0);
    for (i = 0; i <= MAX_GFN; i++)
        ram += cls[i] == XN_GFN_RAM;
    CHECK(ram == RAM && cls[0] == XN_GFN_RAM && cls[RAM - 1] == XN_GFN_RAM && cls[RAM] == XN_GFN_NOT_RAM);
    CHECK(cls[32000] == XN_GFN_MAGIC && cls[32001] == XN_GFN_MAGIC);
    CHECK(stats.typed >= RAM && stats.typed < MAX_GFN); /* stops once it has seen the domain's pages */
    CHECK(*live_mappings == 0);

    /* with a probe: paused under a record, given back, nothing changed while paused */
    CHECK(xn_mig_scan(h, 1, top + 1, cls, 5, record, &stats) == 0);
    ram = 0;
    for (i = 0; i <= MAX_GFN; i++)
        ram += cls[i] == XN_GFN_RAM;
    CHECK(ram == RAM);
    settled(h);
}

static void fill_range(uint64_t *gfns, uint64_t first, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        gfns[i] = first + i;
}

static void test_move_whole_runs(xn_handle *h)
{
    static uint64_t gfns[1100];
    struct xn_mig_result res;
    uint64_t before;

    guest_reset();
    before = tot_pages(h);
    /* two aligned 2 MiB runs and a tail of single pages */
    fill_range(gfns, 0, 1100);
    CHECK(xn_mig_move(h, 1, gfns, 1100, 1, 16, 0, record, &res) == 0);
    CHECK(res.error == 0 && res.stage == XN_MIG_STAGE_DONE && res.released == 1100 && res.moved == 1100);
    CHECK(res.superpages == 2 && res.fallback == 0 && res.lost == 0 && res.not_freed == 0);
    CHECK(on_node(gfns, 1100, 1) == 1100);
    CHECK(contents_intact(gfns, 1100));
    CHECK(tot_pages(h) == before);
    settled(h);
    /* and back */
    CHECK(xn_mig_move(h, 1, gfns, 1100, 0, 0, 0, record, &res) == 0 && res.moved == 1100);
    CHECK(on_node(gfns, 1100, 0) == 1100 && contents_intact(gfns, 1100));
    settled(h);
}

/* A frame someone else holds (a backend's grant mapping, a Xen mapping) is
 * not freed by the release: the chunk holding it is reported, the guest
 * still gets every gfn back with its contents. */
static void test_move_stuck_frame(xn_handle *h)
{
    static uint64_t gfns[64];
    struct xn_mig_result res;
    long held;

    guest_reset();
    fill_range(gfns, 100, 64);
    held = gfn_frame(1, 130);
    frame_get(held);
    CHECK(xn_mig_move(h, 1, gfns, 64, 1, 16, 0, record, &res) == -EBUSY);
    CHECK(res.stage == XN_MIG_STAGE_VERIFY && res.not_freed == 1 && res.stuck_first == 16 && res.stuck_count == 16);
    CHECK(res.released == 32 && res.lost == 0 && res.moved + res.fallback == 32);
    /* the node had room: the frame not freed held the domain at its maximum, not the node */
    CHECK(res.fallback == 0 && on_node(gfns, 32, 1) == 32);
    CHECK(contents_intact(gfns, 64));
    CHECK(gfn_frame(1, 130) != held); /* the guest's gfn has a new frame; the old one is still held */
    CHECK(pause_count(1) == 0 && *live_mappings == 0 && !exists(record));
    frame_put(held);
    CHECK(frames_in_use() == (long)tot_pages(h));

    /* with a gfn granted before the stuck one: the chunk is still named in the caller's list */
    guest_reset();
    grant(1, 105);
    held = gfn_frame(1, 130);
    frame_get(held);
    CHECK(xn_mig_move(h, 1, gfns, 64, 1, 16, 0, record, &res) == -EBUSY);
    CHECK(res.granted == 1 && res.not_freed == 1 && res.stuck_first == 17 && res.stuck_count == 16);
    CHECK(gfns[res.stuck_first] <= 130 && 130 < gfns[res.stuck_first] + res.stuck_count);
    CHECK(contents_intact(gfns, 64) && pause_count(1) == 0 && *live_mappings == 0);
    frame_put(held);
    CHECK(frames_in_use() == (long)tot_pages(h));
}

/* The target node runs short: the rest goes elsewhere, contents intact. */
static void test_move_target_short(xn_handle *h)
{
    static uint64_t gfns[600];
    struct xn_mig_result res;

    guest_reset();
    fill_range(gfns, 1024, 600); /* one aligned run (1024..1535) and 88 pages */
    set_node_room(1, 100);
    CHECK(xn_mig_move(h, 1, gfns, 600, 1, 0, 0, record, &res) == -ENOMEM);
    CHECK(res.stage == XN_MIG_STAGE_POPULATE && res.released == 600 && res.lost == 0);
    CHECK(res.superpages == 0 && res.moved == 100 && res.fallback == 500);
    CHECK(on_node(gfns, 600, 1) == 100 && contents_intact(gfns, 600));
    settled(h);

    guest_reset();
    set_node_room(1, 100);
    CHECK(xn_mig_move(h, 1, gfns, 600, 1, 0, XN_MIG_ALLOW_FALLBACK, record, &res) == 0);
    CHECK(res.stage == XN_MIG_STAGE_DONE && res.moved == 100 && res.fallback == 500);
    CHECK(contents_intact(gfns, 600));
    settled(h);
}

/* A guest booted with populate-on-demand: typing its gfns would fill them from its
 * PoD cache, and released frames would go to that cache: refused before anything. */
static void test_populate_on_demand_is_refused(xn_handle *h)
{
    static uint8_t cls[MAX_GFN + 1];
    uint64_t gfns[2] = { 10, 11 };
    struct xn_mig_scan_stats stats;
    struct xn_mig_result res;

    guest_reset();
    setenv("FAKE_XC_POD_ENTRIES", "1024", 1);
    CHECK(xn_mig_check(h, 1) == -EOPNOTSUPP);
    CHECK(xn_mig_scan(h, 1, MAX_GFN + 1, cls, 0, NULL, &stats) == -EOPNOTSUPP && stats.typed == 0);
    CHECK(xn_mig_move(h, 1, gfns, 2, 1, 0, 0, record, &res) == -EOPNOTSUPP && res.stage == XN_MIG_STAGE_NONE);
    CHECK(res.error == -EOPNOTSUPP); /* the -errno in res->error too, as the header says */
    unsetenv("FAKE_XC_POD_ENTRIES");
    CHECK(xn_mig_check(h, 1) == 0 && contents_intact(gfns, 2) && on_node(gfns, 2, 0) == 2);
    settled(h);
}

/* A gfn the guest gave back after the scan (a balloon driver; Xen will not map it):
 * left out of the batch, counted with those left where they were, and the rest
 * moves -- it stopped the whole move before.  A batch of nothing but such gfns
 * moves nothing and pauses nothing.  A map that fails for another reason (every
 * gfn still populated) is still refused before the pause, nothing touched. */
static void test_move_unbacked_gfn(xn_handle *h)
{
    uint64_t gfns[3] = { 10, 11, 5000 }, gone[2] = { 5000, 5001 };
    static uint64_t many[64];
    xen_pfn_t gone_gfn = 103;
    struct xn_mig_result res;
    long held;
    int rc;

    guest_reset();
    CHECK((rc = xn_mig_move(h, 1, gfns, 3, 1, 0, 0, record, &res)) == 0);
    CHECK(res.error == 0 && res.stage == XN_MIG_STAGE_DONE && res.granted == 1);
    CHECK(res.released == 2 && res.moved == 2 && res.lost == 0);
    CHECK(contents_intact(gfns, 2) && on_node(gfns, 2, 1) == 2 && gfn_frame(1, 5000) < 0);
    settled(h);

    guest_reset();
    CHECK(xn_mig_move(h, 1, gone, 2, 1, 0, 0, record, &res) == 0);
    CHECK(res.error == 0 && res.granted == 2 && res.released == 0 && res.pause_ns == 0);
    settled(h);

    /* given back inside the batch, with a stuck frame after it: named in the caller's list */
    guest_reset();
    fill_range(many, 100, 64);
    CHECK(xc_domain_decrease_reservation(xn_xch(h), 1, 1, 0, &gone_gfn) == 1 && gfn_frame(1, 103) < 0);
    held = gfn_frame(1, 120);
    frame_get(held);
    CHECK(xn_mig_move(h, 1, many, 64, 1, 16, 0, record, &res) == -EBUSY);
    CHECK(res.granted == 1 && res.stage == XN_MIG_STAGE_VERIFY && res.not_freed == 1);
    CHECK(res.stuck_first == 17 && res.stuck_count == 16); /* gfns 117..132 */
    CHECK(res.lost == 0 && contents_intact(many, 3) && contents_intact(many + 4, 60));
    frame_put(held);
    settled(h);

    guest_reset();
    setenv("FAKE_FMEM_MAP_FAILS", "1", 1);
    CHECK((rc = xn_mig_move(h, 1, gfns, 3, 1, 0, 0, record, &res)) == -EIO);
    unsetenv("FAKE_FMEM_MAP_FAILS");
    CHECK(res.stage == XN_MIG_STAGE_NONE && res.released == 0 && res.error == rc);
    CHECK(contents_intact(gfns, 2) && on_node(gfns, 2, 0) == 2);
    settled(h);
}

/* The pause refused: nothing moved, and the failure is in res->error (a binding that
 * reads only the result must not take it for an empty batch that went well). */
static void test_a_refused_pause_is_a_failure_in_the_result(xn_handle *h)
{
    uint64_t gfns[2] = { 10, 11 };
    struct xn_mig_result res;

    guest_reset();
    setenv("FAKE_XC_FAIL", "xc_domain_pause=EPERM", 1);
    CHECK(xn_mig_move(h, 1, gfns, 2, 1, 0, 0, record, &res) == -EPERM);
    unsetenv("FAKE_XC_FAIL");
    CHECK(res.stage == XN_MIG_STAGE_NONE && res.error == -EPERM && res.moved == 0);
    CHECK(contents_intact(gfns, 2) && on_node(gfns, 2, 0) == 2);
    settled(h);
}

/* A frame the guest granted after the scan (a frontend posts new buffers all
 * the time): the scan saw it as RAM, but a backend may copy into it
 * (GNTTABOP_copy, no mapping, no reference) while the guest is paused.  A
 * copy landing between copy-out and release goes to the old frame, one
 * between populate and copy-back is overwritten: either way the guest never
 * sees it.  Such a frame stays where it is; the rest of the batch moves. */
static void test_move_granted_since_scan(xn_handle *h)
{
    static uint8_t cls[MAX_GFN + 1];
    static uint64_t gfns[40];
    struct xn_mig_scan_stats stats;
    struct xn_mig_result res;
    const uint8_t *page;
    uint64_t others[39];
    uint32_t i, k = 0;

    guest_reset();
    CHECK(xn_mig_scan(h, 1, MAX_GFN + 1, cls, 0, NULL, &stats) == 0 && cls[310] == XN_GFN_RAM);
    fill_range(gfns, 300, 40);
    grant(7, 310); /* after the scan */
    backend_copies(1);
    CHECK(xn_mig_move(h, 1, gfns, 40, 1, 0, 0, record, &res) == 0);
    CHECK(backend_copied() == 1);
    page = gfn_page(310);
    CHECK(page && memcmp(page, "written by a backend", 21) == 0); /* the guest sees the backend's data */
    CHECK(res.granted == 1 && res.released == 39 && res.moved == 39 && res.stage == XN_MIG_STAGE_DONE);
    for (i = 0; i < 40; i++)
        if (gfns[i] != 310)
            others[k++] = gfns[i];
    CHECK(contents_intact(others, 39) && on_node(others, 39, 1) == 39 && on_node(gfns + 10, 1, 0) == 1);
    settled(h);

    /* a scan now names it granted */
    CHECK(xn_mig_scan(h, 1, MAX_GFN + 1, cls, 0, NULL, &stats) == 0 && cls[310] == XN_GFN_GRANTED);
    CHECK(*live_mappings == 0);
    /* a batch of nothing but granted frames: nothing released, the pause given back */
    CHECK(xn_mig_move(h, 1, gfns + 10, 1, 1, 0, 0, record, &res) == 0);
    CHECK(res.granted == 1 && res.released == 0 && res.stage == XN_MIG_STAGE_DONE);
    settled(h);
}

/* A vcpu_info (its time record's multiplier just slowed by a calibration, below
 * 2^31) the guest registered after the scan, or that the scan did not take for
 * one: Xen holds its frame.  The batch leaves it where it is, and moves the rest. */
static void test_move_leaves_out_a_page_xen_maps_since_the_scan(xn_handle *h)
{
    static uint8_t cls[MAX_GFN + 1];
    static uint64_t gfns[64];
    struct xn_mig_scan_stats stats;
    struct xn_mig_result res;
    uint64_t others[63], v;
    uint32_t i, k = 0, mul = 0x7ffe1234;
    uint8_t *page;
    long held;

    guest_reset();
    CHECK(xn_mig_scan(h, 1, MAX_GFN + 1, cls, 0, NULL, &stats) == 0 && cls[130] == XN_GFN_RAM);
    page = (uint8_t *)gfn_page(130); /* the fake's machine memory: the guest writes its page */
    memset(page + 192, 0, 64);
    page[193] = 1;                                             /* upcall_mask */
    v = 123456789012ull; memcpy(page + 192 + 40, &v, 8);       /* tsc_timestamp */
    v = 61000000000ull; memcpy(page + 192 + 48, &v, 8);        /* system_time */
    memcpy(page + 192 + 56, &mul, 4);                          /* tsc_to_system_mul */
    held = gfn_frame(1, 130);
    frame_get(held); /* Xen maps it */
    fill_range(gfns, 100, 64);
    CHECK(xn_mig_move(h, 1, gfns, 64, 1, 16, 0, record, &res) == 0);
    CHECK(res.recognised == 1 && res.granted == 0 && res.not_freed == 0 && res.stage == XN_MIG_STAGE_DONE);
    CHECK(res.released == 63 && res.moved == 63 && gfn_frame(1, 130) == held);
    for (i = 0; i < 64; i++)
        if (gfns[i] != 130)
            others[k++] = gfns[i];
    CHECK(contents_intact(others, 63) && on_node(others, 63, 1) == 63);
    frame_put(held);
    settled(h);
}

/* A mover of gfns[0..n) to node 1 (verify_chunk, flags) dies in a child as a hook makes it:
 * the library's fault flag or the fake's environment variable (env, or NULL), the hook
 * exiting with code. */
static void mover_dies(xn_handle *h, const uint64_t *gfns, uint32_t n, uint32_t verify_chunk, uint32_t flags,
                       const char *env, int code)
{
    struct xn_mig_result res;
    int status = 0;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        if (env)
            setenv(env, "1", 1);
        xn_mig_move(h, 1, gfns, n, 1, verify_chunk, flags, record, &res);
        _exit(1); /* not reached: the hook exits with code */
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == code);
}

/* A mover of gfns[0..n) to node 1 dies right after its release (the guest paused). */
static void mover_dies_after_release(xn_handle *h, const uint64_t *gfns, uint32_t n)
{
    mover_dies(h, gfns, n, 0, XN_MIG_FAULT_DIE_AFTER_RELEASE, NULL, 99);
}

/* The mover dies with gfns released and the guest paused: recovery backs
 * them again, puts the contents back and gives back the pause, once.  With
 * granted_gfn, that gfn was left out of the batch (and of its record). */
static void die_and_recover(xn_handle *h, uint64_t granted_gfn)
{
    static uint64_t gfns[40];
    struct xn_mig_result res;

    guest_reset();
    fill_range(gfns, 200, 40);
    if (granted_gfn)
        grant(3, granted_gfn);
    mover_dies_after_release(h, gfns, 40);
    CHECK(pause_count(1) == 1 && exists(record) && xn_mig_record_busy(record) == 0);
    CHECK(gfn_frame(1, 200) < 0); /* released, not backed */
    CHECK(!granted_gfn || gfn_frame(1, granted_gfn) >= 0); /* never released */
    CHECK(xn_mig_recover(h, record, &res) == 1 && res.fallback == (granted_gfn ? 39 : 40) && res.lost == 0);
    CHECK(contents_intact(gfns, 40));
    CHECK(xn_mig_recover(h, record, &res) == 0); /* nothing left: never a second unpause */
    settled(h);
}

/* A record of a batch with no gfns left in it (all granted at the pause) that
 * says COPIED, as a mover before the fix left one when killed there: recovery
 * has no contents to put back, only the pause to give back. */
static void test_recover_an_empty_batch(xn_handle *h)
{
    static const uint64_t none[1];
    struct xn_mig_result res;
    struct xn_rec rec = { .fd = -1 };

    guest_reset();
    CHECK(xn_rec_create(&rec, record, XN_REC_KIND_BATCH, 1, handle_of(h, 1), none, 0) == 0);
    CHECK(xc_domain_pause(xn_xch(h), 1) == 0 && pause_count(1) == 1);
    xn_rec_set_state(&rec, XN_REC_COPIED);
    xn_rec_close(&rec);
    CHECK(xn_mig_recover(h, record, &res) == 1 && res.fallback == 0 && res.lost == 0);
    CHECK(pause_count(1) == 0 && !exists(record));
    settled(h);
}

/* The record's domain is gone and another got its domid (another handle):
 * recovery removes the record and never touches the newcomer. */
static void test_recovery_never_touches_a_domain_that_reused_the_domid(xn_handle *h)
{
    static const uint64_t none[1];
    uint8_t other[XN_REC_HANDLE_BYTES];
    struct xn_mig_result res;
    struct xn_rec rec = { .fd = -1 };

    guest_reset();
    memcpy(other, handle_of(h, 1), sizeof(other));
    other[0] ^= 0xff;
    CHECK(xn_rec_create(&rec, record, XN_REC_KIND_BATCH, 1, other, none, 0) == 0);
    CHECK(xc_domain_pause(xn_xch(h), 1) == 0 && pause_count(1) == 1); /* the newcomer's own pause */
    xn_rec_set_state(&rec, XN_REC_PAUSED);
    xn_rec_close(&rec);
    CHECK(xn_mig_recover(h, record, &res) == XN_MIG_RECOVERED_GONE);
    CHECK(pause_count(1) == 1 && !exists(record));
    CHECK(xc_domain_unpause(xn_xch(h), 1) == 0);
    settled(h);
}

/* The mover dies after its release while one released frame is still held (a
 * mapping the layout check missed): that frame still counts against the
 * domain's maximum, so backing every gfn again needs it raised, as the mover
 * itself would have done.  Recovery does so and gives the pause back. */
static void test_recovery_raises_the_maximum_a_held_frame_takes(xn_handle *h)
{
    static uint64_t gfns[40];
    struct xn_mig_result res;
    long held;

    guest_reset();
    fill_range(gfns, 700, 40);
    held = gfn_frame(1, 710);
    frame_get(held);
    mover_dies_after_release(h, gfns, 40);
    CHECK(pause_count(1) == 1 && exists(record));
    CHECK(xn_mig_recover(h, record, &res) == 1 && res.lost == 0 && res.raised_max >= 1);
    CHECK(contents_intact(gfns, 40));
    CHECK(pause_count(1) == 0 && !exists(record));
    frame_put(held);
}

/* The copy back fails (a mapping refused): the new frames hold zeroes, the
 * saved contents are in the record.  The guest must not run on them: it stays
 * paused, the record is kept for recovery, which puts the contents back and
 * gives back the pause.  Without a record a move is refused before anything. */
static void test_copy_back_fails(xn_handle *h)
{
    static uint64_t gfns[40];
    struct xn_mig_result res;

    guest_reset();
    fill_range(gfns, 400, 40);
    CHECK(xn_mig_move(h, 1, gfns, 40, 1, 0, XN_MIG_FAULT_COPY_BACK, record, &res) == -EFAULT);
    CHECK(res.stage == XN_MIG_STAGE_COPY_BACK && res.released == 40 && res.lost == 40 && res.error == -EFAULT);
    CHECK(pause_count(1) == 1 && exists(record) && xn_mig_record_busy(record) == 0);
    CHECK(*live_mappings == 0 && on_node(gfns, 40, 1) == 40 && !contents_intact(gfns, 1));
    CHECK(xn_mig_recover(h, record, &res) == 1 && res.fallback == 0 && res.lost == 0);
    CHECK(contents_intact(gfns, 40) && on_node(gfns, 40, 1) == 40);
    settled(h);

    guest_reset();
    CHECK(xn_mig_move(h, 1, gfns, 40, 1, 0, XN_MIG_FAULT_COPY_BACK, NULL, &res) == -EINVAL);
    CHECK(res.released == 0 && res.stage == XN_MIG_STAGE_NONE && pause_count(1) == 0 && contents_intact(gfns, 40));
    /* an empty batch moves nothing, but a node the host lacks (or no record) is still refused */
    CHECK(xn_mig_move(h, 1, gfns, 0, 1, 0, 0, record, &res) == 0 && pause_count(1) == 0);
    CHECK(xn_mig_move(h, 1, gfns, 0, 7, 0, 0, record, &res) == -EINVAL && res.error == -EINVAL);
    CHECK(xn_mig_move(h, 1, gfns, 0, 1, 0, 0, NULL, &res) == -EINVAL);
}

/* An admin unpauses a guest its mover left paused (it looks stuck), and the
 * guest runs and writes.  Recovery must not write the older saved copy over
 * what the guest has: only gfns that still have no frame (which it cannot
 * have written) are backed and given their saved contents, and the pause it
 * no longer holds is not given back again. */
static void test_recovery_of_a_guest_someone_unpaused(xn_handle *h)
{
    int (*unpause)(void *, uint32_t) = (int (*)(void *, uint32_t))dlsym(RTLD_DEFAULT, "xc_domain_unpause");
    static uint64_t gfns[40];
    struct xn_mig_result res;
    uint8_t *page;

    CHECK(unpause != NULL);
    if (!unpause)
        return;
    /* the copy back failed: every gfn has a (zeroed) frame, the guest writes to one */
    guest_reset();
    fill_range(gfns, 500, 40);
    CHECK(xn_mig_move(h, 1, gfns, 40, 1, 0, XN_MIG_FAULT_COPY_BACK, record, &res) == -EFAULT);
    CHECK(unpause(NULL, 1) == 0 && pause_count(1) == 0);
    page = (uint8_t *)gfn_page(505);
    CHECK(page != NULL);
    if (page)
        memcpy(page, "newer, by the guest", 20);
    CHECK(xn_mig_recover(h, record, &res) == XN_MIG_RECOVERED_RUNNING && res.fallback == 0);
    CHECK(page && memcmp(gfn_page(505), "newer, by the guest", 20) == 0);
    settled(h);

    /* the mover died with gfns released: those get a frame and their contents */
    guest_reset();
    fill_range(gfns, 600, 40);
    mover_dies_after_release(h, gfns, 40);
    CHECK(unpause(NULL, 1) == 0);
    CHECK(xn_mig_recover(h, record, &res) == XN_MIG_RECOVERED_RUNNING && res.fallback == 40 && res.lost == 0);
    CHECK(contents_intact(gfns, 40));
    settled(h);
}

/* Somebody pauses the domain (xl pause, the toolstack's VM.pause): a count Xen
 * shares between every caller, so the paused flag says nothing of whose. */
static int other_pause(xn_handle *h)
{
    return xc_domain_pause(xn_xch(h), 1);
}

static int other_unpause(xn_handle *h)
{
    return xc_domain_unpause(xn_xch(h), 1);
}

/* The reviewer's sequence: the mover leaves the guest paused with its saved copy
 * (the copy back failed, or it died after the release); an operator unpauses it,
 * the guest runs and writes; then someone else pauses it again, and recovery
 * runs.  The domain is paused, but the pause is not ours: the guest's write must
 * stay (only gfns without a frame get the saved copy) and the other party's
 * pause must stay too.  Then a record that says PAUSED or UNPAUSING, the same
 * way: no unpause for a pause the guest ran past.  And the case the clock
 * settles the other way: paused, the guest not run since, the pause is ours. */
static void test_recovery_leaves_a_pause_taken_after_the_guest_ran(xn_handle *h)
{
    static uint64_t gfns[40];
    static const uint64_t none[1];
    uint32_t states[] = { XN_REC_PAUSED, XN_REC_RESTORED, XN_REC_UNPAUSING };
    struct xn_mig_result res;
    struct xn_rec rec = { .fd = -1 };
    uint8_t *page;
    size_t i;

    guest_reset();
    fill_range(gfns, 500, 40);
    CHECK(xn_mig_move(h, 1, gfns, 40, 1, 0, XN_MIG_FAULT_COPY_BACK, record, &res) == -EFAULT);
    CHECK(pause_count(1) == 1 && other_unpause(h) == 0);
    CHECK(guest_run(1, 20000000) == 1);
    page = (uint8_t *)gfn_page(505);
    CHECK(page != NULL);
    if (page)
        memcpy(page, "newer, by the guest", 20);
    CHECK(other_pause(h) == 0 && pause_count(1) == 1);
    CHECK(xn_mig_recover(h, record, &res) == XN_MIG_RECOVERED_RUNNING && res.fallback == 0);
    CHECK(page && memcmp(gfn_page(505), "newer, by the guest", 20) == 0);
    CHECK(pause_count(1) == 1 && !exists(record)); /* the other party's pause, kept */
    CHECK(other_unpause(h) == 0);
    settled(h);

    /* died after the release: the released gfns get their contents, the pause stays */
    guest_reset();
    fill_range(gfns, 600, 40);
    mover_dies_after_release(h, gfns, 40);
    CHECK(other_unpause(h) == 0 && guest_run(1, 1000000) == 1 && other_pause(h) == 0);
    CHECK(xn_mig_recover(h, record, &res) == XN_MIG_RECOVERED_RUNNING && res.fallback == 40 && res.lost == 0);
    CHECK(contents_intact(gfns, 40) && pause_count(1) == 1);
    CHECK(other_unpause(h) == 0);
    settled(h);

    for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        /* our pause, its clock stored, then given back by someone; the guest runs; someone pauses */
        guest_reset();
        CHECK(xn_rec_create(&rec, record, XN_REC_KIND_BATCH, 1, handle_of(h, 1), none, 0) == 0);
        CHECK(other_pause(h) == 0 && xn_record_run_clock(xn_xch(h), 1, &rec) == 0);
        xn_rec_set_state(&rec, states[i]);
        xn_rec_close(&rec);
        CHECK(other_unpause(h) == 0 && guest_run(1, 1000) == 1 && other_pause(h) == 0);
        CHECK(xn_mig_recover(h, record, &res) == 0 && pause_count(1) == 1 && !exists(record));
        CHECK(other_unpause(h) == 0);
        settled(h);

        /* still ours: the guest has not run since */
        guest_reset();
        CHECK(xn_rec_create(&rec, record, XN_REC_KIND_BATCH, 1, handle_of(h, 1), none, 0) == 0);
        CHECK(other_pause(h) == 0 && xn_record_run_clock(xn_xch(h), 1, &rec) == 0);
        xn_rec_set_state(&rec, states[i]);
        xn_rec_close(&rec);
        CHECK(guest_run(1, 1000) == 0); /* paused: it cannot */
        CHECK(xn_mig_recover(h, record, &res) == 1 && pause_count(1) == 0 && !exists(record));
        settled(h);
    }
}

/* A record a version 3 mover left (before an upgrade: no run clock, the gfns
 * where the clock is now) is still recovered, by the old rule: the domain is
 * paused, so the copy goes back and the pause is given back. */
static void test_recovery_of_a_version_3_record(xn_handle *h)
{
    static uint64_t gfns[40];
    struct xn_mig_result res;
    struct xn_rec_header *hdr;
    size_t size;
    int fd;

    guest_reset();
    fill_range(gfns, 400, 40);
    CHECK(xn_mig_move(h, 1, gfns, 40, 1, 0, XN_MIG_FAULT_COPY_BACK, record, &res) == -EFAULT);
    CHECK(pause_count(1) == 1 && !contents_intact(gfns, 1));
    /* rewrite it as version 3 wrote it: 40 gfns fit the first page either way */
    size = xn_rec_bytes(XN_REC_KIND_BATCH, 40);
    fd = open(record, O_RDWR);
    hdr = fd < 0 ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(hdr != MAP_FAILED);
    if (hdr == MAP_FAILED)
        return;
    CHECK(hdr->version == XN_REC_VERSION && hdr->run_ns != XN_REC_NO_RUN_CLOCK);
    memmove(&hdr->run_ns, hdr->gfns, 40 * sizeof(uint64_t));
    hdr->version = 3;
    munmap(hdr, size);
    close(fd);
    CHECK(xn_mig_recover(h, record, &res) == 1 && res.lost == 0);
    CHECK(contents_intact(gfns, 40) && on_node(gfns, 40, 1) == 40);
    settled(h);
}

/* The guest gives a gfn of the batch back (its balloon driver) after the mover
 * mapped it and before the pause: the mapping alone kept its frame.  It is left
 * out like a granted one; the rest moves, and a stuck frame is still named. */
static void test_move_gfn_given_back_before_the_pause(xn_handle *h)
{
    static uint64_t gfns[64];
    struct xn_mig_result res;
    long held;

    guest_reset();
    fill_range(gfns, 100, 64);
    held = gfn_frame(1, 101); /* and another domain holds one (a backend's mapping) */
    frame_get(held);
    setenv("FAKE_XC_GONE_AT_PAUSE", "105", 1);
    CHECK(xn_mig_move(h, 1, gfns, 64, 1, 16, 0, record, &res) == -EBUSY);
    unsetenv("FAKE_XC_GONE_AT_PAUSE");
    CHECK(res.granted == 1 && res.stage == XN_MIG_STAGE_VERIFY && res.not_freed == 1);
    CHECK(res.stuck_first == 0 && res.stuck_count == 17); /* gfns 100..116 of the caller's list */
    CHECK(res.released == 16 && res.lost == 0 && gfn_frame(1, 105) < 0);
    CHECK(contents_intact(gfns, 5) && contents_intact(gfns + 6, 58));
    frame_put(held);
    settled(h);
}

/* The guest gives a gfn of the batch back and takes it again (its balloon
 * driver), writing new data, after the mover mapped it and before the pause:
 * the mapping still shows the old frame.  The page count moved, so the batch
 * is copied through a fresh mapping inside the pause: the new data moves, not
 * the old frame's. */
static void test_move_gfn_given_back_and_taken_again_before_the_pause(xn_handle *h)
{
    static uint64_t gfns[64];
    uint8_t want[4096];
    const uint8_t *page;
    struct xn_mig_result res;

    guest_reset();
    fill_range(gfns, 100, 64);
    setenv("FAKE_XC_RETAKEN_AT_PAUSE", "105", 1);
    CHECK(xn_mig_move(h, 1, gfns, 64, 1, 16, 0, record, &res) == 0);
    unsetenv("FAKE_XC_RETAKEN_AT_PAUSE");
    CHECK(res.error == 0 && res.moved == 64 && res.lost == 0 && on_node(gfns, 64, 1) == 64);
    retaken_page(105, want);
    page = gfn_page(105);
    CHECK(page && memcmp(page, want, sizeof(want)) == 0);
    CHECK(contents_intact(gfns, 5) && contents_intact(gfns + 6, 58));
    settled(h);
}

/* An unpause that fails (libxc could not bounce its buffer, or Xen refused it)
 * did not happen: the scan's probe and the move say so and keep their record,
 * and recovery gives the pause back. */
static void test_a_failed_unpause_is_left_to_recovery(xn_handle *h)
{
    static uint8_t cls[MAX_GFN + 1];
    static uint64_t gfns[32];
    struct xn_mig_scan_stats stats;
    struct xn_mig_result res;

    guest_reset();
    setenv("FAKE_XC_FAIL", "xc_domain_unpause=ENOMEM", 1);
    CHECK(xn_mig_scan(h, 1, MAX_GFN + 1, cls, 5, record, &stats) == -ENOMEM);
    unsetenv("FAKE_XC_FAIL");
    CHECK(pause_count(1) == 1 && exists(record) && xn_mig_record_busy(record) == 0);
    CHECK(xn_mig_recover(h, record, &res) == 1 && pause_count(1) == 0 && !exists(record));

    guest_reset();
    fill_range(gfns, 100, 32);
    setenv("FAKE_XC_FAIL", "xc_domain_unpause=ENOMEM", 1);
    CHECK(xn_mig_move(h, 1, gfns, 32, 1, 0, 0, record, &res) == -ENOMEM);
    unsetenv("FAKE_XC_FAIL");
    CHECK(res.stage == XN_MIG_STAGE_UNPAUSE && res.released == 32 && res.lost == 0);
    CHECK(pause_count(1) == 1 && exists(record) && xn_mig_record_busy(record) == 0);
    CHECK(contents_intact(gfns, 32) && on_node(gfns, 32, 1) == 32);
    CHECK(xn_mig_recover(h, record, &res) == 1 && res.fallback == 0);
    CHECK(contents_intact(gfns, 32));
    settled(h);
}

/* The unpause fails after the batch already failed (the target ran short): the
 * guest is still paused, and the stage says so whatever came before. */
static void test_a_failed_unpause_after_a_failure_still_says_unpause(xn_handle *h)
{
    static uint64_t gfns[600];
    struct xn_mig_result res;

    guest_reset();
    fill_range(gfns, 1024, 600);
    set_node_room(1, 100);
    setenv("FAKE_XC_FAIL", "xc_domain_unpause=ENOMEM", 1);
    CHECK(xn_mig_move(h, 1, gfns, 600, 1, 0, 0, record, &res) == -ENOMEM);
    unsetenv("FAKE_XC_FAIL");
    CHECK(res.stage == XN_MIG_STAGE_UNPAUSE && res.error == -ENOMEM && res.fallback == 500);
    CHECK(pause_count(1) == 1 && exists(record) && xn_mig_recover(h, record, &res) == 1);
    CHECK(contents_intact(gfns, 600));
    settled(h);
}

/* Someone else unpaused the guest inside the pause window: it may have run on gfns
 * being moved, so the move does not report success (and holds no pause to give back). */
static void test_an_unpause_by_someone_else_inside_the_window_is_an_error(xn_handle *h)
{
    static uint64_t gfns[32];
    struct xn_mig_result res;

    guest_reset();
    fill_range(gfns, 100, 32);
    setenv("FAKE_XC_UNPAUSED_BY_OTHER", "1", 1);
    CHECK(xn_mig_move(h, 1, gfns, 32, 1, 0, 0, record, &res) == -EINVAL);
    unsetenv("FAKE_XC_UNPAUSED_BY_OTHER");
    CHECK(res.stage == XN_MIG_STAGE_UNPAUSE && res.released == 32 && pause_count(1) == 0 && !exists(record));
    settled(h);
}

/* One gfn Xen will not back again, anywhere: the guest waits, paused, for a
 * recovery that can back it. */
static void test_a_gfn_xen_will_not_back_loses_only_itself(xn_handle *h)
{
    static uint64_t gfns[32];
    struct xn_mig_result res;

    guest_reset();
    fill_range(gfns, 100, 32);
    setenv("FAKE_XC_NO_BACKING", "110", 1);
    CHECK(xn_mig_move(h, 1, gfns, 32, 1, 0, 0, record, &res) == -ENOMEM);
    CHECK(res.released == 32 && res.lost == 1 && pause_count(1) == 1 && exists(record));
    CHECK(res.raised_max == 0); /* the domain had room: its maximum was not what failed */
    CHECK(xn_mig_recover(h, record, &res) == -ENOMEM && pause_count(1) == 1 && exists(record));
    unsetenv("FAKE_XC_NO_BACKING");
    CHECK(xn_mig_recover(h, record, &res) == 1 && res.lost == 0);
    CHECK(contents_intact(gfns, 32));
    settled(h);
}

static uint64_t max_pages(xn_handle *h)
{
    xc_domaininfo_t info;
    memset(&info, 0, sizeof(info));
    return xn_domain_info(xn_xch(h), 1, &info) == 0 ? info.max_pages : 0;
}

/* max_pages is the toolstack's: squeezed caps a guest whose balloon driver is
 * still on its way down at its target, below its page count (Xen allows that:
 * no allocation until the count is under it), and caches what it set.  A batch
 * must raise it to back every released gfn again (and a frame the release could
 * not free still counts), but gives it back afterwards: a mover left the cap
 * raised to the guest's count for good, so its balloon could take back memory
 * squeezed had given to others. */
static void test_a_raised_maximum_is_given_back(xn_handle *h)
{
    static uint64_t gfns[512];
    struct xn_mig_result res;
    uint64_t before, cap;
    long held;

    guest_reset();
    fill_range(gfns, 512, 512);
    before = tot_pages(h);
    cap = before - 100;
    CHECK(xc_domain_setmaxmem(xn_xch(h), 1, cap * 4) == 0 && max_pages(h) == cap);
    CHECK(xn_mig_move(h, 1, gfns, 512, 1, 16, 0, record, &res) == 0 && res.stage == XN_MIG_STAGE_DONE);
    CHECK(res.raised_max == 100 && res.moved == 512 && on_node(gfns, 512, 1) == 512 && contents_intact(gfns, 512));
    CHECK(tot_pages(h) == before && max_pages(h) == cap);
    settled(h);

    /* a frame the release could not free: the maximum raised for it goes back too */
    guest_reset();
    fill_range(gfns, 100, 64);
    cap = max_pages(h);
    held = gfn_frame(1, 130);
    frame_get(held);
    CHECK(xn_mig_move(h, 1, gfns, 64, 1, 16, 0, record, &res) == -EBUSY && res.raised_max == 1);
    CHECK(contents_intact(gfns, 64) && max_pages(h) == cap);
    frame_put(held);
    CHECK(tot_pages(h) == cap && frames_in_use() == (long)tot_pages(h));

    /* recovery raises it to back a dead mover's gfns, and gives back what it raised */
    guest_reset();
    fill_range(gfns, 700, 40);
    held = gfn_frame(1, 710);
    frame_get(held);
    mover_dies_after_release(h, gfns, 40);
    cap = max_pages(h);
    CHECK(xn_mig_recover(h, record, &res) == 1 && res.lost == 0 && res.raised_max >= 1);
    CHECK(contents_intact(gfns, 40) && max_pages(h) == cap);
    frame_put(held);
    settled(h);
}

/* A mover of gfns[0..n) to node 1 dies right after raising max_pages (the guest paused). */
static void mover_dies_after_raise(xn_handle *h, const uint64_t *gfns, uint32_t n)
{
    mover_dies(h, gfns, n, 16, 0, "FAKE_XC_DIE_AFTER_RAISE", 97);
}

/* The mover is killed between raising max_pages (the toolstack had capped it below
 * the guest's count) and giving it back: recovery sets the toolstack's value again,
 * from the record -- but a value the toolstack set since (a balloon target change)
 * stands.  It stayed raised for good before the record kept it. */
static void test_a_raise_a_dead_mover_left_is_given_back(xn_handle *h)
{
    static uint64_t gfns[512];
    struct xn_mig_result res;
    uint64_t cap;

    guest_reset();
    fill_range(gfns, 512, 512);
    cap = tot_pages(h) - 100;
    CHECK(xc_domain_setmaxmem(xn_xch(h), 1, cap * 4) == 0 && max_pages(h) == cap);
    mover_dies_after_raise(h, gfns, 512);
    CHECK(pause_count(1) == 1 && exists(record) && max_pages(h) > cap);
    CHECK(xn_mig_recover(h, record, &res) == 1 && res.lost == 0 && res.max_restored == cap && !res.max_unknown);
    CHECK(max_pages(h) == cap && contents_intact(gfns, 512));
    settled(h);

    /* the toolstack set its own maximum meanwhile: that one stands */
    guest_reset();
    fill_range(gfns, 512, 512);
    cap = tot_pages(h) - 100;
    CHECK(xc_domain_setmaxmem(xn_xch(h), 1, cap * 4) == 0);
    mover_dies_after_raise(h, gfns, 512);
    CHECK(xc_domain_setmaxmem(xn_xch(h), 1, (tot_pages(h) + 1000) * 4) == 0);
    cap = max_pages(h);
    CHECK(xn_mig_recover(h, record, &res) == 1 && res.lost == 0 && res.max_restored == 0);
    CHECK(max_pages(h) == cap && contents_intact(gfns, 512));
    settled(h);
}

/* A version 4 record (before an upgrade: no raise recorded) left past its copy cannot say
 * whether max_pages was raised: recovered all the same, max_pages left, and the caller told. */
static void test_a_version_4_record_says_its_maximum_is_unknown(xn_handle *h)
{
    static uint64_t gfns[40];
    struct xn_mig_result res;
    struct xn_rec_header *hdr;
    size_t size;
    uint64_t max;
    int fd;

    guest_reset();
    fill_range(gfns, 400, 40);
    CHECK(xn_mig_move(h, 1, gfns, 40, 1, 0, XN_MIG_FAULT_COPY_BACK, record, &res) == -EFAULT);
    size = xn_rec_bytes(XN_REC_KIND_BATCH, 40);
    fd = open(record, O_RDWR);
    hdr = fd < 0 ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(hdr != MAP_FAILED);
    if (hdr == MAP_FAILED)
        return;
    memmove(&hdr->max_was, hdr->gfns, 40 * sizeof(uint64_t)); /* where version 4 kept them */
    hdr->version = 4;
    munmap(hdr, size);
    close(fd);
    max = max_pages(h);
    CHECK(xn_mig_recover(h, record, &res) == 1 && res.lost == 0 && res.max_unknown == 1 && res.max_restored == 0);
    CHECK(contents_intact(gfns, 40) && max_pages(h) == max);
    settled(h);
}

/* Arguments that would pause the guest with nothing able to give the pause
 * back, pause it for weeks, or name another node than meant are refused
 * before anything happens.  Xen's memory flags hold a node in 8 bits: node
 * 256 became node 0, and 255 up turned on populate-on-demand. */
static void test_bad_arguments_are_refused_before_any_pause(xn_handle *h)
{
    static uint8_t cls[MAX_GFN + 1];
    static uint64_t gfns[8];
    struct xn_mig_scan_stats stats;
    struct xn_mig_result res;
    /* 2, 5, 63: below the 64 nodes Xen 4.17's physinfo names (max_node_id 63), not the host's */
    uint32_t nodes[] = { 2, 5, 63, 64, 255, 256, 257, 0xffffffffu };
    size_t i;

    guest_reset();
    fill_range(gfns, 100, 8);
    for (i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        CHECK(xn_mig_move(h, 1, gfns, 8, nodes[i], 0, 0, record, &res) == -EINVAL);
        CHECK(res.released == 0 && res.stage == XN_MIG_STAGE_NONE && !exists(record));
    }
    CHECK(xn_claim(h, 1, 2, 16) == -EINVAL && xn_claim(h, 1, 63, 16) == -EINVAL && xn_claim(h, 1, 256, 16) == -EINVAL);
    CHECK(xn_node_check(h, 0) == 0 && xn_node_check(h, 1) == 0 && xn_node_check(h, 2) == -EINVAL);
    CHECK(xn_mig_scan(h, 1, MAX_GFN + 1, cls, 5, NULL, &stats) == -EINVAL);
    CHECK(xn_mig_scan(h, 1, MAX_GFN + 1, cls, XN_MIG_PROBE_MAX_MS + 1, record, &stats) == -EINVAL);
    CHECK(xn_mig_scan(h, 1, MAX_GFN + 1, cls, 0xffffffffu, record, &stats) == -EINVAL);
    CHECK(pause_count(1) == 0 && on_node(gfns, 8, 0) == 8 && contents_intact(gfns, 8));
}

/* libxc cannot allocate its bounce buffer: xc_gnttab_op returns 0 without asking
 * Xen, the op untouched.  That is no answer, least of all "nothing granted": the
 * scan and the move fail (-EIO) before anything is released, the granted gfn
 * (which a backend may copy into at any moment) never leaves its frame. */
static void test_a_grant_query_libxc_never_made_is_an_error(xn_handle *h)
{
    static uint8_t cls[MAX_GFN + 1];
    static uint64_t gfns[16];
    struct xn_mig_scan_stats stats;
    struct xn_mig_result res;
    long frame;

    guest_reset();
    fill_range(gfns, 300, 16);
    grant(2, 305);
    frame = gfn_frame(1, 305);
    setenv("FAKE_XC_GNTTAB_NO_BOUNCE", "1", 1);
    CHECK(xn_mig_scan(h, 1, MAX_GFN + 1, cls, 0, NULL, &stats) == -EIO);
    CHECK(xn_mig_move(h, 1, gfns, 16, 1, 0, 0, record, &res) == -EIO);
    unsetenv("FAKE_XC_GNTTAB_NO_BOUNCE");
    CHECK(res.released == 0 && gfn_frame(1, 305) == frame && on_node(gfns, 16, 0) == 16);
    CHECK(contents_intact(gfns, 16));
    settled(h);
}

/* A node id below the last online one that Xen reports offline (XEN_INVALID_MEM_SZ)
 * is not the host's either; a failing numainfo is an error, never a yes. */
static void test_an_offline_node_is_refused(void)
{
    xn_handle *fresh = NULL;

    setenv("FAKE_XC_OFFLINE_NODE", "0", 1);
    CHECK(xn_open(&fresh) == 0);
    if (fresh) {
        CHECK(xn_node_check(fresh, 0) == -EINVAL && xn_node_check(fresh, 1) == 0);
        xn_close(fresh);
    }
    unsetenv("FAKE_XC_OFFLINE_NODE");
    setenv("FAKE_XC_FAIL", "xc_numainfo=EPERM", 1);
    CHECK(xn_open(&fresh) == 0);
    if (fresh) {
        CHECK(xn_node_check(fresh, 1) == -EPERM);
        xn_close(fresh);
    }
    unsetenv("FAKE_XC_FAIL");
}


/* The balloon driver goes on giving gfns back while the batch is mapped again (squeezed
 * lowering its target: no xapi operation says so): each gfn given back before its map is
 * left out, however many rounds that takes, and the rest moves -- a second one stopped the
 * move (the map was tried again only once). */
static void test_gfns_given_back_while_the_batch_is_mapped_again(xn_handle *h)
{
    static uint64_t many[64];
    struct xn_mig_result res;
    int rc;

    guest_reset();
    fill_range(many, 100, 64);
    setenv("FAKE_FMEM_GIVE_BACK_AT_MAP", "110,120,130", 1);
    rc = xn_mig_move(h, 1, many, 64, 1, 16, 0, record, &res);
    unsetenv("FAKE_FMEM_GIVE_BACK_AT_MAP");
    CHECK(rc == 0 && res.error == 0 && res.stage == XN_MIG_STAGE_DONE && res.granted == 3);
    CHECK(res.moved == 61 && res.lost == 0 && on_node(many, 10, 1) == 10);
    CHECK(gfn_frame(1, 110) < 0 && gfn_frame(1, 120) < 0 && gfn_frame(1, 130) < 0);
    CHECK(contents_intact(many, 10) && contents_intact(many + 11, 9) && contents_intact(many + 21, 9) &&
          contents_intact(many + 31, 33));
    settled(h);
}

int main(void)
{
    xn_handle *h = NULL;

    if (!bind_fake()) {
        fprintf(stderr, "the fake libxenctrl/libxenforeignmemory are not the ones loaded (LD_LIBRARY_PATH)\n");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    snprintf(dir, sizeof(dir), "/tmp/xn-pagemove-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(record, sizeof(record), "%s/move-1.batch", dir);
    CHECK(xn_open(&h) == 0);
    if (h) {
        test_scan(h);
        test_move_whole_runs(h);
        test_move_stuck_frame(h);
        test_move_target_short(h);
        test_move_unbacked_gfn(h);
        test_a_refused_pause_is_a_failure_in_the_result(h);
        test_populate_on_demand_is_refused(h);
        test_move_granted_since_scan(h);
        test_move_leaves_out_a_page_xen_maps_since_the_scan(h);
        die_and_recover(h, 0);
        die_and_recover(h, 221);
        test_copy_back_fails(h);
        test_recover_an_empty_batch(h);
        test_recovery_never_touches_a_domain_that_reused_the_domid(h);
        test_recovery_raises_the_maximum_a_held_frame_takes(h);
        test_recovery_of_a_guest_someone_unpaused(h);
        test_recovery_leaves_a_pause_taken_after_the_guest_ran(h);
        test_recovery_of_a_version_3_record(h);
        test_move_gfn_given_back_before_the_pause(h);
        test_move_gfn_given_back_and_taken_again_before_the_pause(h);
        test_a_failed_unpause_is_left_to_recovery(h);
        test_a_gfn_xen_will_not_back_loses_only_itself(h);
        test_a_raised_maximum_is_given_back(h);
        test_a_raise_a_dead_mover_left_is_given_back(h);
        test_a_version_4_record_says_its_maximum_is_unknown(h);
        test_gfns_given_back_while_the_batch_is_mapped_again(h);
        test_a_failed_unpause_after_a_failure_still_says_unpause(h);
        test_an_unpause_by_someone_else_inside_the_window_is_an_error(h);
        test_bad_arguments_are_refused_before_any_pause(h);
        test_an_offline_node_is_refused();
        test_a_grant_query_libxc_never_made_is_an_error(h);
        xn_close(h);
    }
    rmdir(dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
