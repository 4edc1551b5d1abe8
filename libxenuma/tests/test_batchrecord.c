/* Unit tests of batchrecord (the mover's record: format, lock, state machine,
 * recovery actions); no Xen needed.  Prints "N passed, N failed". */
#define _GNU_SOURCE
#include "batchrecord.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int passed, failed;

#define CHECK(cond) do { if (cond) passed++; else { failed++; \
    fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)

static char dir[64], path[128];
static const uint64_t gfns[3] = { 0x100, 0x101, 0x2000 };
static const uint8_t handle[XN_REC_HANDLE_BYTES] = { 0xde, 0xad, [15] = 0x01 };

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void test_actions(void)
{
    uint32_t kinds[2] = { XN_REC_KIND_BATCH, XN_REC_KIND_PROBE }, k;

    for (k = 0; k < 2; k++) {
        CHECK(xn_rec_action(kinds[k], XN_REC_OPEN) == XN_RECOVER_NOTHING);
        CHECK(xn_rec_action(kinds[k], XN_REC_PAUSING) == XN_RECOVER_UNPAUSE_IF_PAUSED);
        CHECK(xn_rec_action(kinds[k], XN_REC_PAUSED) == XN_RECOVER_UNPAUSE);
        CHECK(xn_rec_action(kinds[k], XN_REC_RESTORED) == XN_RECOVER_UNPAUSE);
        CHECK(xn_rec_action(kinds[k], XN_REC_UNPAUSING) == XN_RECOVER_UNPAUSE_IF_PAUSED);
        /* the unpause was done: a second one would undo someone else's pause */
        CHECK(xn_rec_action(kinds[k], XN_REC_UNPAUSED) == XN_RECOVER_NOTHING);
        CHECK(xn_rec_action(kinds[k], XN_REC_STATES) == XN_RECOVER_INVALID);
    }
    CHECK(xn_rec_action(XN_REC_KIND_BATCH, XN_REC_COPIED) == XN_RECOVER_RESTORE);
    CHECK(xn_rec_action(XN_REC_KIND_PROBE, XN_REC_COPIED) == XN_RECOVER_INVALID);
    CHECK(xn_rec_action(7, XN_REC_PAUSED) == XN_RECOVER_INVALID);
}

static void test_format(void)
{
    struct xn_rec r;
    struct stat st;
    char tmp[160];

    CHECK(xn_rec_header_bytes(0) == 4096 && xn_rec_header_bytes(3) == 4096);
    CHECK(xn_rec_header_bytes(600) == 8192);
    CHECK(xn_rec_bytes(XN_REC_KIND_BATCH, 3) == 4096 + 3 * 4096);
    CHECK(xn_rec_bytes(XN_REC_KIND_PROBE, 0) == 4096);

    CHECK(xn_rec_create(&r, path, XN_REC_KIND_BATCH, 7, handle, gfns, 3) == 0);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK((size_t)st.st_size == xn_rec_bytes(XN_REC_KIND_BATCH, 3));
    CHECK(st.st_blocks * 512 >= st.st_size); /* reserved, not sparse */
    CHECK(r.hdr->magic == XN_REC_MAGIC && r.hdr->version == XN_REC_VERSION);
    CHECK(r.hdr->kind == XN_REC_KIND_BATCH && r.hdr->domid == 7 && r.hdr->n == 3);
    CHECK(r.hdr->gfns[2] == 0x2000 && xn_rec_state(&r) == XN_REC_OPEN);
    CHECK(xn_rec_data(&r) == (uint8_t *)r.hdr + 4096);
    snprintf(tmp, sizeof(tmp), "%s.new.%ld", path, (long)getpid());
    CHECK(!exists(tmp)); /* the temporary name is gone once published */
    /* while we hold it: busy, and recovery keeps its hands off */
    CHECK(xn_rec_busy(path) == 1);
    {
        struct xn_rec other;
        CHECK(xn_rec_open_dead(&other, path) == -EBUSY);
        CHECK(xn_rec_create(&other, path, XN_REC_KIND_PROBE, 7, handle, NULL, 0) == -EBUSY);
    }
    xn_rec_remove(&r);
    CHECK(!exists(path));
    CHECK(xn_rec_busy(path) == 0);
}

/* A child makes a record, takes it to `state`, writes a page, and dies by
 * SIGKILL (or waits for one when hold is set); returns its pid. */
static pid_t mover(uint32_t kind, uint32_t state, int hold, int ready_fd)
{
    pid_t pid = fork();

    if (pid == 0) {
        struct xn_rec r;
        char ok = 1;
        if (xn_rec_create(&r, path, kind, 9, handle, gfns, kind == XN_REC_KIND_BATCH ? 3 : 0))
            _exit(3);
        if (kind == XN_REC_KIND_BATCH)
            memset(xn_rec_data(&r) + 4096, 0x5a, 4096);
        xn_rec_set_state(&r, state);
        if (write(ready_fd, &ok, 1) != 1)
            _exit(4);
        if (hold)
            pause();
        kill(getpid(), SIGKILL);
        _exit(5);
    }
    return pid;
}

