/*
 * Helpers the page-move files share (scan, move, recovery): the clock, one
 * domain's record, holding signals off for a pause window, sleeping.
 * Declared in pagemove_internal.h; hidden from the library's users.
 */
#define _GNU_SOURCE
#include "pagemove_internal.h"

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
