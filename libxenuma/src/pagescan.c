/*
 * The scan of page migration: which gfns of a translated (PVH/HVM) guest
 * may move, and why the others stay (the XN_GFN_* classes of libxenuma.h).
 * With a probe, the domain is paused for a while under a batch record of
 * kind "probe", so a mover killed meanwhile leaves something recovery can
 * unpause.
 */
#define _GNU_SOURCE
#include "libxenuma.h"
#include "batchrecord.h"
#include "pagelayout.h"
#include "pagemove_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xen/memory.h>
#include <xen/hvm/params.h>
#include <xen/grant_table.h>

#define SCAN_CHUNK 1024u     /* pages mapped at a time while scanning */

int xn_mig_check(xn_handle *h, uint32_t domid)
{
    xc_interface *xch = xn_xch(h);
    xc_domaininfo_t info;
    uint64_t tot, cache, entries;
    int rc = xn_domain_info(xch, domid, &info);

    if (rc)
        return rc;
    if (!(info.flags & XEN_DOMINF_hvm_guest))
        return -EPROTOTYPE; /* PV: its page tables hold machine frames */
    if (info.flags & (XEN_DOMINF_dying | XEN_DOMINF_shutdown))
        return -ESRCH;
    /* Populate-on-demand (booted below its maximum): typing a gfn fills its entry
     * from the guest's PoD cache (getpageframeinfo3 allocates; an empty cache
     * crashes the guest), and a release hands frames to that cache, not back
     * to Xen. */
    if (xc_domain_get_pod_target(xch, domid, &tot, &cache, &entries))
        return xn_errno_rc();
    if (entries)
        return -EOPNOTSUPP;
    /* Live migration cannot be seen from here: a log-dirty PEEK succeeds
     * whether or not log-dirty mode is on.  Callers ask the toolstack. */
    return 0;
}

