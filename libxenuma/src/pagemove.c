/*
 * The pause-window primitive of page migration between NUMA nodes, for
 * translated (PVH/HVM) guests on stock Xen, from dom0: see libxenuma.h for
 * the contract and ../shared/page-migration-notes.md (in the project docs)
 * for what was measured.  Per batch, with the domain paused: copy the frames
 * out, release them (decrease_reservation), check that Xen really freed
 * them, populate the same gfns from the target node, copy the contents back.
 * The batch record (batchrecord.h) says how far it got at every instant;
 * the scan is pagescan.c, recovery after a dead mover pagerecover.c.
 */
#define _GNU_SOURCE
#include "libxenuma.h"
#include "batchrecord.h"
#include "pagelayout.h"
#include "pagemove_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xen/memory.h>

/* ---------------------------------------------------------------------------------------
 * Moving one batch.
 */

static int tot_pages(struct xn_batch *b, uint64_t *out)
{
    xc_domaininfo_t info;
    int rc = xn_domain_info(b->xch, b->domid, &info);
    if (rc == 0)
        *out = info.tot_pages;
    return rc;
}

/* Shared with recovery (pagemove_internal.h). */
int xn_batch_map(struct xn_batch *b, const uint64_t *gfns, uint32_t count, int prot, uint8_t **out)
{
    int *errs = calloc(count ? count : 1, sizeof(int));
    uint32_t i;
    int rc = 0;

    if (!errs)
        return -ENOMEM;
    for (i = 0; i < count; i++)
        b->scratch[i] = gfns[i];
    *out = xenforeignmemory_map(b->fmem, b->domid, prot, count, b->scratch, errs);
    if (!*out)
        rc = xn_errno_rc();
    for (i = 0; rc == 0 && i < count; i++)
        if (errs[i])
            rc = errs[i] < 0 ? errs[i] : -errs[i];
    if (rc && *out)
        xenforeignmemory_unmap(b->fmem, *out, count);
    free(errs);
    return rc;
}