static void wait_ready(int fd)
{
    char c;
    CHECK(read(fd, &c, 1) == 1);
}

static void test_dead_and_live_movers(void)
{
    struct xn_rec r;
    int status, pipefd[2];
    pid_t pid;

    CHECK(pipe(pipefd) == 0);
    /* killed with gfns released: the record and its data survive, the lock does not */
    pid = mover(XN_REC_KIND_BATCH, XN_REC_COPIED, 0, pipefd[1]);
    wait_ready(pipefd[0]);
    CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK(xn_rec_busy(path) == 0);
    /* a new mover may not overwrite what the guest still needs */
    {
        struct xn_rec fresh;
        CHECK(xn_rec_create(&fresh, path, XN_REC_KIND_BATCH, 9, handle, gfns, 3) == -EEXIST);
    }
    CHECK(xn_rec_open_dead(&r, path) == 1);
    CHECK(r.hdr->domid == 9 && xn_rec_state(&r) == XN_REC_COPIED);
    CHECK(xn_rec_action(r.hdr->kind, xn_rec_state(&r)) == XN_RECOVER_RESTORE);
    CHECK(xn_rec_data(&r)[4096] == 0x5a && xn_rec_data(&r)[8191] == 0x5a && xn_rec_data(&r)[0] == 0);
    /* while recovery holds it, it is busy to everybody else */
    CHECK(xn_rec_busy(path) == 1);
    xn_rec_remove(&r);
    CHECK(!exists(path));

    /* a live mover, whatever its pid: recovery is refused until it is dead */
    pid = mover(XN_REC_KIND_PROBE, XN_REC_PAUSED, 1, pipefd[1]);
    wait_ready(pipefd[0]);
    CHECK(xn_rec_busy(path) == 1);
    CHECK(xn_rec_open_dead(&r, path) == -EBUSY);
    kill(pid, SIGKILL);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(xn_rec_busy(path) == 0);
    CHECK(xn_rec_open_dead(&r, path) == 1);
    CHECK(r.hdr->kind == XN_REC_KIND_PROBE && xn_rec_action(r.hdr->kind, xn_rec_state(&r)) == XN_RECOVER_UNPAUSE);
    xn_rec_close(&r); /* kept */
    CHECK(exists(path));
    CHECK(xn_rec_open_dead(&r, path) == 1);
    xn_rec_remove(&r);

    /* killed after its unpause, before removing the record: a new mover takes its place */
    pid = mover(XN_REC_KIND_PROBE, XN_REC_UNPAUSED, 0, pipefd[1]);
    wait_ready(pipefd[0]);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(xn_rec_create(&r, path, XN_REC_KIND_PROBE, 9, handle, NULL, 0) == 0);
    CHECK(xn_rec_state(&r) == XN_REC_OPEN);
    xn_rec_remove(&r);
    close(pipefd[0]);
    close(pipefd[1]);
}

static void test_not_ours(void)
{
    struct xn_rec r;
    FILE *f = fopen(path, "w");

    fputs("not a record, but somebody's file", f);
    fclose(f);
    CHECK(xn_rec_open_dead(&r, path) == -EPROTO);
    CHECK(exists(path)); /* left alone */
    CHECK(xn_rec_create(&r, path, XN_REC_KIND_PROBE, 1, handle, NULL, 0) == -EEXIST);
    unlink(path);
    CHECK(xn_rec_open_dead(&r, path) == 0); /* nothing there */
}

/* No room for the record: an error at creation, never a SIGBUS later. */
static void test_no_room(void)
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        struct rlimit lim = { 8192, 8192 };
        struct xn_rec r;
        int rc;
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &lim);
        rc = xn_rec_create(&r, path, XN_REC_KIND_BATCH, 1, handle, gfns, 3);
        _exit(rc == -EFBIG && !exists(path) ? 0 : 1);
    }
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Two threads of one process (xenopsd calls the binding from several) create a
 * record at the same path at once: at most one wins, and what is published is
 * the winner's own file, locked by it (a shared temporary name once let one
 * thread unlink the other's and publish a file nobody held). */
struct racer {
    pthread_barrier_t *start;
    struct xn_rec r;
    uint32_t domid;
    int rc;
};

static void *race_create(void *arg)
{
    struct racer *me = arg;
    pthread_barrier_wait(me->start);
    me->rc = xn_rec_create(&me->r, path, XN_REC_KIND_BATCH, me->domid, handle, gfns, 3);
    return NULL;
}

