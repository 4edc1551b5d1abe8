/*
 * Helpers the page-move files share (scan, move, recovery): the clock, one
 * domain's record, holding signals off for a pause window, sleeping, typing
 * gfns, raising a domain's maximum, giving back a recorded pause.
 * Declared in pagemove_internal.h; hidden from the library's users.
 */
#define _GNU_SOURCE
#include "pagemove_internal.h"
#include "batchrecord.h"
#include "pagelayout.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

#include <xenctrl.h>

uint64_t xn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int xn_domain_info(xc_interface *xch, uint32_t domid, xc_domaininfo_t *info)
{
    int n = xc_domain_getinfolist(xch, domid, 1, info);
    if (n < 0)
        return xn_errno_rc();
    if (n != 1 || info->domain != domid)
        return -ESRCH;
    return 0;
}

/*
 * Hold off every asynchronous signal for a pause window.  Faults stay
 * deliverable: a blocked synchronous SIGSEGV or SIGBUS still kills the
 * process, but past any handler the caller installed (Python's faulthandler)
 * that would say where (the batch record covers the death).
 */
void xn_hold_signals(sigset_t *old)
{
    sigset_t set;

    sigfillset(&set);
    sigdelset(&set, SIGSEGV);
    sigdelset(&set, SIGBUS);
    sigdelset(&set, SIGFPE);
    sigdelset(&set, SIGILL);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

void xn_sleep_ms(unsigned int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

int xn_type_gfns(xc_interface *xch, uint32_t domid, const uint64_t *gfns, uint32_t n, xen_pfn_t *types)
{
    uint32_t i, first;

    for (i = 0; i < n; i++)
        types[i] = gfns[i];
    for (first = 0; first < n; first += XN_TYPE_BATCH) {
        uint32_t len = n - first < XN_TYPE_BATCH ? n - first : XN_TYPE_BATCH;
        if (xc_get_pfn_type_batch(xch, domid, len, types + first))
            return xn_errno_rc();
    }
    return 0;
}

int xn_raise_max(xc_interface *xch, uint32_t domid, uint64_t pages, struct xn_max *max, struct xn_rec *rec)
{
    xc_domaininfo_t info;
    uint64_t short_by, was;
    int rc = xn_domain_info(xch, domid, &info);

    if (rc)
        return rc;
    if (info.tot_pages + pages <= info.max_pages)
        return 0; /* there was room: what failed was not the maximum */
    short_by = info.tot_pages + pages - info.max_pages;
    was = max->raised ? max->was : info.max_pages;
    /* recorded first: killed after the hypercall, recovery finds the value to give back
     * (killed before it, the maximum is not the one recorded, and recovery leaves it) */
    xn_rec_set_max(rec, was, info.max_pages + short_by);
    if (xc_domain_setmaxmem(xch, domid, ((info.max_pages + short_by) * XN_PAGE_SIZE) >> 10)) {
        rc = xn_errno_rc();
        xn_rec_set_max(rec, max->was, max->raised); /* the raise in force before, if any */
        return rc;
    }
    max->was = was;
    max->raised = info.max_pages + short_by;
    return short_by > INT32_MAX ? INT32_MAX : (int)short_by;
}

int xn_give_back_max(xc_interface *xch, uint32_t domid, struct xn_max *max, struct xn_rec *rec)
{
    xc_domaininfo_t info;
    int rc;

    if (!max->raised)
        return 0;
    rc = xn_domain_info(xch, domid, &info);
    /* the toolstack set another meanwhile (squeezed rebalancing): that one stands */
    if (rc == 0 && info.max_pages == max->raised &&
        xc_domain_setmaxmem(xch, domid, (max->was * XN_PAGE_SIZE) >> 10))
        rc = xn_errno_rc();
    /* (killed before this, recovery sets the same value again, or finds another and leaves it) */
    if (rc == 0 || rc == -ESRCH)
        xn_rec_set_max(rec, 0, 0);
    max->raised = 0;
    return rc;
}

int xn_give_back_pause(xc_interface *xch, uint32_t domid, struct xn_rec *rec, uint32_t held)
{
    int attempt, rc = -EIO;

    xn_rec_set_state(rec, XN_REC_UNPAUSING);
    for (attempt = 0; attempt < 3 && rc && rc != -EINVAL && rc != -ESRCH; attempt++)
        rc = xc_domain_unpause(xch, domid) ? xn_errno_rc() : 0;
    if (rc == 0 || rc == -EINVAL || rc == -ESRCH) {
        xn_rec_set_state(rec, XN_REC_UNPAUSED);
        return rc == 0 ? 1 : rc == -EINVAL ? 0 : rc; /* -EINVAL: not paused (any more) */
    }
    /* it did not happen (libxc failed before the hypercall, or Xen refused it):
     * the record says so again, and recovery gives the pause back */
    xn_rec_set_state(rec, held);
    return rc;
}

int xn_record_run_clock(xc_interface *xch, uint32_t domid, struct xn_rec *rec)
{
    xc_domaininfo_t info;
    int rc = xn_domain_info(xch, domid, &info);

    if (rc == 0)
        xn_rec_set_run_clock(rec, info.cpu_time);
    return rc;
}
