/*
 * Recovery after a dead mover: finish what the batch record (batchrecord.h)
 * says was left undone -- back released gfns again and copy their saved
 * contents back, then give back the pause the mover took, exactly once.
 * Whether the mover is dead is the record's lock, never a pid.
 *
 * Whose pause holds.  Xen's XEN_DOMINF_paused is only "controller_pause_count
 * > 0": one count shared by every toolstack user (xl pause, xenopsd, us), so
 * it cannot say that the pause in force is ours.  The record keeps instead
 * the domain's run clock (the sum of its vCPUs' running time, cpu_time in
 * getdomaininfo) read once our pause held.  That clock stops while any pause
 * holds and moves only when the guest runs, so for a record that says we
 * held the pause (PAUSED, COPIED, RESTORED, UNPAUSING):
 *  - the clock moved: the guest ran since our pause, so the count went to 0
 *    at some point and our pause is gone (someone's unpause took it).  Never
 *    unpause (a pause held now is someone else's), and for COPIED back and
 *    restore only the gfns with no frame (the guest may have written the
 *    others: the saved copy is older) -- XN_MIG_RECOVERED_RUNNING;
 *  - the clock is where it was and the domain is paused: the guest has not
 *    run since, so its memory is as we left it: full copy back (COPIED), then
 *    give back the pause;
 *  - not paused: nothing to give back (and the guest may run any moment:
 *    COPIED gets the running guest's treatment).
 * What the clock cannot tell: someone unpausing and someone pausing again
 * with the guest not running a nanosecond in between (every vCPU blocked, or
 * no scheduling slot, all the while).  Then the pause we give back is the
 * other party's -- but the guest's memory is still as the copy saved it.
 *
 * PAUSING (killed around the pause hypercall) has no clock yet: the record
 * says PAUSING before the hypercall and the clock is stored after it
 * returns, so we cannot know whether our pause was ever taken.  The rule
 * stays "give back a pause only if the domain is paused", and it is wrong in
 * one case that nothing here can see: we were killed before our pause was
 * taken (or Xen refused it) while someone else holds a pause; then theirs is
 * given back.  UNPAUSING has the mirror ambiguity: killed after our unpause
 * hypercall and before the record said UNPAUSED, while someone else's pause
 * (taken within our window, or after, before the guest ran) keeps the domain
 * paused with the clock unmoved: that pause is given back too.  Both windows
 * are one hypercall wide.
 *
 * A version 3 record (no run clock, from before an upgrade) is recovered by
 * the old rule: the paused flag alone.
 *
 * A raise of the domain's max_pages in force when the mover died (it raises
 * it inside the pause window when frames a release did not free, or the
 * toolstack's cap, leave no room to back every gfn) is in a version 5
 * record: it is given back first, as the mover would have (see
 * give_back_recorded_max).
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

/* Released and not backed again: only those (populating a backed gfn would
 * orphan its frame).  Fills missing[], returns how many or -errno. */
static int find_unbacked(xc_interface *xch, const struct xn_rec *rec, xen_pfn_t *types, xen_pfn_t *missing)
{
    uint32_t i, nmissing = 0;
    int rc = xn_type_gfns(xch, rec->hdr->domid, rec->gfns, rec->hdr->n, types);

    if (rc)
        return rc;
    for (i = 0; i < rec->hdr->n; i++)
        if ((types[i] & XEN_DOMCTL_PFINFO_LTAB_MASK) == XEN_DOMCTL_PFINFO_XTAB)
            missing[nmissing++] = rec->gfns[i];
    return (int)nmissing;
}

/*
 * Only the gfns just backed again (missing[0..count)) get their saved contents:
 * the guest ran since our pause (or may run now: someone gave that pause back),
 * so whatever it has in the others may be newer than the copy.  The ones without a frame it cannot have written.
 */