static void test_threads_racing_for_one_path(void)
{
    int round, wrong = 0;

    for (round = 0; round < 8000; round++) { /* the race is narrow: before the fix, about one run in two hit it */
        pthread_barrier_t start;
        struct racer a = { &start, { 0 }, 1, 0 }, b = { &start, { 0 }, 2, 0 };
        pthread_t ta, tb;
        struct racer *winner;
        struct xn_rec seen;

        pthread_barrier_init(&start, NULL, 2);
        pthread_create(&ta, NULL, race_create, &a);
        pthread_create(&tb, NULL, race_create, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&start);
        winner = a.rc == 0 ? &a : b.rc == 0 ? &b : NULL;
        if ((a.rc == 0 && b.rc == 0) || !winner) {
            wrong++;
        } else {
            /* the published file is the winner's: busy (its lock), with its domid */
            int fd = open(path, O_RDONLY);
            struct xn_rec_header h;
            wrong += xn_rec_busy(path) != 1 || fd < 0 || read(fd, &h, sizeof(h)) != sizeof(h) ||
                     h.domid != winner->domid;
            if (fd >= 0)
                close(fd);
            xn_rec_remove(&winner->r);
        }
        if (a.rc == 0 && &a != winner)
            xn_rec_remove(&a.r);
        if (b.rc == 0 && &b != winner)
            xn_rec_remove(&b.r);
        if (xn_rec_open_dead(&seen, path) == 1)
            xn_rec_remove(&seen);
        unlink(path);
    }
    CHECK(wrong == 0);
}

/* A mover killed between the two stores of xn_rec_set_max must leave a record
 * that says what it said before or what the call was to say, never the max_set
 * of one with the max_was of the other.  The child makes its header read-only,
 * so the first store of the pair faults; the handler makes that one store
 * (through a second, writable mapping of the file) and the child dies there. */
static uint8_t *alias;                 /* the child's writable mapping of the header */
static const uint8_t *header;          /* its record's own mapping */
static uint64_t storing_was, storing_set; /* what the call it dies in stores */

static void die_after_one_store(int sig, siginfo_t *si, void *ctx)
{
    size_t at = (size_t)((const uint8_t *)si->si_addr - header);

    (void)sig;
    (void)ctx;
    if (at == offsetof(struct xn_rec_header, max_was))
        *(volatile uint64_t *)(alias + at) = storing_was;
    else if (at == offsetof(struct xn_rec_header, max_set))
        *(volatile uint64_t *)(alias + at) = storing_set;
    else
        _exit(6); /* a store this test does not know */
    _exit(0);
}

/* The raise a record says is in force once its mover, with (was0, set0) recorded,
 * died inside xn_rec_set_max(was1, set1) after its first store. */
static void killed_between_stores(uint64_t was0, uint64_t set0, uint64_t was1, uint64_t set1, uint64_t *was,
                                  uint64_t *set)
{
    struct xn_rec r;
    int status;
    pid_t pid = fork();

    if (pid == 0) {
        struct sigaction sa;
        int fd;
        if (xn_rec_create(&r, path, XN_REC_KIND_BATCH, 9, handle, gfns, 3))
            _exit(3);
        xn_rec_set_max(&r, was0, set0);
        fd = open(path, O_RDWR);
        alias = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (alias == MAP_FAILED)
            _exit(4);
        header = (const uint8_t *)r.hdr;
        storing_was = was1;
        storing_set = set1;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = die_after_one_store;
        sa.sa_flags = SA_SIGINFO;
        if (sigaction(SIGSEGV, &sa, NULL) || mprotect(r.hdr, 4096, PROT_READ))
            _exit(5);
        xn_rec_set_max(&r, was1, set1);
        _exit(7); /* it stored nothing */
    }
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    *was = *set = UINT64_MAX;
    CHECK(xn_rec_open_dead(&r, path) == 1);
    CHECK(xn_rec_max(&r, was, set) == 1);
    xn_rec_remove(&r);
}

static void test_killed_between_the_stores_of_a_raise(void)
{
    uint64_t was, set;

    /* cleared once given back: no raise in force (the raised value with a max_was of 0
     * would have recovery set the maximum to 0 were the toolstack's equal to it) */
    killed_between_stores(1000, 1100, 0, 0, &was, &set);
    CHECK(set == 0);
    /* recorded before the raise is made: none yet, or the whole of it */
    killed_between_stores(0, 0, 1000, 1100, &was, &set);
    CHECK(set == 0 || (was == 1000 && set == 1100));
    /* raised again (the toolstack's value stays): either raise, with it */
    killed_between_stores(1000, 1100, 1000, 1200, &was, &set);
    CHECK(was == 1000 && (set == 1100 || set == 1200));
}

int main(void)
{
    strcpy(dir, "/tmp/xn-rec-XXXXXX");
    if (!mkdtemp(dir))
        return 2;
    snprintf(path, sizeof(path), "%s/move-9.batch", dir);
    test_actions();
    test_format();
    test_dead_and_live_movers();
    test_not_ours();
    test_no_room();
    test_threads_racing_for_one_path();
    test_killed_between_the_stores_of_a_raise();
    unlink(path);
    rmdir(dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
