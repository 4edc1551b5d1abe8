/*
 * udump: parse Xen's debug-key 'u' dump ("Memory location of each domain")
 * out of console-ring text.  Pure C, no Xen headers: unit-tested on its own.
 */
#ifndef XENUMA_UDUMP_H
#define XENUMA_UDUMP_H

#include <stddef.h>
#include <stdint.h>

/*
 * Find the last "Memory location of each domain:" header in buf[0..len) and,
 * after it, the block of domain `domid`:
 *     (XEN) Domain 1 (total: 65536):      (or "d1 (total: ...)")
 *     (XEN)     Node 0: 0
 *     (XEN)     Node 1: 65536
 * Other console lines may be interleaved anywhere and are skipped.  The block
 * is complete once `nr_nodes` Node lines (ids 0..nr_nodes-1) have been read.
 *
 * Returns 0 and fills pages[0..nr_nodes) and *total;
 *   -ENODATA no dump header (a dump larger than Xen's console ring loses its
 *            head, the header and the first domains, before it can be read);
 *   -ENOENT  the domain is not in the dump;
 *   -EAGAIN  the dump is truncated (the block ends before all nodes);
 *   -EINVAL  bad arguments or a malformed Node line.
 */
int xn_udump_parse(const char *buf, size_t len, uint32_t domid, unsigned int nr_nodes,
                   uint64_t *pages, uint64_t *total);

#endif