static int restore_missing_only(struct xn_batch *b, const xen_pfn_t *missing, uint32_t count)
{
    uint8_t *map;
    uint32_t i, k = 0;
    int rc = count ? xn_batch_map(b, missing, count, PROT_READ | PROT_WRITE, &map) : 0;

    if (rc || !count)
        return rc;
    /* missing[] is in the record's (ascending) order: walk both lists once */
    for (i = 0; i < b->n && k < count; i++)
        if (b->gfns[i] == missing[k])
            memcpy(map + (size_t)k++ * XN_PAGE_SIZE, b->copy + (size_t)i * XN_PAGE_SIZE, XN_PAGE_SIZE);
    xenforeignmemory_unmap(b->fmem, map, count);
    return 0;
}

/* Back count gfns again, on any node.  Frames a release did not free (something
 * still referenced them) still count against the domain's maximum, so when it is
 * reached it is raised by what is missing and the rest tried again, as the mover
 * itself does (and given back once they are backed): otherwise the guest would stay paused, short of those gfns, for
 * every recovery to come. */
static void back_again(xc_interface *xch, struct xn_rec *rec, xen_pfn_t *missing, uint32_t count,
                       struct xn_mig_result *res)
{
    uint32_t domid = rec->hdr->domid;
    struct xn_max max = { 0, 0 };
    uint32_t done = 0;
    int attempt;

    for (attempt = 0; done < count && attempt < 2; attempt++) {
        int got, raised;
        if (attempt && (raised = xn_raise_max(xch, domid, count - done, &max, rec)) > 0)
            res->raised_max += (uint64_t)raised;
        got = xc_domain_populate_physmap(xch, domid, (unsigned long)(count - done), 0, 0, missing + done);
        if (got > 0)
            done += (uint32_t)got;
    }
    xn_give_back_max(xch, domid, &max, rec); /* the toolstack's value again, as the mover leaves it */
    res->fallback = done;
    res->lost = count - done;
}

/* The contents the mover saved go back into the guest (any node will do); into
 * a running guest only those of the gfns that had no frame. */
static int restore_batch(xc_interface *xch, struct xn_rec *rec, struct xn_mig_result *res, int running)
{
    const struct xn_rec_header *hdr = rec->hdr;
    struct xn_batch b = { .xch = xch, .fmem = xc_interface_fmem_handle(xch), .domid = hdr->domid,
                          .gfns = rec->gfns, .n = hdr->n, .res = res, .copy = xn_rec_data(rec) };
    xen_pfn_t *types = malloc((size_t)hdr->n * sizeof(*types));
    xen_pfn_t *missing = malloc((size_t)hdr->n * sizeof(*missing));
    int rc;

    b.scratch = malloc((size_t)hdr->n * sizeof(xen_pfn_t));
    if (!types || !missing || !b.scratch || !b.fmem) {
        rc = -ENOMEM;
        goto out;
    }
    rc = find_unbacked(xch, rec, types, missing);
    if (rc > 0)
        back_again(xch, rec, missing, (uint32_t)rc, res);
    if (rc >= 0 && res->lost)
        rc = -ENOMEM;
    else if (rc >= 0)
        rc = running ? restore_missing_only(&b, missing, (uint32_t)rc) : xn_batch_copy(&b, hdr->n, 1);
    if (rc == 0)
        xn_rec_set_state(rec, XN_REC_RESTORED);
out:
    free(types);
    free(missing);
    free(b.scratch);
    return rc;
}

/* A raise of max_pages the mover (or an earlier recoverer) was killed inside is
 * given back: the toolstack's value again, unless the maximum is no longer the
 * one we set (the toolstack has set its own since: it stands).  A record from
 * before raises were recorded cannot say; past its copy one may be in force,
 * and the caller is told (max_unknown).  A failure to set it leaves the raise
 * (it never stops the guest's recovery). */
static void give_back_recorded_max(xc_interface *xch, struct xn_rec *rec, const xc_domaininfo_t *info,
                                   struct xn_mig_result *res)
{
    struct xn_max max = { 0, 0 };
    int ours;

