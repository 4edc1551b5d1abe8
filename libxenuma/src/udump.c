/* udump: see udump.h.  No allocation, no Xen dependency. */
#include "udump.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static const char HEADER[] = "Memory location of each domain:";

/* Skip "(XEN) " and an optional "[timestamp] " at the start of a line. */
static const char *skip_prefix(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (end - p >= 5 && memcmp(p, "(XEN)", 5) == 0)
        p += 5;
    while (p < end && *p == ' ')
        p++;
    if (p < end && *p == '[') {
        const char *q = memchr(p, ']', (size_t)(end - p));
        if (q)
            p = q + 1;
    }
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static bool parse_u64(const char **pp, const char *end, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;

    if (p >= end || *p < '0' || *p > '9')
        return false;
    while (p < end && *p >= '0' && *p <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    *pp = p;
    *out = v;
    return true;
}

static bool starts(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0;
}

/* "Domain N (total: T):" or "dN (total: T):" -> N, T */
static bool parse_domain_line(const char *p, const char *end, uint64_t *domid, uint64_t *total)
{
    if (starts(p, end, "Domain "))
        p += 7;
    else if (p < end && *p == 'd')
        p += 1;
    else
        return false;
    if (!parse_u64(&p, end, domid))
        return false;
    if (!starts(p, end, " (total: "))
        return false;
    p += 9;
    if (!parse_u64(&p, end, total))
        return false;
    return starts(p, end, "):");
}

/* "Node K: P" -> K, P.  Returns 1 on match, 0 if not a Node line, -1 if malformed. */
static int parse_node_line(const char *p, const char *end, uint64_t *node, uint64_t *pages)
{
    if (!starts(p, end, "Node "))
        return 0;
    p += 5;
    if (!parse_u64(&p, end, node) || !starts(p, end, ": "))
        return -1;
    p += 2;
    if (!parse_u64(&p, end, pages))
        return -1;
    while (p < end && (*p == ' ' || *p == '\r'))
        p++;
    return p == end ? 1 : -1;
}

int xn_udump_parse(const char *buf, size_t len, uint32_t domid, unsigned int nr_nodes,
                   uint64_t *pages, uint64_t *total)
{
    const char *end = buf + len, *start = NULL, *p;
    bool in_block = false;
    unsigned int seen = 0;
    uint64_t seen_mask_words[4] = {0, 0, 0, 0};

    if (!buf || !pages || !total || nr_nodes == 0 || nr_nodes > 256)
        return -EINVAL;

    /* Only the last dump counts: it is the one the caller just triggered. */
    for (p = buf; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *q = skip_prefix(p, le);
        if (starts(q, le, HEADER))
            start = nl ? nl + 1 : end;
        p = nl ? nl + 1 : end;
    }
    if (!start)
        return -ENODATA; /* no dump: nothing, or a dump the console ring lost the head of */

    for (unsigned int i = 0; i < nr_nodes; i++)
        pages[i] = 0;

    for (p = start; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *q = skip_prefix(p, le);
        uint64_t a, b;

        if (nl == NULL && in_block)
            break; /* a last line without its newline may be cut short */
        if (parse_domain_line(q, le, &a, &b)) {
            if (in_block)
                return -EAGAIN; /* next domain began before all our nodes */
            if (a == domid) {
                in_block = true;
                *total = b;
            }
        } else if (in_block) {
            int r = parse_node_line(q, le, &a, &b);
            if (r < 0)
                return -EINVAL;
            if (r > 0 && a < nr_nodes) {
                uint64_t bit = 1ULL << (a % 64);
                if (!(seen_mask_words[a / 64] & bit)) {
                    seen_mask_words[a / 64] |= bit;
                    pages[a] = b;
                    if (++seen == nr_nodes)
                        return 0;
                }
            }
        }
        p = nl ? nl + 1 : end;
    }
    return in_block ? -EAGAIN : -ENOENT;
}
