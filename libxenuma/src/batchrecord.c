/* batchrecord: see batchrecord.h. */
#define _GNU_SOURCE
#include "batchrecord.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define REC_PAGE 4096u

/* Where a record of this version keeps its gfns: version 3 had no run clock,
 * version 4 no raise of max_pages. */
static size_t gfns_offset(uint32_t version)
{
    if (version == 3u)
        return offsetof(struct xn_rec_header, run_ns);
    return version == 4u ? offsetof(struct xn_rec_header, max_was) : offsetof(struct xn_rec_header, gfns);
}

static size_t header_bytes(uint32_t version, uint32_t n)
{
    size_t bytes = gfns_offset(version) + (size_t)n * sizeof(uint64_t);
    return (bytes + REC_PAGE - 1) / REC_PAGE * REC_PAGE;
}

static size_t record_bytes(uint32_t version, uint32_t kind, uint32_t n)
{
    return header_bytes(version, n) + (kind == XN_REC_KIND_BATCH ? (size_t)n * REC_PAGE : 0);
}

size_t xn_rec_header_bytes(uint32_t n)
{
    return header_bytes(XN_REC_VERSION, n);
}

size_t xn_rec_bytes(uint32_t kind, uint32_t n)
{
    return record_bytes(XN_REC_VERSION, kind, n);
}

int xn_rec_action(uint32_t kind, uint32_t state)
{
    if (kind != XN_REC_KIND_BATCH && kind != XN_REC_KIND_PROBE)
        return XN_RECOVER_INVALID;
    switch (state) {
    case XN_REC_OPEN:
    case XN_REC_UNPAUSED:
        return XN_RECOVER_NOTHING;
    case XN_REC_PAUSED:
    case XN_REC_RESTORED:
        return XN_RECOVER_UNPAUSE;
    case XN_REC_PAUSING:
    case XN_REC_UNPAUSING:
        /* Xen's pause is a counter: unpausing a pause we never took (or
         * already gave back) would undo someone else's. */
        return XN_RECOVER_UNPAUSE_IF_PAUSED;
    case XN_REC_COPIED:
        /* a probe saves nothing: it never gets here */
        return kind == XN_REC_KIND_BATCH ? XN_RECOVER_RESTORE : XN_RECOVER_INVALID;
    default:
        return XN_RECOVER_INVALID;
    }
}

void xn_rec_set_state(struct xn_rec *r, uint32_t state)
{
    if (r && r->hdr)
        __atomic_store_n(&r->hdr->state, state, __ATOMIC_RELEASE); /* after the data it vouches for */
}

uint32_t xn_rec_state(const struct xn_rec *r)
{
    return __atomic_load_n(&r->hdr->state, __ATOMIC_ACQUIRE);
}

void xn_rec_set_run_clock(struct xn_rec *r, uint64_t run_ns)
{
    if (r && r->hdr && r->hdr->version >= 4u)
        __atomic_store_n(&r->hdr->run_ns, run_ns, __ATOMIC_RELEASE); /* before the state that relies on it */
}

uint64_t xn_rec_run_clock(const struct xn_rec *r)
{
    return r->hdr->version >= 4u ? __atomic_load_n(&r->hdr->run_ns, __ATOMIC_ACQUIRE) : XN_REC_NO_RUN_CLOCK;
}

/* max_set says whether a raise is in force, and recovery reads max_was only when it
 * does: so a raise stores its max_was first and then its max_set, and a clearing
 * (set 0) its max_set first.  Killed between the two, the record says what it said
 * before or what it was to say, never the max_set of one with the max_was of the
 * other (a cleared raise once left the raised value with a max_was of 0).  A raise
 * made over one in force keeps its max_was (the toolstack's, xn_raise_max), so its
 * first store changes nothing. */
void xn_rec_set_max(struct xn_rec *r, uint64_t was, uint64_t set)
{
    if (!r || !r->hdr || r->hdr->version < 5u)
        return;
    if (set == 0) {
        __atomic_store_n(&r->hdr->max_set, 0, __ATOMIC_RELEASE); /* no raise in force from here */
        __atomic_store_n(&r->hdr->max_was, was, __ATOMIC_RELEASE);
        return;
    }
    __atomic_store_n(&r->hdr->max_was, was, __ATOMIC_RELEASE);
    __atomic_store_n(&r->hdr->max_set, set, __ATOMIC_RELEASE); /* after the value it gives back to */
}

int xn_rec_max(const struct xn_rec *r, uint64_t *was, uint64_t *set)
{
    if (r->hdr->version < 5u)
        return 0;
    *set = __atomic_load_n(&r->hdr->max_set, __ATOMIC_ACQUIRE);
    *was = __atomic_load_n(&r->hdr->max_was, __ATOMIC_ACQUIRE);
    return 1;
}

uint8_t *xn_rec_data(const struct xn_rec *r)
{
    return (uint8_t *)r->hdr + header_bytes(r->hdr->version, r->hdr->n);
}

void xn_rec_close(struct xn_rec *r)
{
    if (r->hdr)
        munmap(r->hdr, r->size);
    if (r->fd >= 0)
        close(r->fd);
    r->hdr = NULL;
    r->gfns = NULL;
    r->fd = -1;
}