    if (!xn_rec_max(rec, &max.was, &max.raised)) {
        res->max_unknown = xn_rec_state(rec) == XN_REC_COPIED;
        return;
    }
    if (!max.raised)
        return;
    ours = info->max_pages == max.raised;
    if (xn_give_back_max(xch, rec->hdr->domid, &max, rec) == 0 && ours)
        res->max_restored = max.was;
}

/* Is the pause the record says we took still ours to give back?  See the
 * comment at the top: the domain is paused and its run clock has not moved
 * since the record stored it (no clock: a PAUSING or version 3 record, for
 * which the paused flag is all there is). */
static int our_pause_holds(const struct xn_rec *rec, const xc_domaininfo_t *info)
{
    uint64_t then = xn_rec_run_clock(rec);

    if (!(info->flags & XEN_DOMINF_paused))
        return 0;
    return then == XN_REC_NO_RUN_CLOCK || info->cpu_time == then;
}

/* Give back the mover's pause if it still holds; the record follows, so a
 * recoverer killed here is not followed by a second unpause either. */
static int give_back_pause(xc_interface *xch, struct xn_rec *rec, const xc_domaininfo_t *info)
{
    if (!our_pause_holds(rec, info))
        return 0;
    return xn_give_back_pause(xch, rec->hdr->domid, rec, xn_rec_state(rec));
}

int xn_mig_recover(xn_handle *h, const char *record_path, struct xn_mig_result *res)
{
    xc_interface *xch = xn_xch(h);
    xc_domaininfo_t info;
    struct xn_rec rec;
    int rc, action, running;

    memset(res, 0, sizeof(*res));
    rc = xn_rec_open_dead(&rec, record_path);
    if (rc <= 0)
        return rc; /* nothing there, a live mover (-EBUSY), or not a record of ours */
    rc = xn_domain_info(xch, rec.hdr->domid, &info);
    if (rc == 0 && (info.flags & XEN_DOMINF_dying))
        rc = -ESRCH;
    /* another domain has its domid now: the record's own is gone */
    if (rc == 0 && memcmp(info.handle, rec.hdr->handle, XN_REC_HANDLE_BYTES))
        rc = -ESRCH;
    if (rc == -ESRCH) {
        xn_rec_remove(&rec); /* its domain is gone: nothing left to save */
        return XN_MIG_RECOVERED_GONE;
    }
    if (rc) {
        xn_rec_close(&rec);
        return rc;
    }
    give_back_recorded_max(xch, &rec, &info, res);
    action = xn_rec_action(rec.hdr->kind, xn_rec_state(&rec));
    switch (action) {
    case XN_RECOVER_RESTORE:
        /* the guest ran since our pause (or can now): its memory may be newer than the copy */
        running = !our_pause_holds(&rec, &info);
        rc = restore_batch(xch, &rec, res, running);
        if (rc == -ESRCH) {
            xn_rec_remove(&rec);
            return XN_MIG_RECOVERED_GONE;
        }
        if (rc) {
            xn_rec_close(&rec); /* keep the record: it holds the guest's data */
            return rc;
        }
        /* someone else gave back our pause already: the guest runs on, and a
         * pause held now is theirs to give back */
        rc = running ? XN_MIG_RECOVERED_RUNNING : give_back_pause(xch, &rec, &info);
        break;
    case XN_RECOVER_UNPAUSE:
    case XN_RECOVER_UNPAUSE_IF_PAUSED:
        /* the same rule for both: only a pause that is still ours goes back */
        rc = give_back_pause(xch, &rec, &info);
        break;
    case XN_RECOVER_NOTHING:
        rc = 0;
        break;
    default:
        xn_rec_close(&rec);
        return -EPROTO;
    }
    if (rc < 0 && rc != -ESRCH) {
        xn_rec_close(&rec);
        return rc;
    }
    xn_rec_remove(&rec);
    return rc < 0 ? XN_MIG_RECOVERED_GONE : rc;
}

int xn_mig_record_busy(const char *record_path)
{
    return xn_rec_busy(record_path);
}
