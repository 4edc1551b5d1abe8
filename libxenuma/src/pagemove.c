/*
 * Page migration between NUMA nodes for translated (PVH/HVM) guests on
 * stock Xen, from dom0: see libxenuma.h for the contract and
 * ../shared/page-migration-notes.md (in the project docs) for what was
 * measured.  Per batch, with the domain paused: copy the frames out,
 * release them (decrease_reservation), check that Xen really freed them,
 * populate the same gfns from the target node, copy the contents back.
 */
#define _GNU_SOURCE
#include "libxenuma.h"
#include "pagelayout.h"
#include "pagemove_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xen/memory.h>
#include <xen/hvm/params.h>
#include <xen/grant_table.h>

/* Exported by libxenctrl but not declared in xenctrl.h. */
int xc_get_pfn_type_batch(xc_interface *xch, uint32_t dom, unsigned int num, xen_pfn_t *arr);

#define TYPE_BATCH 1024u     /* gfns per getpageframeinfo3 */
#define SCAN_CHUNK 1024u     /* pages mapped at a time while scanning */

static int neg_errno(void)
{
    return errno ? -errno : -EIO;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int domain_info(xc_interface *xch, uint32_t domid, xc_domaininfo_t *info)
{
    int n = xc_domain_getinfolist(xch, domid, 1, info);
    if (n < 0)
        return neg_errno();
    if (n != 1 || info->domain != domid)
        return -ESRCH;
    return 0;
}

int xn_mig_check(xn_handle *h, uint32_t domid)
{
    xc_interface *xch = xn_xch(h);
    xc_domaininfo_t info;
    int rc = domain_info(xch, domid, &info);

    if (rc)
        return rc;
    if (!(info.flags & XEN_DOMINF_hvm_guest))
        return -EPROTOTYPE; /* PV: its page tables hold machine frames */
    if (info.flags & (XEN_DOMINF_dying | XEN_DOMINF_shutdown))
        return -ESRCH;
    /* Live migration cannot be seen from here: a log-dirty PEEK succeeds
     * whether or not log-dirty mode is on.  Callers ask the toolstack. */
    return 0;
}

int xn_mig_max_gfn(xn_handle *h, uint32_t domid, uint64_t *max_gfn)
{
    xen_pfn_t max = 0;
    if (xc_domain_maximum_gpfn(xn_xch(h), domid, &max) < 0)
        return neg_errno();
    *max_gfn = max;
    return 0;
}

/* The single-frame HVM params: pages the toolstack or its daemons map. */
static const uint32_t magic_params[] = {
    HVM_PARAM_STORE_PFN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_IOREQ_PFN, HVM_PARAM_BUFIOREQ_PFN,
    HVM_PARAM_PAGING_RING_PFN, HVM_PARAM_MONITOR_RING_PFN, HVM_PARAM_SHARING_RING_PFN,
};
#define NR_MAGIC_PARAMS (sizeof(magic_params) / sizeof(magic_params[0]))

/*
 * Ordinary RAM (NOTAB) is movable; holes, MMIO and Xen-owned frames
 * (shared_info, grant frames: XTAB) are not.  A translated guest's gfn space
 * is mostly hole (a PVH guest's magic and special pages sit just below
 * 4 GiB), so the scan stops once it has seen all the domain's pages but
 * SPECIAL_SLACK: what lies beyond is holes and the toolstack's special pages
 * (never moved anyway), or at worst a few RAM frames left unmoved -- never
 * the reverse, whatever the page count does meanwhile.
 */
#define SPECIAL_SLACK 64

static int classify_types(xc_interface *xch, uint32_t domid, uint64_t nr, uint8_t *cls, uint64_t *typed)
{
    xen_pfn_t arr[TYPE_BATCH];
    uint64_t first, ram = 0;
    unsigned int i, n;
    xc_domaininfo_t info;
    int rc = domain_info(xch, domid, &info);

    if (rc)
        return rc;
    memset(cls, XN_GFN_NOT_RAM, nr);
    for (first = 0; first < nr; first += n) {
        n = (unsigned int)(nr - first < TYPE_BATCH ? nr - first : TYPE_BATCH);
        if (ram > 0 && ram + SPECIAL_SLACK >= info.tot_pages)
            break;
        *typed += n;
        for (i = 0; i < n; i++)
            arr[i] = first + i;
        if (xc_get_pfn_type_batch(xch, domid, n, arr))
            return neg_errno();
        for (i = 0; i < n; i++) {
            int is_ram = (arr[i] & XEN_DOMCTL_PFINFO_LTAB_MASK) == XEN_DOMCTL_PFINFO_NOTAB;
            cls[first + i] = is_ram ? XN_GFN_RAM : XN_GFN_NOT_RAM;
            ram += is_ram;
        }
    }
    return 0;
}

static void mark(uint8_t *cls, uint64_t nr, uint64_t gfn, uint8_t what)
{
    if (gfn < nr && cls[gfn] == XN_GFN_RAM)
        cls[gfn] = what;
}

/* The HVM params that name frames Xen or the toolstack's daemons map.  Those
 * past the typed range (the special pages below 4 GiB) are populated frames
 * the type scan did not reach: they are named as what they are. */
static void classify_magic(xc_interface *xch, uint32_t domid, uint64_t nr, uint8_t *cls, uint64_t typed)
{
    uint64_t value, base = 0, count = 0, i;

    for (i = 0; i < NR_MAGIC_PARAMS; i++)
        if (xc_hvm_param_get(xch, domid, magic_params[i], &value) == 0 && value && value < nr) {
            if (value >= typed)
                cls[value] = XN_GFN_MAGIC;
            mark(cls, nr, value, XN_GFN_MAGIC);
        }
    if (xc_hvm_param_get(xch, domid, HVM_PARAM_IOREQ_SERVER_PFN, &base) == 0 &&
        xc_hvm_param_get(xch, domid, HVM_PARAM_NR_IOREQ_SERVER_PAGES, &count) == 0 && base)
        for (i = 0; i < count && i < 256; i++)
            mark(cls, nr, base + i, XN_GFN_MAGIC);
}

/* Every frame the guest grants to another domain: a backend may map it, or
 * copy into it (grant copy) at any moment, so none of them moves. */
static int classify_grants(xc_interface *xch, uint32_t domid, uint64_t nr, uint8_t *cls, uint64_t *busy_out)
{
    xenforeignmemory_handle *fmem = xc_interface_fmem_handle(xch);
    xenforeignmemory_resource_handle *res;
    struct gnttab_query_size query = { .dom = (domid_t)domid };
    int version = xc_gnttab_get_version(xch, domid);
    size_t entries, busy = 0, i;
    uint64_t *gfns;
    void *table = NULL;
    long got;

    if (version < 0)
        return neg_errno();
    if (version == 0)
        return 0; /* no grant table set up yet */
    if (xc_gnttab_op(xch, GNTTABOP_query_size, &query, sizeof(query), 1) || query.status != GNTST_okay)
        return query.status != GNTST_okay ? -EIO : neg_errno();
    if (query.nr_frames == 0)
        return 0;
    /* Only the frames in use: asking for more would grow the table. */
    res = xenforeignmemory_map_resource(fmem, (domid_t)domid, XENMEM_resource_grant_table,
                                        XENMEM_resource_grant_table_id_shared, 0, query.nr_frames, &table,
                                        PROT_READ, 0);
    if (!res)
        return neg_errno();
    entries = (size_t)query.nr_frames * XN_PAGE_SIZE / (version == 1 ? 8 : 16);
    gfns = malloc(entries * sizeof(*gfns));
    if (!gfns) {
        xenforeignmemory_unmap_resource(fmem, res);
        return -ENOMEM;
    }
    got = xn_granted_gfns(table, entries, version, gfns, entries, &busy);
    xenforeignmemory_unmap_resource(fmem, res);
    for (i = 0; got > 0 && i < (size_t)got; i++)
        mark(cls, nr, gfns[i], XN_GFN_GRANTED);
    free(gfns);
    *busy_out = busy;
    return got < 0 ? (int)got : 0;
}

/* FNV-1a over a page, for the probe. */
static uint64_t page_hash(const uint8_t *p)
{
    uint64_t h = 1469598103934665603ull;
    size_t i;
    for (i = 0; i < XN_PAGE_SIZE; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 1099511628211ull;
    }
    return h;
}

/*
 * Visit the RAM gfns chunk by chunk, mapped read-only: recognise layouts,
 * and, when hashes is given, hash every page (hashes indexed by gfn).
 */
static int visit_ram(xc_interface *xch, uint32_t domid, uint64_t nr, uint8_t *cls, uint64_t *hashes,
                     int recognise)
{
    xenforeignmemory_handle *fmem = xc_interface_fmem_handle(xch);
    xen_pfn_t gfns[SCAN_CHUNK];
    int errs[SCAN_CHUNK];
    uint64_t gfn = 0;

    while (gfn < nr) {
        unsigned int n = 0, i;
        uint8_t *map;
        for (; gfn < nr && n < SCAN_CHUNK; gfn++)
            if (cls[gfn] == XN_GFN_RAM)
                gfns[n++] = gfn;
        if (n == 0)
            break;
        map = xenforeignmemory_map(fmem, domid, PROT_READ, n, gfns, errs);
        if (!map)
            return neg_errno();
        for (i = 0; i < n; i++) {
            const uint8_t *page = map + (size_t)i * XN_PAGE_SIZE;
            if (errs[i]) {
                cls[gfns[i]] = XN_GFN_NOT_RAM; /* not mappable: not ours to move */
                continue;
            }
            if (recognise) {
                int layout = xn_page_layout(page);
                if (layout != XN_LAYOUT_PLAIN)
                    cls[gfns[i]] = (uint8_t)layout;
            }
            if (hashes)
                hashes[gfns[i]] = page_hash(page);
        }
        xenforeignmemory_unmap(fmem, map, n);
    }
    return 0;
}

/*
 * Hold off every asynchronous signal for a pause window.  Faults stay
 * deliverable: a blocked SIGSEGV or SIGBUS would kill the process silently
 * instead of letting its handler report (the batch record covers the death).
 */
static void hold_signals(sigset_t *old)
{
    sigset_t set;

    sigfillset(&set);
    sigdelset(&set, SIGSEGV);
    sigdelset(&set, SIGBUS);
    sigdelset(&set, SIGFPE);
    sigdelset(&set, SIGILL);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static void sleep_ms(unsigned int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* Pause, hash, wait for the vCPUs' timers to fire, hash again: whatever
 * changed while no vCPU ran was written by Xen or by a backend. */
static int probe_changes(xc_interface *xch, uint32_t domid, uint64_t nr, uint8_t *cls, unsigned int probe_ms)
{
    uint64_t *before = calloc(nr, sizeof(*before)), *after = calloc(nr, sizeof(*after)), gfn;
    sigset_t old;
    int rc;

    if (!before || !after) {
        free(before);
        free(after);
        return -ENOMEM;
    }
    hold_signals(&old);
    rc = xc_domain_pause(xch, domid) ? neg_errno() : 0;
    if (rc == 0) {
        rc = visit_ram(xch, domid, nr, cls, before, 0);
        if (rc == 0) {
            sleep_ms(probe_ms);
            rc = visit_ram(xch, domid, nr, cls, after, 1);
        }
        xc_domain_unpause(xch, domid);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (gfn = 0; rc == 0 && gfn < nr; gfn++)
        if (cls[gfn] == XN_GFN_RAM && before[gfn] != after[gfn])
            cls[gfn] = XN_GFN_CHANGED;
    free(before);
    free(after);
    return rc;
}

int xn_mig_scan(xn_handle *h, uint32_t domid, uint64_t nr, uint8_t *cls, uint32_t probe_ms,
                struct xn_mig_scan_stats *stats)
{
    xc_interface *xch = xn_xch(h);
    int rc = xn_mig_check(h, domid);
    uint64_t t0 = now_ns(), t1, t2;

    memset(stats, 0, sizeof(*stats));
    if (rc)
        return rc;
    if ((rc = classify_types(xch, domid, nr, cls, &stats->typed)))
        return rc;
    classify_magic(xch, domid, nr, cls, stats->typed);
    t1 = now_ns();
    if ((rc = classify_grants(xch, domid, nr, cls, &stats->busy_grants)))
        return rc;
    t2 = now_ns();
    rc = probe_ms ? probe_changes(xch, domid, nr, cls, probe_ms) : visit_ram(xch, domid, nr, cls, NULL, 1);
    stats->types_ns = t1 - t0;
    stats->grants_ns = t2 - t1;
    stats->layouts_ns = now_ns() - t2;
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Moving one batch.
 */

struct batch {
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    uint32_t domid;
    const uint64_t *gfns;
    uint32_t n;
    uint8_t *copy;          /* n pages of contents */
    uint8_t *is_super;
    xen_pfn_t *scratch;     /* gfn lists handed to Xen */
    struct xn_mig_result *res;
};

static int tot_pages(struct batch *b, uint64_t *out)
{
    xc_domaininfo_t info;
    int rc = domain_info(b->xch, b->domid, &info);
    if (rc == 0)
        *out = info.tot_pages;
    return rc;
}

/* Map gfns[0..count) of the batch; every page must map. */
static int map_pages(struct batch *b, uint32_t count, int prot, uint8_t **out)
{
    int *errs = calloc(count ? count : 1, sizeof(int));
    uint32_t i;
    int rc = 0;

    if (!errs)
        return -ENOMEM;
    for (i = 0; i < count; i++)
        b->scratch[i] = b->gfns[i];
    *out = xenforeignmemory_map(b->fmem, b->domid, prot, count, b->scratch, errs);
    if (!*out)
        rc = neg_errno();
    for (i = 0; rc == 0 && i < count; i++)
        if (errs[i])
            rc = errs[i] < 0 ? errs[i] : -errs[i];
    if (rc && *out)
        xenforeignmemory_unmap(b->fmem, *out, count);
    free(errs);
    return rc;
}

/* Copy between the guest and the batch's buffer through a fresh mapping. */
static int copy_pages(struct batch *b, uint32_t count, int to_guest)
{
    uint8_t *map;
    int rc = map_pages(b, count, to_guest ? PROT_READ | PROT_WRITE : PROT_READ, &map);

    if (rc)
        return rc;
    if (to_guest)
        memcpy(map, b->copy, (size_t)count * XN_PAGE_SIZE);
    else
        memcpy(b->copy, map, (size_t)count * XN_PAGE_SIZE);
    xenforeignmemory_unmap(b->fmem, map, count);
    return 0;
}

/*
 * Release gfns[0..n) in chunks of `chunk`, checking after each that the
 * domain's page count dropped by the chunk: a frame something else still
 * references is unhooked from the guest but not freed.  Returns how many
 * gfns were released (the gfns to repopulate), and sets res->error.
 */
static uint32_t release(struct batch *b, uint32_t chunk)
{
    uint32_t done = 0;

    while (done < b->n) {
        uint32_t len = b->n - done < chunk ? b->n - done : chunk, i;
        uint64_t before, after;
        int got;

        if ((b->res->error = tot_pages(b, &before)))
            return done;
        for (i = 0; i < len; i++)
            b->scratch[i] = b->gfns[done + i];
        got = xc_domain_decrease_reservation(b->xch, b->domid, len, 0, b->scratch);
        if (got < 0) {
            b->res->error = neg_errno();
            b->res->stage = XN_MIG_STAGE_RELEASE;
            /* Nothing is known to be released: repopulating a gfn that is
             * still populated would orphan its frame. */
            return done;
        }
        if ((b->res->error = tot_pages(b, &after)))
            return done + (uint32_t)got;
        if ((uint32_t)got < len) {
            b->res->error = -EIO;
            b->res->stage = XN_MIG_STAGE_RELEASE;
            return done + (uint32_t)got;
        }
        if (before - after < len) {
            b->res->not_freed = len - (before - after);
            b->res->stuck_first = done;
            b->res->stuck_count = len;
            b->res->error = -EBUSY;
            b->res->stage = XN_MIG_STAGE_VERIFY;
            return done + len;
        }
        done += len;
    }
    return done;
}

/* Populate extents from list[], order `order`, with flags; returns how many. */
static uint32_t populate(struct batch *b, xen_pfn_t *list, uint32_t count, unsigned int order,
                         unsigned int flags)
{
    int got;
    if (count == 0)
        return 0;
    got = xc_domain_populate_physmap(b->xch, b->domid, count, order, flags, list);
    return got < 0 ? 0 : (uint32_t)got;
}

/*
 * Back every released gfn with a frame: superpage runs, then single pages,
 * on the target node; what the target cannot take goes anywhere (the
 * contents must live), and the result says so.  Returns the gfns still
 * unbacked (0 unless something is badly wrong).
 */
static uint32_t repopulate(struct batch *b, uint32_t released, uint32_t node, int on_target)
{
    unsigned int exact = on_target ? XENMEMF_exact_node(node) : 0;
    uint32_t nsp = 0, nsmall = 0, i, got, left, attempt;
    xen_pfn_t *small = b->scratch;
    xen_pfn_t *sp;

    xn_superpage_runs(b->gfns, released, b->is_super);
    sp = malloc(((released / XN_SUPERPAGE_PAGES) + 1) * sizeof(*sp));
    if (!sp)
        return released;
    for (i = 0; i < released; i++) {
        if (!b->is_super[i])
            small[nsmall++] = b->gfns[i];
        else if (b->gfns[i] % XN_SUPERPAGE_PAGES == 0)
            sp[nsp++] = b->gfns[i];
    }
    got = on_target ? populate(b, sp, nsp, XN_SUPERPAGE_ORDER, exact) : 0;
    b->res->superpages += got;
    b->res->moved += (uint64_t)got * XN_SUPERPAGE_PAGES;
    /* Runs the target could not take whole become single pages. */
    for (i = got; i < nsp; i++) {
        uint32_t j;
        for (j = 0; j < XN_SUPERPAGE_PAGES; j++)
            small[nsmall++] = sp[i] + j;
    }
    free(sp);
    got = on_target ? populate(b, small, nsmall, 0, exact) : 0;
    b->res->moved += got;
    left = nsmall - got;
    /* Anywhere will do; if the domain is at its maximum (frames that were
     * not freed still count against it), raise it by what is missing. */
    for (attempt = 0; left && attempt < 2; attempt++) {
        got = populate(b, small + (nsmall - left), left, 0, 0);
        b->res->fallback += got;
        left -= got;
        if (left) {
            xc_domaininfo_t info;
            if (domain_info(b->xch, b->domid, &info) == 0)
                xc_domain_setmaxmem(b->xch, b->domid, ((info.max_pages + left) * XN_PAGE_SIZE) >> 10);
            b->res->raised_max += left;
        }
    }
    return left;
}

/* ---------------------------------------------------------------------------------------
 * The batch record: the copy buffer lives in a shared mapping of a file on
 * tmpfs, behind a header saying how far the batch got.  A mover killed inside
 * the pause window leaves the file behind, and with it everything needed to
 * put the guest back together: xn_mig_recover.
 */
#define RECORD_MAGIC 0x21424d554e45584eull /* "NXENUMB!" */
#define REC_NONE 0      /* not paused yet */
#define REC_PAUSED 1    /* paused; nothing released */
#define REC_COPIED 2    /* contents saved in the record; gfns may be released */
#define REC_RESTORED 3  /* every gfn backed again, contents back: only the unpause is left */

struct record {
    uint64_t magic;
    uint32_t domid, n;
    uint32_t state, pad;
    uint64_t gfns[];
};

static size_t record_header(uint32_t n)
{
    size_t bytes = sizeof(struct record) + (size_t)n * sizeof(uint64_t);
    return (bytes + XN_PAGE_SIZE - 1) / XN_PAGE_SIZE * XN_PAGE_SIZE;
}

static void record_state(struct record *r, uint32_t state)
{
    if (r)
        __atomic_store_n(&r->state, state, __ATOMIC_RELEASE); /* after the data it vouches for */
}

/* Map a record of n pages at path (created 0600); returns the header, or NULL. */
static struct record *record_open(const char *path, uint32_t domid, const uint64_t *gfns, uint32_t n,
                                  size_t *size)
{
    struct record *r;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0)
        return NULL;
    *size = record_header(n) + (size_t)n * XN_PAGE_SIZE;
    if (ftruncate(fd, (off_t)*size)) {
        close(fd);
        return NULL;
    }
    r = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (r == MAP_FAILED)
        return NULL;
    r->domid = domid;
    r->n = n;
    memcpy(r->gfns, gfns, (size_t)n * sizeof(uint64_t));
    r->magic = RECORD_MAGIC;
    record_state(r, REC_NONE);
    return r;
}

int xn_mig_move(xn_handle *h, uint32_t domid, const uint64_t *gfns, uint32_t n, uint32_t node,
                uint32_t verify_chunk, uint32_t flags, const char *record_path, struct xn_mig_result *res)
{
    struct batch b = { .xch = xn_xch(h), .domid = domid, .gfns = gfns, .n = n, .res = res };
    struct record *rec = NULL;
    uint8_t *mapped = NULL;
    size_t rec_size = 0;
    sigset_t old;
    uint64_t paused_at;
    uint32_t released, i;
    int rc;

    memset(res, 0, sizeof(*res));
    if (n == 0)
        return 0;
    for (i = 1; i < n; i++)
        if (gfns[i] <= gfns[i - 1])
            return -EINVAL; /* ascending and unique: superpage runs depend on it */
    if ((rc = xn_mig_check(h, domid)))
        return rc;
    b.fmem = xc_interface_fmem_handle(b.xch);
    if (record_path) {
        rec = record_open(record_path, domid, gfns, n, &rec_size);
        if (!rec)
            return neg_errno();
        b.copy = (uint8_t *)rec + record_header(n);
    } else {
        b.copy = malloc((size_t)n * XN_PAGE_SIZE);
    }
    b.is_super = malloc(n);
    b.scratch = malloc((size_t)n * sizeof(xen_pfn_t));
    if (!b.copy || !b.is_super || !b.scratch || !b.fmem) {
        rc = -ENOMEM;
        goto out_free;
    }
    if (verify_chunk == 0 || verify_chunk > n)
        verify_chunk = n;

    /* Page faults (each a page-table hypercall in a PV dom0) and mapping are
     * the slow parts of a copy, and need not happen with the guest paused:
     * touch the buffer for writing and map the guest's frames first. */
    memset(b.copy, 0, (size_t)n * XN_PAGE_SIZE);
    if ((rc = map_pages(&b, n, PROT_READ, &mapped)))
        goto out_free;

    /* No signal may run the caller's handlers (or kill it politely)
     * between pause and unpause; SIGKILL is the batch record's business. */
    hold_signals(&old);
    if (xc_domain_pause(b.xch, domid)) {
        rc = neg_errno();
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        xenforeignmemory_unmap(b.fmem, mapped, n);
        goto out_free;
    }
    paused_at = now_ns();
    record_state(rec, REC_PAUSED);

    res->stage = XN_MIG_STAGE_COPY_OUT;
    memcpy(b.copy, mapped, (size_t)n * XN_PAGE_SIZE);
    /* Unmap before anything is released: dom0's own mapping would keep the
     * old frames alive. */
    xenforeignmemory_unmap(b.fmem, mapped, n);
    record_state(rec, REC_COPIED);

    res->stage = XN_MIG_STAGE_RELEASE;
    released = release(&b, verify_chunk);
    if (flags & XN_MIG_FAULT_AFTER_RELEASE && res->error == 0) {
        res->error = -EIO; /* test hook: as if the target had failed us now */
        res->stage = XN_MIG_STAGE_POPULATE;
    }
    if (flags & XN_MIG_FAULT_DIE_AFTER_RELEASE && rec)
        _exit(99); /* test hook: the mover dies with gfns released, the guest paused */
    res->released = released;
    {
        /* A stuck frame does not stop this batch's released gfns from going
         * to the target; any other failure sends them anywhere. */
        int to_target = res->error == 0 || res->stage == XN_MIG_STAGE_VERIFY;
        res->lost = repopulate(&b, released, node, to_target);
        if (to_target && res->fallback && res->error == 0 && !(flags & XN_MIG_ALLOW_FALLBACK)) {
            res->error = -ENOMEM; /* the target ran short; the rest went elsewhere */
            res->stage = XN_MIG_STAGE_POPULATE;
        }
    }

    /* Contents back, whatever happened: every released gfn is backed again
     * (unless lost), and the copy is the guest's data. */
    if (released && !res->lost) {
        int wrc = copy_pages(&b, released, 1);
        if (wrc) {
            res->error = wrc;
            res->stage = XN_MIG_STAGE_COPY_BACK;
            res->lost = released;
        }
    }
    if (res->error == 0)
        res->stage = XN_MIG_STAGE_DONE;

    /* Past this point the guest runs: the saved contents are stale and must
     * never be written back, whatever happened. */
    record_state(rec, REC_RESTORED);
    res->pause_ns = now_ns() - paused_at;
    if (xc_domain_unpause(b.xch, domid) && res->error == 0) {
        res->error = neg_errno();
        res->stage = XN_MIG_STAGE_UNPAUSE;
    }
    if (rec)
        unlink(record_path);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    rc = res->error;
out_free:
    if (rec)
        munmap(rec, rec_size);
    else
        free(b.copy);
    free(b.is_super);
    free(b.scratch);
    return rc;
}

/*
 * Finish what a dead mover left (see the batch record above): back every
 * released gfn again (any node), copy the saved contents back, unpause.
 * Returns 1 if the domain was unpaused, 0 if there was nothing to do (the
 * mover died before pausing, or the domain is gone), or -errno.
 */
int xn_mig_recover(xn_handle *h, const char *record_path, struct xn_mig_result *res)
{
    xc_interface *xch = xn_xch(h);
    struct record *r;
    struct stat st;
    uint32_t state, i;
    int fd, rc = 0;

    memset(res, 0, sizeof(*res));
    fd = open(record_path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : neg_errno();
    if (fstat(fd, &st) || (size_t)st.st_size < sizeof(struct record)) {
        close(fd);
        unlink(record_path);
        return 0; /* died before the record was written: it never paused */
    }
    r = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (r == MAP_FAILED)
        return neg_errno();
    state = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
    if (r->magic != RECORD_MAGIC || state == REC_NONE ||
        (size_t)st.st_size < record_header(r->n) + (size_t)r->n * XN_PAGE_SIZE) {
        rc = 0;
        goto done;
    }
    if (state == REC_COPIED) {
        struct batch b = { .xch = xch, .fmem = xc_interface_fmem_handle(xch), .domid = r->domid,
                           .gfns = r->gfns, .n = r->n, .res = res,
                           .copy = (uint8_t *)r + record_header(r->n) };
        xen_pfn_t *types = malloc((size_t)r->n * sizeof(*types));
        xen_pfn_t *missing = malloc((size_t)r->n * sizeof(*missing));
        uint32_t nmissing = 0, first;
        b.scratch = malloc((size_t)r->n * sizeof(xen_pfn_t));
        if (!types || !missing || !b.scratch) {
            free(types); free(missing); free(b.scratch);
            rc = -ENOMEM;
            goto out;
        }
        for (i = 0; i < r->n; i++)
            types[i] = r->gfns[i];
        for (first = 0; first < r->n && rc == 0; first += TYPE_BATCH) {
            uint32_t len = r->n - first < TYPE_BATCH ? r->n - first : TYPE_BATCH;
            if (xc_get_pfn_type_batch(xch, r->domid, len, types + first))
                rc = neg_errno();
        }
        /* released and not backed again: only those; populating a backed gfn
         * would orphan its frame */
        for (i = 0; rc == 0 && i < r->n; i++)
            if ((types[i] & XEN_DOMCTL_PFINFO_LTAB_MASK) == XEN_DOMCTL_PFINFO_XTAB)
                missing[nmissing++] = r->gfns[i];
        if (rc == 0 && nmissing) {
            int got = xc_domain_populate_physmap(xch, r->domid, nmissing, 0, 0, missing);
            res->fallback = got > 0 ? (uint64_t)got : 0;
            res->lost = nmissing - res->fallback;
        }
        if (rc == 0 && !res->lost && (rc = copy_pages(&b, r->n, 1)) == 0)
            record_state(r, REC_RESTORED);
        free(types); free(missing); free(b.scratch);
        if (rc == -ESRCH)
            goto done; /* the domain is gone: nothing left to save */
        if (rc || res->lost) {
            rc = rc ? rc : -ENOMEM;
            goto out; /* keep the record: it holds the guest's data */
        }
    }
    rc = xc_domain_unpause(xch, r->domid) ? neg_errno() : 1;
    if (rc == -ESRCH || rc == -EINVAL)
        rc = 0; /* gone, or not paused any more */
done:
    unlink(record_path);
out:
    munmap(r, (size_t)st.st_size);
    return rc;
}
