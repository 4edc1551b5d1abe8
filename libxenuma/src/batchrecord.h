/*
 * batchrecord: the file a mover keeps on tmpfs while it holds a domain
 * paused, so that whoever comes after a SIGKILL can put the guest back
 * together.  Pure POSIX, no Xen headers: unit-tested on its own
 * (tests/test_batchrecord.c).
 *
 * What it owns:
 *  - the format: a header (magic, version, kind, domid, state, the domain's
 *    handle, its run clock, the gfns) padded to a page, then, for a
 *    page-move batch, one page of saved contents per gfn;
 *  - the liveness rule: the mover holds an exclusive flock on the record for
 *    its whole life.  A record whose lock can be taken belongs to a dead
 *    mover, whatever became of its pid;
 *  - the state machine, written before each step it vouches for, and what
 *    recovery must do in each state (xn_rec_action).
 *
 * A record only appears under its name complete: it is written under a
 * temporary name and link()ed into place, which also refuses to overwrite a
 * record that still awaits recovery.
 */
#ifndef XENUMA_BATCHRECORD_H
#define XENUMA_BATCHRECORD_H

#include <stddef.h>
#include <stdint.h>

/* Internal to libxenuma: not exported from the shared library. */
#pragma GCC visibility push(hidden)

#define XN_REC_MAGIC 0x21424d554e45584eull /* "NXENUMB!" */
/* 3: the domain's handle, so a reused domid is never taken for it.
 * 4: the domain's run clock at our pause (run_ns), so recovery can tell
 *    whether the guest ran since -- whether our pause is still in force.
 * 5: the domain's max_pages before a raise in force (max_was, max_set), so
 *    recovery after a mover killed inside its raise gives the toolstack's
 *    value back.
 * Version 3 and 4 records (left on tmpfs across an upgrade) are still read and
 * recovered: version 3 has no run clock, which means the version 3 rule, and
 * neither says whether a raise of max_pages was in force. */
#define XN_REC_VERSION 5u
#define XN_REC_VERSION_OLDEST 3u
#define XN_REC_HANDLE_BYTES 16 /* xen_domain_handle_t: the domain's uuid */

/* What the record covers. */
#define XN_REC_KIND_BATCH 1u /* a page-move batch: gfns and their saved contents */
#define XN_REC_KIND_PROBE 2u /* the scan's probe pause: only "unpause domid" */

/* How far the mover got; each is stored before the step it announces. */
#define XN_REC_OPEN 0u      /* written; nothing done to the domain yet */
#define XN_REC_PAUSING 1u   /* pause about to be asked (it may or may not have happened) */
#define XN_REC_PAUSED 2u    /* paused by us; nothing released */
#define XN_REC_COPIED 3u    /* contents saved in the record; gfns may be released */
#define XN_REC_RESTORED 4u  /* every gfn backed again, contents back: only the unpause is left */
#define XN_REC_UNPAUSING 5u /* unpause about to be asked (it may or may not have happened) */
#define XN_REC_UNPAUSED 6u  /* unpaused: only the record's removal is left */
#define XN_REC_STATES 7u

/* What recovery does for a record left by a dead mover (xn_rec_action). */
#define XN_RECOVER_NOTHING 0         /* remove the record, touch nothing */
/* Recovery gives a pause back only while it is still ours: the domain paused and,
 * where the record has a run clock, the guest not run since (pagerecover.c). */
#define XN_RECOVER_UNPAUSE 1         /* we held a pause: give it back */
#define XN_RECOVER_UNPAUSE_IF_PAUSED 2 /* our pause may or may not have been taken (or given back) */
#define XN_RECOVER_RESTORE 3         /* back released gfns, copy the contents back, then unpause */
#define XN_RECOVER_INVALID (-1)