void xn_rec_remove(struct xn_rec *r)
{
    /* Unlinked while still locked: nobody can take a finished record for a dead one. */
    if (r->path)
        unlink(r->path);
    xn_rec_close(r);
}

static int header_is_valid(const struct xn_rec_header *h, size_t file_size)
{
    return h->magic == XN_REC_MAGIC && h->version >= XN_REC_VERSION_OLDEST && h->version <= XN_REC_VERSION &&
           (h->kind == XN_REC_KIND_BATCH || h->kind == XN_REC_KIND_PROBE) && h->size == file_size &&
           file_size >= record_bytes(h->version, h->kind, h->n) && h->state < XN_REC_STATES;
}

int xn_rec_open_dead(struct xn_rec *r, const char *path)
{
    struct stat st, cur;
    void *map;
    int fd, rc;

    memset(r, 0, sizeof(*r));
    r->fd = -1;
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        close(fd);
        return rc;
    }
    /* The mover may have finished (and removed it) between our open and our lock. */
    if (fstat(fd, &st) || stat(path, &cur) || cur.st_ino != st.st_ino || cur.st_dev != st.st_dev) {
        close(fd);
        return 0;
    }
    if ((size_t)st.st_size < sizeof(struct xn_rec_header)) {
        close(fd);
        return -EPROTO;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if (!header_is_valid(map, (size_t)st.st_size)) {
        munmap(map, (size_t)st.st_size);
        close(fd);
        return -EPROTO; /* not ours: records only appear complete */
    }
    r->hdr = map;
    r->gfns = (uint64_t *)((uint8_t *)map + gfns_offset(r->hdr->version));
    r->size = (size_t)st.st_size;
    r->fd = fd;
    r->path = path;
    return 1;
}

int xn_rec_busy(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), busy;

    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    /* A shared lock fails only against the mover's exclusive one. */
    if (flock(fd, LOCK_SH | LOCK_NB) == 0)
        busy = 0;
    else
        busy = errno == EWOULDBLOCK ? 1 : -errno;
    close(fd);
    return busy;
}

/* Put the finished temporary record under its name; make way for a dead
 * mover's record only when it holds nothing a guest still needs. */
static int publish(const char *tmp, const char *path)
{
    struct xn_rec old;
    int attempt, rc;

    for (attempt = 0; attempt < 2; attempt++) {
        if (link(tmp, path) == 0)
            return 0;
        if (errno != EEXIST)
            return -errno;
        rc = xn_rec_open_dead(&old, path);
        if (rc < 0)
            return rc == -EBUSY ? -EBUSY : -EEXIST;
        if (rc == 1) {
            if (xn_rec_action(old.hdr->kind, xn_rec_state(&old)) != XN_RECOVER_NOTHING) {
                xn_rec_close(&old);
                return -EEXIST;
            }
            xn_rec_remove(&old);
        }
    }
    return -EEXIST;
}

static unsigned int tmp_serial; /* makes each temporary name of this process its own */

int xn_rec_create(struct xn_rec *r, const char *path, uint32_t kind, uint32_t domid, const uint8_t *handle,
                  const uint64_t *gfns, uint32_t n)
{
    size_t size = xn_rec_bytes(kind, n), len = strlen(path) + 64;
    char *tmp = malloc(len);
    struct xn_rec_header *h;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    r->fd = -1;
    if (!tmp)
        return -ENOMEM;
    if (kind != XN_REC_KIND_BATCH && kind != XN_REC_KIND_PROBE) {
        free(tmp);
        return -EINVAL;
    }
    /* One name per call: two threads of one process (xenopsd calls us from
     * several) must never unlink or publish each other's file. */
    snprintf(tmp, len, "%s.new.%ld.%ld.%u", path, (long)getpid(), (long)syscall(SYS_gettid),
             __atomic_fetch_add(&tmp_serial, 1u, __ATOMIC_RELAXED));
    unlink(tmp); /* left by a dead process that had our pid, thread id and count */
    r->fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (r->fd < 0) {
        rc = -errno;
        goto fail;
    }
    if (flock(r->fd, LOCK_EX | LOCK_NB)) {
        rc = -errno;
        goto fail;
    }
    /* posix_fallocate returns the error rather than setting errno. */
    if ((rc = -posix_fallocate(r->fd, 0, (off_t)size)))
        goto fail;
    h = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (h == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    r->hdr = h;
    r->gfns = h->gfns;
    r->size = size;
    h->version = XN_REC_VERSION;
    h->run_ns = XN_REC_NO_RUN_CLOCK;
    h->max_was = h->max_set = 0;
    h->kind = kind;
    h->domid = domid;
    memcpy(h->handle, handle, XN_REC_HANDLE_BYTES);
    h->n = n;
    h->size = size;
    if (n)
        memcpy(r->gfns, gfns, (size_t)n * sizeof(uint64_t));
    xn_rec_set_state(r, XN_REC_OPEN);
    __atomic_store_n(&h->magic, XN_REC_MAGIC, __ATOMIC_RELEASE);
    if ((rc = publish(tmp, path)))
        goto fail;
    unlink(tmp);
    free(tmp);
    r->path = path;
    return 0;
fail:
    unlink(tmp);
    free(tmp);
    r->path = NULL;
    xn_rec_close(r);
    return rc;
}
