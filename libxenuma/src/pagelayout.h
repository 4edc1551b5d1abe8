/*
 * pagelayout: the pure parts of page migration, with no Xen headers, unit
 * tested on their own (test_pagelayout.c).
 *
 *  - Recognising guest frames that Xen itself keeps mapped on stock Xen 4.17
 *    (it maps them once, when the guest registers them, and writes through
 *    that mapping for ever): a vCPU's vcpu_info, a FIFO event-channel
 *    control block, an event-array page.  Moving such a frame leaves Xen
 *    writing to the old one and stalls the guest.  Dom0 cannot ask Xen which
 *    frames these are, so they are recognised by their layout.
 *  - Reading grant-table entries (v1 and v2) for frames granted to others.
 *  - Splitting a sorted batch of gfns into whole, aligned 2 MiB runs (to be
 *    repopulated as superpages) and single pages.
 *  - Telling from a domain's page counts how many released frames Xen did
 *    not free.
 */
#ifndef XENUMA_PAGELAYOUT_H
#define XENUMA_PAGELAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define XN_PAGE_SIZE 4096u
#define XN_SUPERPAGE_ORDER 9u
#define XN_SUPERPAGE_PAGES (1u << XN_SUPERPAGE_ORDER)

/* What a page looks like (the XN_GFN_* values of libxenuma.h). */
#define XN_LAYOUT_PLAIN 0
#define XN_LAYOUT_VCPU_INFO 4
#define XN_LAYOUT_EVTCHN 5

/*
 * Does this 4 KiB page hold a vcpu_info (at a 64-byte slot) or FIFO
 * event-channel structures?  Returns one of XN_LAYOUT_*.  False positives only cost a
 * page left where it is; see pagelayout.c for the criteria.
 */
int xn_page_layout(const uint8_t *page);

/* The rest is internal to libxenuma (not in libxenuma.h): kept out of the shared library's
 * exports, so that no one links against what the next release may change. */
#pragma GCC visibility push(hidden)

/*
 * Grant entries in `table` (nr_entries of them, version 1 or 2): write the
 * gfn of every entry that grants access to a frame (GTF_permit_access) into
 * gfns[], up to cap.  *busy gets how many of those are being read or
 * written by the grantee right now.  Returns how many gfns were written, or
 * -EINVAL for an unknown version.
 */
long xn_granted_gfns(const uint8_t *table, size_t nr_entries, int version, uint64_t *gfns, size_t cap,
                     size_t *busy);

/*
 * gfns[0..n) ascending.  Mark in is_super[i] (1/0) the pages that belong to
 * a complete, 2 MiB-aligned run of 512 consecutive gfns within the batch.
 * Returns the number of such runs.
 */
size_t xn_superpage_runs(const uint64_t *gfns, size_t n, uint8_t *is_super);

/*
 * A release of `released` frames took the domain's page count from `before`
 * to `after`: how many of them were not freed (0 .. released).  A count that
 * did not drop (or rose: something populated meanwhile) hides nothing: every
 * frame not accounted for by the drop counts as not freed.
 */
uint64_t xn_unfreed(uint64_t before, uint64_t after, uint64_t released);

#pragma GCC visibility pop

#endif