/* Copy between the guest and the batch's buffer through a fresh mapping. */
int xn_batch_copy(struct xn_batch *b, uint32_t count, int to_guest)
{
    uint8_t *map;
    int rc = count ? xn_batch_map(b, b->gfns, count, to_guest ? PROT_READ | PROT_WRITE : PROT_READ, &map) : 0;

    if (rc || !count) /* nothing to copy: Xen maps no empty range */
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
static uint32_t release(struct xn_batch *b, uint32_t chunk)
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
            b->res->error = xn_errno_rc();
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
            /* what was released is checked all the same: a frame it did not free is reported */
            b->res->not_freed = xn_unfreed(before, after, (uint32_t)got);
            if (b->res->not_freed) {
                b->res->stuck_first = done;
                b->res->stuck_count = (uint32_t)got;
            }
            return done + (uint32_t)got;
        }
        if (xn_unfreed(before, after, len)) {
            b->res->not_freed = xn_unfreed(before, after, len);
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
static uint32_t populate(struct xn_batch *b, xen_pfn_t *list, uint32_t count, unsigned int order,
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
static uint32_t repopulate(struct xn_batch *b, uint32_t released, uint32_t node, int on_target,
                           struct xn_rec *rec)
{
    unsigned int exact = on_target ? XENMEMF_exact_node(node) : 0;
    uint32_t nsp = 0, nsmall = 0, i, got, at, lost = 0;
    xen_pfn_t *small = b->scratch;
    xen_pfn_t *sp = b->runs;
    struct xn_max max = { 0, 0 };
    int raised = 0, rc;

    xn_superpage_runs(b->gfns, released, b->is_super);
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
    got = on_target ? populate(b, small, nsmall, 0, exact) : 0;
    b->res->moved += got;
    /* Anywhere will do.  If the domain is at its maximum (frames that were not
     * freed still count against it), raise it once by what is missing (for this
     * batch only: given back below), and try
     * the target again first: it may have had room all along; past a gfn Xen
     * will not back even so, go on with the next (the one stays lost). */
    at = got;
    while (at < nsmall) {
        got = populate(b, small + at, nsmall - at, 0, 0);
        b->res->fallback += got;
        at += got;
        if (at == nsmall)
            break;
        if (!raised) {
            raised = 1;
            if ((rc = xn_raise_max(b->xch, b->domid, nsmall - at, &max, rec)) > 0) {
                b->res->raised_max += (uint64_t)rc;
                got = on_target ? populate(b, small + at, nsmall - at, 0, exact) : 0;
                b->res->moved += got;
                at += got;
            }
            continue;
        }
        lost++;
        at++;
    }
    xn_give_back_max(b->xch, b->domid, &max, rec); /* the toolstack's, not ours to keep raised */
    return lost;
}

/* Buffers of a batch: the copy lives in the record when there is one. */
static int batch_alloc(struct xn_batch *b, struct xn_rec *rec)
{
    b->copy = rec->hdr ? xn_rec_data(rec) : malloc((size_t)b->n * XN_PAGE_SIZE);
    b->is_super = malloc(b->n);
    b->scratch = malloc((size_t)b->n * sizeof(xen_pfn_t));
    /* no allocation once gfns are released: a shortage then would lose them */
    b->runs = malloc((b->n / XN_SUPERPAGE_PAGES + 1) * sizeof(xen_pfn_t));
    b->backed = malloc((size_t)b->n * sizeof(*b->backed));
    b->at = malloc((size_t)b->n * sizeof(*b->at));
    b->xen_maps = malloc(b->n);
    return b->copy && b->is_super && b->scratch && b->runs && b->backed && b->at && b->xen_maps && b->fmem
               ? 0 : -ENOMEM;
}

static void batch_free(struct xn_batch *b, struct xn_rec *rec)
{
    if (!rec->hdr)
        free(b->copy);
    free(b->is_super);
    free(b->scratch);
    free(b->runs);
    free(b->backed);
    free(b->at);
    free(b->xen_maps);
}

static int by_value(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Which of the mapped pages look, right now, like a page Xen keeps mapped.
 * The scan recognised those of its time, but a move paced over minutes
 * outlives it: a vCPU brought online registers its vcpu_info, a new port
 * range adds an event array page, and a time record's multiplier may have
 * looked wrong for a moment then.  Read inside the pause (one more read of
 * the batch, through the mapping made before it), so that nothing can be
 * registered between this look and the release.  Not seen even so: the
 * vcpu_info of a vCPU that has not run since it was registered (Xen has
 * not written its time record yet); its release then stops the move.
 */
static void recognise_xen_mapped(struct xn_batch *b, const uint8_t *mapped)
{
    uint32_t i;

    for (i = 0; i < b->n; i++)
        b->xen_maps[i] = xn_page_layout(mapped + (size_t)i * XN_PAGE_SIZE) != XN_LAYOUT_PLAIN;
}

/* The batch is now gfns[0..m) (a subset of it, in order); the record, if any, is
 * rewritten to hold only those, its contents following the shorter header. */
static void narrow_batch(struct xn_batch *b, struct xn_rec *rec, uint64_t *gfns, uint32_t m)
{
    b->gfns = gfns;
    b->n = m;
    if (rec->hdr) {
        memmove(rec->gfns, gfns, (size_t)m * sizeof(*gfns));
        __atomic_store_n(&rec->hdr->n, m, __ATOMIC_RELEASE);
        b->copy = xn_rec_data(rec);
    }
}

/*
 * With the domain paused, nothing new can be granted or given back: leave out
 * of the batch every gfn granted now, and every gfn the guest gave back (a
 * balloon driver) since the batch was mapped, whose frame the mapping alone
 * kept: releasing it would fail, and recovery would back a gfn the guest
 * no longer has.  The scan left out those granted then, but a
 * frontend grants new buffers all the time, and a backend's grant copy into
 * one during the pause (no mapping, no reference: the release frees the frame)
 * would land in the old frame or be overwritten by the copy back.  Those
 * recognise_xen_mapped saw as Xen's are left out too.  kept[] and
 * index[] (room for n) get the gfns that stay in the batch and where each
 * was in the caller's list (its page in the mapping made before the pause).
 * The record is rewritten to hold only those: it still says PAUSED, and
 * recovery then only unpauses, reading no gfn.
 */
static int leave_out_unmovable(struct xn_batch *b, struct xn_rec *rec, uint64_t *kept, uint32_t *index)
{
    uint64_t *granted;
    size_t count, busy, g = 0;
    uint32_t i, m = 0, recognised = 0;
    xen_pfn_t *types = b->scratch; /* free until the release */
    int rc = xn_type_gfns(b->xch, b->domid, b->gfns, b->n, types);

    if (rc || (rc = xn_granted_now(b->xch, b->domid, &granted, &count, &busy)))
        return rc;
    if (count > 1)
        qsort(granted, count, sizeof(*granted), by_value);
    for (i = 0; i < b->n; i++) {
        while (g < count && granted[g] < b->gfns[i])
            g++;
        if ((g < count && granted[g] == b->gfns[i])
            || (types[i] & XEN_DOMCTL_PFINFO_LTAB_MASK) == XEN_DOMCTL_PFINFO_XTAB)
            continue;
        if (b->xen_maps[i]) {
            recognised++;
            continue;
        }
        kept[m] = b->gfns[i];
        index[m++] = i;
    }
    free(granted);
    b->res->recognised = recognised;
    b->res->granted = b->n - m - recognised;
    if (m != b->n)
        narrow_batch(b, rec, kept, m);
    return 0;
}

/* Copy out of the mapping made before the pause: page index[k] of it holds gfns[k]. */
static void copy_out(struct xn_batch *b, const uint8_t *mapped, uint32_t mapped_n, const uint32_t *index)
{
    uint32_t k;

    if (b->n == mapped_n) {
        memcpy(b->copy, mapped, (size_t)b->n * XN_PAGE_SIZE);
        return;
    }
    for (k = 0; k < b->n; k++)
        memcpy(b->copy + (size_t)k * XN_PAGE_SIZE, mapped + (size_t)index[k] * XN_PAGE_SIZE, XN_PAGE_SIZE);
}

/* Copy the saved contents back into those of the released gfns that have a frame
 * again; returns how many of them did not get theirs (all, if that cannot be done). */
static uint32_t copy_back_backed(struct xn_batch *b, uint32_t released)
{
    xen_pfn_t *types = b->scratch; /* read before xn_batch_map reuses it */
    uint64_t *backed = b->backed;
    uint32_t *at = b->at;
    uint32_t i, m = 0, k;
    uint8_t *map;

    if (xn_type_gfns(b->xch, b->domid, b->gfns, released, types))
        return released;
    for (i = 0; i < released; i++)
        if ((types[i] & XEN_DOMCTL_PFINFO_LTAB_MASK) != XEN_DOMCTL_PFINFO_XTAB) {
            backed[m] = b->gfns[i];
            at[m++] = i;
        }
    if (m && xn_batch_map(b, backed, m, PROT_READ | PROT_WRITE, &map) == 0) {
        for (k = 0; k < m; k++)
            memcpy(map + (size_t)k * XN_PAGE_SIZE, b->copy + (size_t)at[k] * XN_PAGE_SIZE, XN_PAGE_SIZE);
        xenforeignmemory_unmap(b->fmem, map, m);
        released -= m;
    }
    return released;
}

/* With the domain paused and its contents saved: release, repopulate, copy back. */
static void swap_frames(struct xn_batch *b, uint32_t node, uint32_t verify_chunk, uint32_t flags,
                        struct xn_rec *rec)
{
    struct xn_mig_result *res = b->res;
    uint32_t released;
    int to_target;

    res->stage = XN_MIG_STAGE_RELEASE;
    released = release(b, verify_chunk);
    if (flags & XN_MIG_FAULT_AFTER_RELEASE && res->error == 0) {
        res->error = -EIO; /* test hook: as if the target had failed us now */
        res->stage = XN_MIG_STAGE_POPULATE;
    }
    if (flags & XN_MIG_FAULT_DIE_AFTER_RELEASE && rec->hdr)
        _exit(99); /* test hook: the mover dies with gfns released, the guest paused */
    res->released = released;
    /* A stuck frame does not stop this batch's released gfns from going to
     * the target; any other failure sends them anywhere. */
    to_target = res->error == 0 || res->stage == XN_MIG_STAGE_VERIFY;
    res->lost = repopulate(b, released, node, to_target, rec);
    if (to_target && res->fallback && res->error == 0 && !(flags & XN_MIG_ALLOW_FALLBACK)) {
        res->error = -ENOMEM; /* the target ran short; the rest went elsewhere */
        res->stage = XN_MIG_STAGE_POPULATE;
    }
    /* Without a record nothing can wait for recovery: what is backed gets its
     * contents, what is not stays lost. */
    if (released && res->lost && !rec->hdr && !(flags & XN_MIG_FAULT_COPY_BACK))
        res->lost = copy_back_backed(b, released);
    /* Contents back, whatever happened: every released gfn is backed again
     * (unless lost), and the copy is the guest's data. */
    else if (released && !res->lost) {
        int wrc = flags & XN_MIG_FAULT_COPY_BACK ? -EFAULT : xn_batch_copy(b, released, 1);
        if (wrc) {
            res->error = wrc;
            res->stage = XN_MIG_STAGE_COPY_BACK;
            res->lost = released;
        }
    }
    if (res->lost && res->error == 0) {
        res->error = -ENOMEM; /* gfns the hypervisor would not back again, anywhere */
        res->stage = XN_MIG_STAGE_POPULATE;
    }
    if (res->error == 0)
        res->stage = XN_MIG_STAGE_DONE;
}

/* The contents are not all back: with a record (which holds them), the guest
 * stays paused for xn_mig_recover rather than run on missing or zeroed memory. */
static int must_stay_paused(const struct xn_mig_result *res, const struct xn_rec *rec)
{
    return res->lost && rec->hdr;
}

/*
 * Map the batch (read-only) before the pause.  A gfn the guest gave back since
 * the scan (a balloon driver) has no frame, and Xen refuses to map it (-EINVAL
 * from the p2m lookup): the whole map fails.  Only when it does, the batch is
 * typed, and the gfns Xen says are no longer populated (XTAB, as the pause
 * check below tells a gfn given back) are left out -- into live[] with where
 * each was in the caller's list (live_at[]), the record rewritten to hold only
 * those (still OPEN: nothing done to the domain) -- and the rest mapped again, as
 * often as more were given back meanwhile.
 * Any other failure, or one with no such gfn, is returned as it was.
 * *given_back: how many were left out.  With every gfn given back, nothing is
 * mapped (b->n is 0).  0 or -errno.
 */
static int map_less_given_back(struct xn_batch *b, struct xn_rec *rec, uint64_t *live, uint32_t *live_at,
                               uint32_t *given_back, uint8_t **mapped)
{
    xen_pfn_t *types = b->scratch; /* free until the pause */
    uint32_t i, m;
    int rc;

    *given_back = 0;
    /* A balloon driver gives gfns back over seconds (squeezed lowering its target needs no
     * xapi operation): more may go before the map is tried again.  Each round leaves out at
     * least one gfn, so there are at most n of them. */
    while (b->n && (rc = xn_batch_map(b, b->gfns, b->n, PROT_READ, mapped))) {
        int first = b->gfns != live;
        if (xn_type_gfns(b->xch, b->domid, b->gfns, b->n, types))
            return rc;
        for (i = 0, m = 0; i < b->n; i++) /* (in place after the first round: m <= i) */
            if ((types[i] & XEN_DOMCTL_PFINFO_LTAB_MASK) != XEN_DOMCTL_PFINFO_XTAB) {
                live_at[m] = first ? i : live_at[i];
                live[m++] = b->gfns[i];
            }
        if (m == b->n)
            return rc; /* every gfn is there: the failure is another */
        *given_back += b->n - m;
        narrow_batch(b, rec, live, m);
    }
    return 0;
}

/* Is domid still the domain whose handle is `handle` (and not dying)? */
static int same_domain(xc_interface *xch, uint32_t domid, const uint8_t *handle)
{
    xc_domaininfo_t info;
    int rc = xn_domain_info(xch, domid, &info);

    if (rc)
        return rc;
    if (info.flags & XEN_DOMINF_dying)
        return -ESRCH;
    return memcmp(info.handle, handle, sizeof(info.handle)) ? -ESTALE : 0;
}

int xn_mig_move(xn_handle *h, uint32_t domid, const uint64_t *gfns, uint32_t n, uint32_t node,
                uint32_t verify_chunk, uint32_t flags, const char *record_path, struct xn_mig_result *res)
{
    return xn_mig_move_as(h, domid, NULL, gfns, n, node, verify_chunk, flags, record_path, res);
}

int xn_mig_move_as(xn_handle *h, uint32_t domid, const uint8_t *handle, const uint64_t *gfns, uint32_t n,
                   uint32_t node, uint32_t verify_chunk, uint32_t flags, const char *record_path,
                   struct xn_mig_result *res)
{
    struct xn_batch b = { .xch = xn_xch(h), .domid = domid, .gfns = gfns, .n = n, .res = res };
    struct xn_rec rec = { .fd = -1 };
    xc_domaininfo_t info;
    uint8_t *mapped = NULL;
    uint64_t *kept = NULL, *live = NULL;
    uint32_t *index = NULL, *live_at = NULL;
    sigset_t old;
    uint64_t paused_at, pages_at_map, pages_now;
    uint32_t i, given_back = 0, mapped_n;
    int rc, urc, still_paused = 0;

    memset(res, 0, sizeof(*res));
    if (!record_path)
        return res->error = -EINVAL;
    /* before the empty batch's early return: a node the host lacks is refused
     * whatever the batch holds, as libxenuma.h promises */
    if ((rc = xn_node_check(h, node)))
        return res->error = rc;
    if (n == 0)
        return 0;
    for (i = 1; i < n; i++)
        if (gfns[i] <= gfns[i - 1])
            return res->error = -EINVAL; /* ascending and unique: superpage runs depend on it */
    if ((rc = xn_mig_check(h, domid)))
        return res->error = rc;
    b.fmem = xc_interface_fmem_handle(b.xch);
    if (record_path && ((rc = xn_domain_info(b.xch, domid, &info)) ||
                        (rc = xn_rec_create(&rec, record_path, XN_REC_KIND_BATCH, domid, info.handle, gfns, n))))
        return res->error = rc;
    if ((rc = batch_alloc(&b, &rec)))
        goto out;
    kept = malloc((size_t)n * sizeof(*kept));
    index = malloc((size_t)n * sizeof(*index));
    live = malloc((size_t)n * sizeof(*live));
    live_at = malloc((size_t)n * sizeof(*live_at));
    if (!kept || !index || !live || !live_at) {
        rc = -ENOMEM;
        goto out;
    }
    if (verify_chunk == 0 || verify_chunk > n)
        verify_chunk = n;

    /* Page faults (each a page-table hypercall in a PV dom0) and mapping are
     * the slow parts of a copy, and need not happen with the guest paused:
     * touch the buffer for writing and map the guest's frames first. */
    memset(b.copy, 0, (size_t)n * XN_PAGE_SIZE);
    if ((rc = map_less_given_back(&b, &rec, live, live_at, &given_back, &mapped)))
        goto out;
    mapped_n = b.n;
    if (!mapped_n) {
        res->granted = given_back;
        res->stage = XN_MIG_STAGE_DONE; /* every gfn given back: nothing to move, nothing paused */
        goto out;
    }
    /* The caller checked that domid is its domain, then called us: a domain destroyed and its
     * domid given to another in between would have that one's pages moved.  Checked again
     * now, as late as it can be and still be sure: our mapping holds references to the
     * domain's pages, and a destroyed domain whose pages are held stays, dying, under its
     * domid, which no new domain gets until the unmap.  What is left is the stretch from the
     * unmap (before the frames are swapped) to the unpause: the domain is paused by us then,
     * so it cannot shut itself down or reboot; only the toolstack destroying the paused
     * domain and handing its domid to a new one inside that stretch (Xen gives domids out
     * in increasing order) would reach the new one, and the batch record's handle says so
     * to recovery. */
    if (handle && (rc = same_domain(b.xch, domid, handle))) {
        xenforeignmemory_unmap(b.fmem, mapped, mapped_n);
        goto out;
    }
    if ((rc = tot_pages(&b, &pages_at_map))) {
        xenforeignmemory_unmap(b.fmem, mapped, mapped_n);
        goto out;
    }

    /* No signal may run the caller's handlers (or kill it politely)
     * between pause and unpause; SIGKILL is the batch record's business. */
    xn_hold_signals(&old);
    xn_rec_set_state(&rec, XN_REC_PAUSING);
    if (xc_domain_pause(b.xch, domid)) {
        rc = xn_errno_rc();
        xn_rec_set_state(&rec, XN_REC_UNPAUSED); /* nothing taken, nothing to give back */
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        xenforeignmemory_unmap(b.fmem, mapped, mapped_n);
        goto out;
    }
    paused_at = xn_now_ns();
    /* The run clock once our pause holds, before the record says PAUSED:
     * recovery compares it with the clock then to tell whether the guest ran
     * since (someone gave back our pause) -- Xen's paused flag cannot. */
    if ((rc = xn_record_run_clock(b.xch, domid, &rec))) {
        /* nothing done yet: give the pause back and fail (kept for recovery if that fails too) */
        xn_rec_set_state(&rec, XN_REC_PAUSED);
        urc = xn_give_back_pause(b.xch, domid, &rec, XN_REC_PAUSED);
        if (urc < 0 && urc != -ESRCH) {
            still_paused = 1;
            res->stage = XN_MIG_STAGE_UNPAUSE;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        xenforeignmemory_unmap(b.fmem, mapped, mapped_n);
        goto out;
    }
    xn_rec_set_state(&rec, XN_REC_PAUSED);
    recognise_xen_mapped(&b, mapped);

    res->stage = XN_MIG_STAGE_COPY_OUT;
    res->error = leave_out_unmovable(&b, &rec, kept, index);
    res->granted += given_back; /* (leave_out_unmovable counts those of the mapped batch) */
    /* A gfn the guest gave back and took again since the mapping (a balloon
     * driver) is on a new frame, while the mapping still shows the old one,
     * which it alone kept alive.  Xen tells dom0 nothing of that, but the take
     * grew the domain's page count (the old frame counts until unmapped): if
     * the count moved, copy through a fresh mapping made now that the guest
     * cannot change its memory.  Two changes that cancel out in the same
     * instant (another gfn given back) would not be seen. */
    if (res->error == 0 && (res->error = tot_pages(&b, &pages_now)) == 0) {
        if (pages_now != pages_at_map)
            res->error = xn_batch_copy(&b, b.n, 0);
        else
            copy_out(&b, mapped, mapped_n, index);
    }
    /* Unmap before anything is released: dom0's own mapping would keep the
     * old frames alive. */
    xenforeignmemory_unmap(b.fmem, mapped, mapped_n);
    if (res->error == 0 && b.n) {
        xn_rec_set_state(&rec, XN_REC_COPIED);
        swap_frames(&b, node, verify_chunk, flags, &rec);
    } else if (res->error == 0) {
        /* every gfn is left out (granted, given back, Xen's): nothing to move, and the record stays PAUSED
         * (a recoverer only gives back the pause) */
        res->stage = XN_MIG_STAGE_DONE;
    }
    if (res->not_freed && res->stuck_count) {
        /* the stuck chunk, as indexes into the caller's list (spanning any gfn left out) */
        uint64_t last = index[res->stuck_first + res->stuck_count - 1];
        res->stuck_first = index[res->stuck_first];
        if (given_back) { /* indexes into the mapped batch: into the caller's list */
            last = live_at[last];
            res->stuck_first = live_at[res->stuck_first];
        }
        res->stuck_count = last - res->stuck_first + 1;
    }

    res->pause_ns = xn_now_ns() - paused_at;
    if (must_stay_paused(res, &rec)) {
        /* The record still says COPIED: recovery backs what is unbacked and
         * writes the saved contents back before it gives back the pause. */
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        rc = res->error;
        goto out;
    }
    /* Past this point the guest runs: the saved contents are stale and must
     * never be written back, whatever happened. */
    xn_rec_set_state(&rec, XN_REC_RESTORED);
    urc = xn_give_back_pause(b.xch, domid, &rec, XN_REC_RESTORED);
    if (urc < 0 && urc != -ESRCH) {
        /* still paused, whatever failed before: the stage says so (the caller's cue
         * to recover), and the record, RESTORED again, tells recovery to unpause */
        still_paused = 1;
        res->stage = XN_MIG_STAGE_UNPAUSE;
        res->error = res->error ? res->error : urc;
    } else if (urc == 0) {
        /* not paused: someone else gave back our pause inside the window, and the
         * guest may have run on gfns being moved */
        res->stage = XN_MIG_STAGE_UNPAUSE;
        res->error = -EINVAL;
    }
    if (flags & XN_MIG_FAULT_DIE_AFTER_UNPAUSE && rec.hdr)
        _exit(98); /* test hook: the mover dies with the record still there, the guest running */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    rc = res->error;
out:
    if (rc < 0 && res->error == 0)
        res->error = rc; /* failed before the pause (stage NONE): the header's promise */
    free(kept);
    free(index);
    free(live);
    free(live_at);
    batch_free(&b, &rec);
    if (rec.hdr && (must_stay_paused(res, &rec) || still_paused))
        xn_rec_close(&rec); /* kept, and no longer locked: a dead mover's record to recovery */
    else if (rec.hdr)
        xn_rec_remove(&rec);
    return rc;
}