struct xn_rec_header {
    uint64_t magic;
    uint32_t version, kind;
    uint32_t domid, n;
    uint32_t state, pad;
    uint64_t size; /* bytes of the whole record */
    /* The domain's handle when the record was made: a domain that got its domid
     * since (the record's own domain gone) has another, and is never touched. */
    uint8_t handle[XN_REC_HANDLE_BYTES];
    /* Version 4 on (a version 3 record has its gfns here): the domain's total
     * vCPU run time (xen_domctl_getdomaininfo's cpu_time, ns) read once our
     * pause was in force.  Xen's pause flag is only "controller_pause_count
     * > 0", a count every toolstack user shares, so it cannot say whose pause
     * holds; this clock stops while any pause holds (the pause hypercall
     * returns once every vCPU is off its CPU) and moves only when the guest
     * runs, so a different reading at recovery proves that the guest ran, and
     * so that our pause was given back by someone.  XN_REC_NO_RUN_CLOCK until
     * stored (and for every version 3 record). */
    uint64_t run_ns;
    /* Version 5 on: a raise of the domain's max_pages in force (the mover's or a
     * recoverer's, stored before the hypercall that makes it, cleared once it is
     * given back): the toolstack's value before it (max_was) and the one set
     * (max_set; 0: no raise in force).  Recovery sets max_was again only while
     * the domain's max_pages is still max_set: another value is the toolstack's
     * since (a balloon target change), and stands. */
    uint64_t max_was, max_set;
    uint64_t gfns[];
};

#define XN_REC_NO_RUN_CLOCK UINT64_MAX

struct xn_rec {
    struct xn_rec_header *hdr; /* the mapping (shared: every store reaches the file) */
    uint64_t *gfns;            /* the record's gfns, where its version has them */
    size_t size;
    int fd;                    /* holds the flock */
    const char *path;          /* the caller's string, for removal */
};

/* Bytes of the header for n gfns, rounded up to whole pages (this version's). */
size_t xn_rec_header_bytes(uint32_t n);
/* Bytes of a whole record of this kind. */
size_t xn_rec_bytes(uint32_t kind, uint32_t n);

/*
 * Create the record at path (0600), locked, complete, state XN_REC_OPEN, for
 * domain domid whose handle (XN_REC_HANDLE_BYTES) is `handle`.
 * Space is reserved with posix_fallocate, so a full tmpfs is an error here
 * (-ENOSPC), never a SIGBUS later.  -EBUSY: a live mover holds a record
 * there; -EEXIST: a dead mover's record there still needs recovery.
 */
int xn_rec_create(struct xn_rec *r, const char *path, uint32_t kind, uint32_t domid, const uint8_t *handle,
                  const uint64_t *gfns, uint32_t n);
/* Store the state, after everything it vouches for. */
void xn_rec_set_state(struct xn_rec *r, uint32_t state);
uint32_t xn_rec_state(const struct xn_rec *r);
/* The domain's run clock, stored once our pause is in force (before the
 * state that says PAUSED); XN_REC_NO_RUN_CLOCK when there is none. */
void xn_rec_set_run_clock(struct xn_rec *r, uint64_t run_ns);
uint64_t xn_rec_run_clock(const struct xn_rec *r);
/* A raise of max_pages in force (set 0: none), stored before the raise is made
 * and cleared once it is given back; no-ops on a record older than version 5.
 * A kill between its two stores leaves the old pair or the new one (see the .c). */
void xn_rec_set_max(struct xn_rec *r, uint64_t was, uint64_t set);
/* The raise in force: 1 (*was, *set filled; *set 0: none), 0 for a record
 * from before raises were recorded (version 3 or 4: unknown). */
int xn_rec_max(const struct xn_rec *r, uint64_t *was, uint64_t *set);
/* The saved contents of a batch record (n pages). */
uint8_t *xn_rec_data(const struct xn_rec *r);
/* Remove the record (still holding its lock), then unmap and close. */
void xn_rec_remove(struct xn_rec *r);
/* Unmap and close, keeping the file (it still holds data a guest needs). */
void xn_rec_close(struct xn_rec *r);

/*
 * Open the record a mover left at path, taking its lock.  1: opened (a dead
 * mover's valid record, of this version or XN_REC_VERSION_OLDEST on); 0: nothing there (absent, or removed meanwhile);
 * -EBUSY: its mover is alive; -EPROTO: not a record of ours (left alone);
 * other -errno.
 */
int xn_rec_open_dead(struct xn_rec *r, const char *path);
/* Does a live mover hold the record at path?  1 yes, 0 no (or no record), -errno. */
int xn_rec_busy(const char *path);

/* Pure: what recovery does for a record of this kind left in this state. */
int xn_rec_action(uint32_t kind, uint32_t state);

#pragma GCC visibility pop

#endif
