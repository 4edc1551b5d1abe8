/*
 * Shared between libxenuma's page-migration translation units (pagescan.c,
 * pagemove.c, pagerecover.c) and libxenuma.c; not part of the API.
 */
#ifndef XENUMA_PAGEMOVE_INTERNAL_H
#define XENUMA_PAGEMOVE_INTERNAL_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include "libxenuma.h"

/* Not exported from the shared library: the API is libxenuma.h. */
#define XN_INTERNAL __attribute__((visibility("hidden")))

/* Exported by libxenctrl but not declared in xenctrl.h. */
int xc_get_pfn_type_batch(xc_interface *xch, uint32_t dom, unsigned int num, xen_pfn_t *arr);

#define XN_TYPE_BATCH 1024u /* gfns per getpageframeinfo3 */

XN_INTERNAL xc_interface *xn_xch(xn_handle *h);

/* libxc reports failures in errno; ours are -errno (never 0 for a failure). */
static inline int xn_errno_rc(void)
{
    return errno ? -errno : -EIO;
}

XN_INTERNAL uint64_t xn_now_ns(void);
/* One domain's info: 0, -ESRCH if it does not exist, -errno. */
XN_INTERNAL int xn_domain_info(xc_interface *xch, uint32_t domid, xc_domaininfo_t *info);
/* Block every asynchronous signal for a pause window (faults stay deliverable). */
XN_INTERNAL void xn_hold_signals(sigset_t *old);
XN_INTERNAL void xn_sleep_ms(unsigned int ms);

/* The gfns the domain grants to others now (malloc'd *gfns, *count of them,
 * NULL/0 for none) and how many of those are in use (*busy): 0 or -errno. */
XN_INTERNAL int xn_granted_now(xc_interface *xch, uint32_t domid, uint64_t **gfns, size_t *count, size_t *busy);

/* The p2m types of gfns[0..n) into types[] (XEN_DOMCTL_PFINFO_*): 0 or -errno. */
XN_INTERNAL int xn_type_gfns(xc_interface *xch, uint32_t domid, const uint64_t *gfns, uint32_t n, xen_pfn_t *types);
struct xn_rec;
/* A raise of the domain's max_pages to be given back: the toolstack's value before
 * the first raise (was) and the one set by the last (raised; 0: none). */
struct xn_max {
    uint64_t was, raised;
};
/* Make room under the domain's max_pages for `pages` more (frames a release could
 * not free still count against it, and the toolstack may have capped it below the
 * domain's count, as squeezed does while a balloon driver shrinks the guest):
 * raises it by the shortfall only, noting it in *max and, before the raise is
 * made, in the batch record (rec: NULL or no file for none), so that recovery
 * after a kill gives it back; returns the pages added (0: there was room) or -errno. */
XN_INTERNAL int xn_raise_max(xc_interface *xch, uint32_t domid, uint64_t pages, struct xn_max *max,
                             struct xn_rec *rec);
/* Once every gfn is backed: max_pages back to the toolstack's value (Xen lets it
 * stay below the count: only allocations wait), unless the toolstack has set
 * another since; the record then says no raise is in force.  0 or -errno. */
XN_INTERNAL int xn_give_back_max(xc_interface *xch, uint32_t domid, struct xn_max *max, struct xn_rec *rec);
/* Give back a pause we took, exactly once, with the record (if any) following:
 * UNPAUSING around the call, UNPAUSED once it is done.  A failed unpause did not
 * happen, so it is tried again; if it still fails the record goes back to
 * `held` (a state whose recovery gives the pause back).  1 (unpaused), 0 (it
 * was not paused), -ESRCH (gone; the record says UNPAUSED), or -errno. */
XN_INTERNAL int xn_give_back_pause(xc_interface *xch, uint32_t domid, struct xn_rec *rec, uint32_t held);
/* Store the domain's run clock (its vCPUs' total run time) in the record, once
 * our pause is in force (see batchrecord.h, run_ns): 0 or -errno. */
XN_INTERNAL int xn_record_run_clock(xc_interface *xch, uint32_t domid, struct xn_rec *rec);

/* One batch of gfns being moved (or put back by recovery). */
struct xn_batch {
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    uint32_t domid;
    const uint64_t *gfns;
    uint32_t n;
    uint8_t *copy;          /* n pages of contents */
    uint8_t *is_super;
    xen_pfn_t *scratch;     /* gfn lists handed to Xen */
    xen_pfn_t *runs;        /* the mover's 2 MiB runs (n / 512 + 1 of them) */
    uint64_t *backed;       /* without a record: the released gfns backed again ... */
    uint32_t *at;           /* ... and where each is in gfns[] (n of each) */
    uint8_t *xen_maps;      /* per gfn: at the pause, its contents were a page Xen maps */
    struct xn_mig_result *res;
};

/* gfn lists are uint64_t here and xen_pfn_t for Xen: the same on x86-64 and Arm64 */
_Static_assert(sizeof(xen_pfn_t) == sizeof(uint64_t), "xen_pfn_t is not 64 bits wide");

/* Map the guest's gfns[0..count) (count <= b->n; the list goes through b->scratch)
 * into *out; every page must map: 0, or -errno with nothing left mapped.  Undo
 * with xenforeignmemory_unmap. */
XN_INTERNAL int xn_batch_map(struct xn_batch *b, const uint64_t *gfns, uint32_t count, int prot, uint8_t **out);
/* Copy gfns[0..count) between the guest and b->copy through a fresh mapping. */
XN_INTERNAL int xn_batch_copy(struct xn_batch *b, uint32_t count, int to_guest);

#endif
