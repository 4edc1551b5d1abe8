/*
 * batchrecord: the file a mover keeps on tmpfs while it holds a domain
 * paused, so that whoever comes after a SIGKILL can put the guest back
 * together.  Pure POSIX, no Xen headers: unit-tested on its own
 * (tests/test_batchrecord.c).
 *
 * What it owns:
 *  - the format: a header (magic, version, kind, domid, state, the gfns)
 *    padded to a page, then, for a page-move batch, one page of saved
 *    contents per gfn;
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
#define XN_REC_VERSION 3u /* 3: the domain's handle, so a reused domid is never taken for it */
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
#define XN_RECOVER_UNPAUSE 1         /* we hold a pause: give it back */
#define XN_RECOVER_UNPAUSE_IF_PAUSED 2 /* our pause may or may not be in force: only if the domain is paused */
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
    uint64_t gfns[];
};

struct xn_rec {
    struct xn_rec_header *hdr; /* the mapping (shared: every store reaches the file) */
    size_t size;
    int fd;                    /* holds the flock */
    const char *path;          /* the caller's string, for removal */
};

/* Bytes of the header for n gfns, rounded up to whole pages. */
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
/* The saved contents of a batch record (n pages). */
uint8_t *xn_rec_data(const struct xn_rec *r);
/* Remove the record (still holding its lock), then unmap and close. */
void xn_rec_remove(struct xn_rec *r);
/* Unmap and close, keeping the file (it still holds data a guest needs). */
void xn_rec_close(struct xn_rec *r);

/*
 * Open the record a mover left at path, taking its lock.  1: opened (a dead
 * mover's valid record); 0: nothing there (absent, or removed meanwhile);
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
