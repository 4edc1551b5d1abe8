/*
 * Host-test shim for memcheck.c (tests/test_memcheck_guest.py), linked with
 * -Wl,--wrap=printf,--wrap=snprintf: from the MEMCHECK_FAULT_AT-th pass line
 * on, formatting memcheck's pass line gives the format itself back, unfilled
 * -- what glibc's printf does when its SIMD search for the '%' misses it
 * because the guest's vector registers came back wrong (seen on Xen under
 * QEMU).  Everything else formats normally.
 *
 * With -Wl,--wrap=mlock too, MEMCHECK_CORRUPT_AT=N flips one byte of the
 * checked memory (which memcheck mlocks) as the N-th pass line is printed:
 * what a page move that lost a page's contents would do, which memcheck must
 * report as CORRUPT.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int __wrap_printf(const char *fmt, ...);
int __wrap_mlock(const void *addr, size_t len);
int __real_mlock(const void *addr, size_t len);

static unsigned char *checked; /* the memory memcheck checks, as it mlocks it */
static size_t checked_len;

int __wrap_mlock(const void *addr, size_t len)
{
    checked = (unsigned char *)addr;
    checked_len = len;
    return __real_mlock(addr, len);
}

/* A pass line is being printed: the N-th flips a byte in the middle of a page. */
static void corrupt_if_asked(const char *fmt)
{
    static unsigned long lines;
    const char *at = getenv("MEMCHECK_CORRUPT_AT");

    if (!checked || !at || !*at || !strstr(fmt, "pass %lu ok"))
        return;
    if (++lines == strtoul(at, NULL, 0))
        checked[checked_len / 2 + 123] ^= 0x5a;
}
int __wrap_snprintf(char *buf, size_t len, const char *fmt, ...);

/* Is this the pass line's format, and has the fault begun? */
static int faulty(const char *fmt)
{
    static unsigned long lines;
    const char *at = getenv("MEMCHECK_FAULT_AT");

    if (!strstr(fmt, "pass %lu ok"))
        return 0;
    return at && *at && ++lines >= strtoul(at, NULL, 0);
}

int __wrap_printf(const char *fmt, ...)
{
    va_list ap;
    int n;

    corrupt_if_asked(fmt);
    if (faulty(fmt))
        return fputs(fmt, stdout) < 0 ? -1 : (int)strlen(fmt);
    va_start(ap, fmt);
    n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int __wrap_snprintf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    corrupt_if_asked(fmt);
    if (faulty(fmt)) {
        size_t n = strlen(fmt);
        if (len) { /* no snprintf here: --wrap would send it back to us */
            memcpy(buf, fmt, n < len ? n : len - 1);
            buf[n < len ? n : len - 1] = '\0';
        }
        return (int)n;
    }
    va_start(ap, fmt);
    n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n;
}