int xn_mig_max_gfn(xn_handle *h, uint32_t domid, uint64_t *max_gfn)
{
    xen_pfn_t max = 0;
    if (xc_domain_maximum_gpfn(xn_xch(h), domid, &max) < 0)
        return xn_errno_rc();
    if ((uint64_t)max >= XN_MIG_GFN_LIMIT)
        return -E2BIG; /* beyond what Xen lets such a guest address: no buffer is sized by it */
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

/*
 * The class map a scan fills: cls[0..len) classified, room for cap, grown up to
 * limit (the guest's gfn count) only as far as the scan reaches: the highest
 * gfn a guest's p2m maps (a high MMIO or foreign mapping) may lie far past its
 * RAM, and a byte per gfn up to it was gigabytes of map for a guest of a few
 * GiB.  A caller's own buffer (xn_mig_scan) comes with cap = limit.
 */
struct scan_map {
    uint8_t *cls;
    uint64_t len, cap, limit;
    int growable;
};

#define MAP_FIRST_ROOM (1u << 20) /* bytes: 4 GiB of gfns, a small guest's whole space */

/* Make cls[0..end) part of the map (end <= limit), what was not yet in it a hole. */
static int map_reach(struct scan_map *m, uint64_t end)
{
    if (end <= m->len)
        return 0;
    if (end > m->cap) {
        uint64_t cap = m->cap < MAP_FIRST_ROOM / 2 ? MAP_FIRST_ROOM : m->cap * 2;
        uint8_t *grown;
        if (cap < end)
            cap = end;
        if (cap > m->limit)
            cap = m->limit;
        if (!m->growable || cap > SIZE_MAX || !(grown = realloc(m->cls, (size_t)cap)))
            return -ENOMEM;
        m->cls = grown;
        m->cap = cap;
    }
    memset(m->cls + m->len, XN_GFN_NOT_RAM, end - m->len);
    m->len = end;
    return 0;
}

static int classify_types(xc_interface *xch, uint32_t domid, struct scan_map *m, uint64_t *typed)
{
    xen_pfn_t arr[XN_TYPE_BATCH];
    uint64_t first, ram = 0;
    unsigned int i, n;
    xc_domaininfo_t info;
    int rc = xn_domain_info(xch, domid, &info);

    if (rc)
        return rc;
    for (first = 0; first < m->limit; first += n) {
        n = (unsigned int)(m->limit - first < XN_TYPE_BATCH ? m->limit - first : XN_TYPE_BATCH);
        if (ram > 0 && ram + SPECIAL_SLACK >= info.tot_pages)
            break;
        if ((rc = map_reach(m, first + n)))
            return rc;
        *typed += n;
        for (i = 0; i < n; i++)
            arr[i] = first + i;
        if (xc_get_pfn_type_batch(xch, domid, n, arr))
            return xn_errno_rc();
        for (i = 0; i < n; i++) {
            int is_ram = (arr[i] & XEN_DOMCTL_PFINFO_LTAB_MASK) == XEN_DOMCTL_PFINFO_NOTAB;
            m->cls[first + i] = is_ram ? XN_GFN_RAM : XN_GFN_NOT_RAM;
            ram += is_ram;
        }
    }
    return 0;
}

static void mark(struct scan_map *m, uint64_t gfn, uint8_t what)
{
    if (gfn < m->len && m->cls[gfn] == XN_GFN_RAM)
        m->cls[gfn] = what;
}

/* The HVM params that name frames Xen or the toolstack's daemons map.  Those
 * past the typed range (the special pages below 4 GiB) are populated frames
 * the type scan did not reach: the map reaches them, named as what they are
 * (only the toolstack sets these params: the guest cannot stretch the map). */
static int classify_magic(xc_interface *xch, uint32_t domid, struct scan_map *m, uint64_t typed)
{
    uint64_t value, base = 0, count = 0, i;
    int rc;

    for (i = 0; i < NR_MAGIC_PARAMS; i++)
        if (xc_hvm_param_get(xch, domid, magic_params[i], &value) == 0 && value && value < m->limit) {
            if (value >= typed) {
                if ((rc = map_reach(m, value + 1)))
                    return rc;
                m->cls[value] = XN_GFN_MAGIC;
            }
            mark(m, value, XN_GFN_MAGIC);
        }
    if (xc_hvm_param_get(xch, domid, HVM_PARAM_IOREQ_SERVER_PFN, &base) == 0 &&
        xc_hvm_param_get(xch, domid, HVM_PARAM_NR_IOREQ_SERVER_PAGES, &count) == 0 && base)
        for (i = 0; i < count && i < 256; i++)
            mark(m, base + i, XN_GFN_MAGIC);
    return 0;
}

/* Nothing Xen can answer: GNTTABOP_get_version's version is 1 or 2, and a
 * status is a GNTST_* (0 down to about -13). */
#define NO_VERSION 0xFFFFFFFFu
#define NO_STATUS INT16_MIN

/* Every frame the guest grants to another domain right now (GTF_permit_access):
 * a backend may map it, or copy into it (grant copy) at any moment.  *out is
 * a malloc'd array of *count gfns (NULL, 0 when there are none); *busy: how
 * many of them their grantee reads or writes now.
 *
 * Fails safe: a mover releases whatever is not named here, so "no grants"
 * must be Xen's answer.  libxc's xc_gnttab_op returns 0 without making the
 * hypercall when it cannot allocate its bounce buffer, leaving the op as it
 * was (and xc_gnttab_get_version then returns an uninitialised field).  So
 * both ops are issued here with outputs preset to values Xen never writes,
 * and a value left in place is -EIO; so is version 0, which Xen 4.17 never
 * reports (every grant table starts at version 1). */
int xn_granted_now(xc_interface *xch, uint32_t domid, uint64_t **out, size_t *count, size_t *busy)
{
    xenforeignmemory_handle *fmem = xc_interface_fmem_handle(xch);
    xenforeignmemory_resource_handle *res;
    struct gnttab_get_version get = { .dom = (domid_t)domid, .version = NO_VERSION };
    struct gnttab_query_size query = { .dom = (domid_t)domid, .status = NO_STATUS };
    unsigned int version;
    size_t entries;
    uint64_t *gfns;
    void *table = NULL;
    long got;

    *out = NULL;
    *count = *busy = 0;
    errno = 0;
    if (xc_gnttab_op(xch, GNTTABOP_get_version, &get, sizeof(get), 1))
        return xn_errno_rc();
    version = get.version;
    if (version != 1 && version != 2)
        return -EIO; /* left as preset (no hypercall made), or nothing Xen answers */
    errno = 0;
    if (xc_gnttab_op(xch, GNTTABOP_query_size, &query, sizeof(query), 1))
        return xn_errno_rc();
    if (query.status != GNTST_okay)
        return -EIO; /* NO_STATUS: no hypercall made; any other: Xen refused */
    if (query.nr_frames == 0)
        return 0;
    /* Only the frames in use: asking for more would grow the table. */
    res = xenforeignmemory_map_resource(fmem, (domid_t)domid, XENMEM_resource_grant_table,
                                        XENMEM_resource_grant_table_id_shared, 0, query.nr_frames, &table,
                                        PROT_READ, 0);
    if (!res)
        return xn_errno_rc();
    entries = (size_t)query.nr_frames * XN_PAGE_SIZE / (version == 1 ? 8 : 16);
    gfns = malloc(entries * sizeof(*gfns));
    if (!gfns) {
        xenforeignmemory_unmap_resource(fmem, res);
        return -ENOMEM;
    }
    got = xn_granted_gfns(table, entries, (int)version, gfns, entries, busy);
    xenforeignmemory_unmap_resource(fmem, res);
    if (got <= 0) {
        free(gfns);
        return got < 0 ? (int)got : 0;
    }
    *out = gfns;
    *count = (size_t)got;
    return 0;
}

/* None of the granted frames moves. */
static int classify_grants(xc_interface *xch, uint32_t domid, struct scan_map *m, uint64_t *busy_out)
{
    uint64_t *gfns;
    size_t count, busy, i;
    int rc = xn_granted_now(xch, domid, &gfns, &count, &busy);

    if (rc)
        return rc;
    for (i = 0; i < count; i++)
        mark(m, gfns[i], XN_GFN_GRANTED);
    free(gfns);
    *busy_out = busy;
    return 0;
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
            return xn_errno_rc();
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

/* Pause, hash, wait for the vCPUs' timers to fire, hash again: whatever
 * changed while no vCPU ran was written by Xen or by a backend.  The record
 * says "pausing" before the pause and "unpaused" after the unpause, so a
 * kill anywhere in between is recoverable and never unpaused twice. */
static int probe_changes(xc_interface *xch, uint32_t domid, uint64_t nr, uint8_t *cls, unsigned int probe_ms,
                         const char *record_path)
{
    uint64_t *before = calloc(nr, sizeof(*before)), *after = calloc(nr, sizeof(*after)), gfn;
    struct xn_rec rec = { .fd = -1 };
    xc_domaininfo_t info;
    sigset_t old;
    int rc = 0, urc = 0;

    if (!before || !after) {
        free(before);
        free(after);
        return -ENOMEM;
    }
    if (record_path && (rc = xn_domain_info(xch, domid, &info)) == 0)
        rc = xn_rec_create(&rec, record_path, XN_REC_KIND_PROBE, domid, info.handle, NULL, 0);
    if (rc == 0) {
        xn_hold_signals(&old);
        xn_rec_set_state(&rec, XN_REC_PAUSING);
        rc = xc_domain_pause(xch, domid) ? xn_errno_rc() : 0;
        if (rc == 0) {
            /* the run clock once our pause holds: recovery's evidence that the guest ran since */
            rc = xn_record_run_clock(xch, domid, &rec);
            xn_rec_set_state(&rec, XN_REC_PAUSED);
            if (rc == 0)
                rc = visit_ram(xch, domid, nr, cls, before, 0);
            if (rc == 0) {
                xn_sleep_ms(probe_ms);
                rc = visit_ram(xch, domid, nr, cls, after, 1);
            }
            urc = xn_give_back_pause(xch, domid, &rec, XN_REC_PAUSED);
            if (urc < 0 && urc != -ESRCH && rc == 0)
                rc = urc;
        } else {
            xn_rec_set_state(&rec, XN_REC_UNPAUSED); /* the pause failed: nothing to give back */
        }
        if (record_path && urc < 0 && urc != -ESRCH)
            xn_rec_close(&rec); /* kept, unlocked: recovery gives back the pause we still hold */
        else if (record_path)
            xn_rec_remove(&rec);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    for (gfn = 0; rc == 0 && gfn < nr; gfn++)
        if (cls[gfn] == XN_GFN_RAM && before[gfn] != after[gfn])
            cls[gfn] = XN_GFN_CHANGED;
    free(before);
    free(after);
    return rc;
}

/* The scan proper, into m (its limit the guest's gfn count, checked by the callers). */
static int scan_into(xn_handle *h, uint32_t domid, struct scan_map *m, uint32_t probe_ms, const char *record_path,
                     struct xn_mig_scan_stats *stats)
{
    xc_interface *xch = xn_xch(h);
    uint64_t t0 = xn_now_ns(), t1, t2;
    int rc;

    if ((rc = classify_types(xch, domid, m, &stats->typed)) || (rc = classify_magic(xch, domid, m, stats->typed)))
        return rc;
    t1 = xn_now_ns();
    if ((rc = classify_grants(xch, domid, m, &stats->busy_grants)))
        return rc;
    t2 = xn_now_ns();
    rc = probe_ms ? probe_changes(xch, domid, m->len, m->cls, probe_ms, record_path)
                  : visit_ram(xch, domid, m->len, m->cls, NULL, 1);
    stats->types_ns = t1 - t0;
    stats->grants_ns = t2 - t1;
    stats->layouts_ns = xn_now_ns() - t2;
    return rc;
}

/* What both scans refuse before anything is read: a domain whose memory cannot move, a
 * probe without a record (a pause nothing could give back after a kill) or weeks long. */
static int scan_refused(xn_handle *h, uint32_t domid, uint32_t probe_ms, const char *record_path)
{
    int rc = xn_mig_check(h, domid);

    if (rc)
        return rc;
    if (probe_ms && (!record_path || probe_ms > XN_MIG_PROBE_MAX_MS))
        return -EINVAL;
    return 0;
}

int xn_mig_scan(xn_handle *h, uint32_t domid, uint64_t nr, uint8_t *cls, uint32_t probe_ms,
                const char *record_path, struct xn_mig_scan_stats *stats)
{
    struct scan_map m = { .cls = cls, .cap = nr, .limit = nr };
    int rc = scan_refused(h, domid, probe_ms, record_path);

    memset(stats, 0, sizeof(*stats));
    if (rc)
        return rc;
    if (nr > XN_MIG_GFN_LIMIT)
        return -E2BIG; /* more gfns than such a guest can have: cls[] cannot be that long */
    rc = scan_into(h, domid, &m, probe_ms, record_path, stats);
    if (rc == 0)
        memset(cls + m.len, XN_GFN_NOT_RAM, nr - m.len); /* the caller asked for all nr */
    return rc;
}

int xn_mig_scan_map(xn_handle *h, uint32_t domid, uint32_t probe_ms, const char *record_path, uint8_t **cls,
                    uint64_t *nr, struct xn_mig_scan_stats *stats)
{
    struct scan_map m = { .growable = 1 };
    uint64_t max_gfn = 0;
    int rc = scan_refused(h, domid, probe_ms, record_path);

    memset(stats, 0, sizeof(*stats));
    *cls = NULL;
    *nr = 0;
    if (rc || (rc = xn_mig_max_gfn(h, domid, &max_gfn)))
        return rc;
    m.limit = max_gfn + 1;
    rc = scan_into(h, domid, &m, probe_ms, record_path, stats);
    if (rc) {
        free(m.cls);
        return rc;
    }
    *cls = m.cls;
    *nr = m.len;
    return 0;
}

void xn_mig_map_free(uint8_t *cls)
{
    free(cls);
}
