/* libxenuma: see libxenuma.h. */
#define _GNU_SOURCE
#include "libxenuma.h"
#include "udump.h"
#include "pagemove_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xenctrl.h>
#include <xentoollog.h>

/*
 * XenServer's patched libxenctrl adds per-node claims and a per-domain
 * node-page query.  Stock headers do not declare them, so they are looked up
 * at run time in the libxenctrl this process actually loaded: the same
 * binary uses them where they exist and falls back on stock Xen.  The
 * signatures are those of XenServer's patch queue as its xenctrlext stubs
 * call them.
 */
typedef int claim_pages_node_fn(xc_interface *xch, uint32_t domid, unsigned int node, unsigned long nr_pages);
typedef int node_pages_fn(xc_interface *xch, uint32_t domid, unsigned int *nr_nodes, uint64_t *pages);

struct patched_ops {
    claim_pages_node_fn *claim_pages_node;
    node_pages_fn *node_pages;
};

struct xn_handle {
    xc_interface *xch;
    xentoollog_logger_stdiostream *log;
    struct patched_ops patched;
    uint64_t online_nodes; /* the host's online nodes, bit per node; 0 until asked (atomic) */
};

/* The patched calls in the object that provides xc_interface_open (found
 * with dladdr: the real libxenctrl, or whatever stands in for it). */
static struct patched_ops find_patched_ops(void)
{
    struct patched_ops ops = { NULL, NULL };
    Dl_info where;
    void *lib;

    if (!dladdr((void *)&xc_interface_open, &where) || !where.dli_fname)
        return ops;
    lib = dlopen(where.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!lib)
        return ops;
    /* POSIX's blessed way to turn dlsym's void * into a function pointer */
    *(void **)&ops.claim_pages_node = dlsym(lib, "xc_domain_claim_pages_node");
    *(void **)&ops.node_pages = dlsym(lib, "xc_domain_numa_get_node_pages");
    dlclose(lib); /* RTLD_NOLOAD took a reference to an object that stays loaded */
    return ops;
}

unsigned int xn_patched_ops(void)
{
    struct patched_ops ops = find_patched_ops();
    return (ops.claim_pages_node ? XN_PATCHED_CLAIM_NODE : 0) | (ops.node_pages ? XN_PATCHED_NODE_PAGES : 0);
}

xc_interface *xn_xch(xn_handle *h)
{
    return h->xch;
}

static int neg_errno(void)
{
    return errno ? -errno : -EIO;
}

int xn_open(xn_handle **out)
{
    xn_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    /* Keep libxc quiet: errors come back as errno, callers explain them. */
    h->log = xtl_createlogger_stdiostream(stderr, XTL_NUM_LEVELS, 0);
    errno = 0;
    h->xch = xc_interface_open((xentoollog_logger *)h->log, (xentoollog_logger *)h->log, 0);
    if (!h->xch) {
        int rc = neg_errno();
        if (h->log)
            xtl_logger_destroy((xentoollog_logger *)h->log);
        free(h);
        return rc;
    }
    h->patched = find_patched_ops();
    *out = h;
    return 0;
}

void xn_close(xn_handle *h)
{
    if (!h)
        return;
    xc_interface_close(h->xch);
    if (h->log)
        xtl_logger_destroy((xentoollog_logger *)h->log);
    free(h);
}

int xn_physinfo(xn_handle *h, struct xn_physinfo *out)
{
    xc_physinfo_t info;
    int sched = 0;

    memset(&info, 0, sizeof(info));
    if (xc_physinfo(h->xch, &info))
        return neg_errno();
    out->nr_cpus = info.nr_cpus;
    out->max_cpu_id = info.max_cpu_id;
    out->nr_nodes = info.nr_nodes;
    out->max_node_id = info.max_node_id;
    out->threads_per_core = info.threads_per_core;
    out->cores_per_socket = info.cores_per_socket;
    out->total_pages = info.total_pages;
    out->free_pages = info.free_pages;
    out->outstanding_pages = info.outstanding_pages;
    out->sched_id = xc_sched_id(h->xch, &sched) ? 0 : (uint32_t)sched;
    return 0;
}

int xn_numainfo(xn_handle *h, unsigned int *nr_nodes, uint64_t *size, uint64_t *free_bytes,
                uint32_t *distances)
{
    unsigned int max = 0, i;
    xc_meminfo_t *mem;
    uint32_t *dist;
    int rc = 0;

    if (xc_numainfo(h->xch, &max, NULL, NULL))
        return neg_errno();
    if (max > *nr_nodes)
        return -ENOSPC;
    mem = calloc(max, sizeof(*mem));
    dist = calloc((size_t)max * max, sizeof(*dist));
    if (!mem || !dist) {
        rc = -ENOMEM;
        goto out;
    }
    if (xc_numainfo(h->xch, &max, mem, dist)) {
        rc = neg_errno();
        goto out;
    }
    for (i = 0; i < max; i++) {
        size[i] = mem[i].memsize;
        free_bytes[i] = mem[i].memfree;
    }
    memcpy(distances, dist, (size_t)max * max * sizeof(*dist));
    *nr_nodes = max;
out:
    free(mem);
    free(dist);
    return rc;
}

int xn_cputopo(xn_handle *h, unsigned int *nr_cpus, uint32_t *core, uint32_t *socket, uint32_t *node)
{
    unsigned int max = 0, i;
    xc_cputopo_t *topo;

    if (xc_cputopoinfo(h->xch, &max, NULL))
        return neg_errno();
    if (max > *nr_cpus)
        return -ENOSPC;
    topo = calloc(max, sizeof(*topo));
    if (!topo)
        return -ENOMEM;
    if (xc_cputopoinfo(h->xch, &max, topo)) {
        int rc = neg_errno();
        free(topo);
        return rc;
    }
    for (i = 0; i < max; i++) {
        core[i] = topo[i].core;
        socket[i] = topo[i].socket;
        node[i] = topo[i].node;
    }
    *nr_cpus = max;
    free(topo);
    return 0;
}

/* An HVM container with none of the legacy platform devices an HVM guest has
 * emulated: PVH (see XN_DOM_PVH).  Xen allows an HVM domU everything but vPCI,
 * a PVH domU the local APIC alone, a PVH dom0 the local APIC, IOAPIC and vPCI
 * (emulation_flags_ok): the PIT, RTC and PIC are an HVM guest's only. */
static int is_pvh(const xc_domaininfo_t *info)
{
    const uint32_t platform = XEN_X86_EMU_PIT | XEN_X86_EMU_RTC | XEN_X86_EMU_PIC;

    return (info->flags & XEN_DOMINF_hvm_guest) && !(info->arch_config.emulation_flags & platform);
}

int xn_domains(xn_handle *h, uint32_t first_domid, unsigned int max, struct xn_domain *out)
{
    xc_domaininfo_t *info;
    int n, i;

    if (max == 0)
        return 0;
    info = calloc(max, sizeof(*info));
    if (!info)
        return -ENOMEM;
    n = xc_domain_getinfolist(h->xch, first_domid, max, info);
    if (n < 0) {
        n = neg_errno();
        free(info);
        return n;
    }
    for (i = 0; i < n; i++) {
        out[i].domid = info[i].domain;
        out[i].flags = (info[i].flags & 0x1ff) | (is_pvh(&info[i]) ? XN_DOM_PVH : 0);
        out[i].tot_pages = info[i].tot_pages;
        out[i].max_pages = info[i].max_pages;
        out[i].outstanding_pages = info[i].outstanding_pages;
        out[i].nr_online_vcpus = info[i].nr_online_vcpus;
        out[i].max_vcpu_id = info[i].max_vcpu_id;
        out[i].cpupool = info[i].cpupool;
        memcpy(out[i].handle, info[i].handle, sizeof(out[i].handle));
    }
    free(info);
    return n;
}

int xn_vcpu_info(xn_handle *h, uint32_t domid, uint32_t vcpu, struct xn_vcpu *out)
{
    xc_vcpuinfo_t info;

    memset(&info, 0, sizeof(info));
    if (xc_vcpu_getinfo(h->xch, domid, vcpu, &info))
        return neg_errno();
    out->online = info.online;
    out->blocked = info.blocked;
    out->running = info.running;
    out->cpu = info.cpu;
    out->cpu_time_ns = info.cpu_time;
    return 0;
}

int xn_cpumap_bytes(xn_handle *h)
{
    int cpus = xc_get_max_cpus(h->xch);
    return cpus <= 0 ? neg_errno() : (cpus + 7) / 8;
}

int xn_nodemap_bytes(xn_handle *h)
{
    int nodes = xc_get_max_nodes(h->xch);
    return nodes <= 0 ? neg_errno() : (nodes + 7) / 8;
}

int xn_vcpu_get_affinity(xn_handle *h, uint32_t domid, uint32_t vcpu, uint8_t *hard, uint8_t *soft)
{
    if (xc_vcpu_getaffinity(h->xch, domid, (int)vcpu, hard, soft,
                            XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT))
        return neg_errno();
    return 0;
}

int xn_vcpu_set_affinity(xn_handle *h, uint32_t domid, uint32_t vcpu, uint8_t *hard, uint8_t *soft)
{
    uint32_t flags = (hard ? XEN_VCPUAFFINITY_HARD : 0) | (soft ? XEN_VCPUAFFINITY_SOFT : 0);
    int bytes = xn_cpumap_bytes(h);
    uint8_t *scratch = NULL;
    int rc = 0;

    if (flags == 0)
        return 0;
    if (bytes < 0)
        return bytes;
    /* libxc reads both maps whatever the flags: give it a scratch for the unset one. */
    if (!hard || !soft) {
        scratch = calloc(1, (size_t)bytes);
        if (!scratch)
            return -ENOMEM;
    }
    if (xc_vcpu_setaffinity(h->xch, domid, (int)vcpu, hard ? hard : scratch, soft ? soft : scratch, flags))
        rc = neg_errno();
    free(scratch);
    return rc;
}

int xn_node_affinity_get(xn_handle *h, uint32_t domid, uint8_t *nodes)
{
    return xc_domain_node_getaffinity(h->xch, domid, nodes) ? neg_errno() : 0;
}

int xn_node_affinity_set(xn_handle *h, uint32_t domid, uint8_t *nodes)
{
    return xc_domain_node_setaffinity(h->xch, domid, nodes) ? neg_errno() : 0;
}

int xn_pause(xn_handle *h, uint32_t domid)
{
    return xc_domain_pause(h->xch, domid) ? neg_errno() : 0;
}

int xn_unpause(xn_handle *h, uint32_t domid)
{
    return xc_domain_unpause(h->xch, domid) ? neg_errno() : 0;
}

/*
 * The host's online nodes: xc_numainfo's entries whose size is not
 * XEN_INVALID_MEM_SZ (Xen 4.17's sysctl numainfo gives one entry per node id
 * up to the last online one, an offline id in between reporting that size).
 * physinfo's max_node_id cannot say: 4.17 reports MAX_NUMNODES - 1 (63)
 * whatever the host has, and Xen takes any node below 64 in a memory op or a
 * claim, so a move to a node the host lacks would release a whole batch and
 * get nothing back from populate_physmap, without an error.
 * Xen never takes a node offline, so a node once seen online is cached in
 * the handle; a node not in the cache is asked about again (memory hotplug
 * can bring a node online).  Threads share a handle: the mask is one word,
 * written whole, and two threads asking at once store the same answer.
 */
static int node_online(xn_handle *h, uint32_t node)
{
    xc_meminfo_t mem[64]; /* MAX_NUMNODES */
    unsigned int max = 64, i;
    uint64_t seen = 0;

    if (node >= 64)
        return 0;
    if (__atomic_load_n(&h->online_nodes, __ATOMIC_ACQUIRE) & (1ull << node))
        return 1;
    if (xc_numainfo(h->xch, &max, mem, NULL))
        return neg_errno();
    for (i = 0; i < max && i < 64; i++)
        if (mem[i].memsize != XEN_INVALID_MEM_SZ)
            seen |= 1ull << i;
    __atomic_or_fetch(&h->online_nodes, seen, __ATOMIC_RELEASE);
    return (seen >> node) & 1;
}

int xn_node_check(xn_handle *h, uint32_t node)
{
    int online = node_online(h, node);

    return online < 0 ? online : online ? 0 : -EINVAL;
}

int xn_node_free_below(xn_handle *h, uint32_t node, unsigned int max_width, uint64_t *bytes)
{
    int rc = xn_node_check(h, node);

    if (rc)
        return rc;
    if (max_width == 0 || max_width > 64)
        return -EINVAL;  /* 0 would mean every zone to Xen, not none */
    return xc_availheap(h->xch, 0, (int)max_width, (int)node, bytes) ? neg_errno() : 0;
}

int xn_xen_commandline(xn_handle *h, char *buf, size_t len)
{
    xen_commandline_t line;

    if (len < sizeof(line))
        return -ENOSPC;
    memset(line, 0, sizeof(line));
    if (xc_version(h->xch, XENVER_commandline, &line) < 0)
        return neg_errno();
    memcpy(buf, line, sizeof(line));
    buf[sizeof(line) - 1] = '\0';  /* Xen's copy is NUL-terminated by safe_strcpy; a shorter one is kept */
    return 0;
}

int xn_claim(xn_handle *h, uint32_t domid, uint32_t node, uint64_t nr_pages)
{
    if (node != ~0u) {
        int rc = xn_node_check(h, node);

        if (rc)
            return rc;
        if (!h->patched.claim_pages_node)
            return -ENOSYS;
        errno = 0;
        return h->patched.claim_pages_node(h->xch, domid, node, (unsigned long)nr_pages) ? neg_errno() : 0;
    }
    return xc_domain_claim_pages(h->xch, domid, (unsigned long)nr_pages) ? neg_errno() : 0;
}

int xn_node_pages_native(xn_handle *h, uint32_t domid, unsigned int nr_nodes, uint64_t *pages)
{
    unsigned int n = nr_nodes;

    if (!h->patched.node_pages)
        return -ENOSYS;
    errno = 0;
    if (h->patched.node_pages(h->xch, domid, &n, pages)) {
        int rc = neg_errno();
        /* a hypervisor without the hypercall says either (Xen's own code uses both) */
        return rc == -EOPNOTSUPP ? -ENOSYS : rc;
    }
    if (n > nr_nodes)
        return -ENOBUFS; /* its count is the callee's: never more entries than the caller gave */
    return (int)n;
}

static void sleep_ms(unsigned int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Read what follows *index into buf, up to cap bytes, stopping at the first
 * short read (caught up).  *got says how much was appended, also on error;
 * -ENOSPC means buf filled before the reader caught up. */
static int ring_read_from(xn_handle *h, uint32_t *index, char *buf, size_t cap, size_t *got)
{
    *got = 0;
    for (;;) {
        unsigned int chunk = (unsigned int)((cap - *got) > 16384 ? 16384 : (cap - *got));
        unsigned int nr = chunk;
        if (chunk == 0)
            return -ENOSPC;
        if (xc_readconsolering(h->xch, buf + *got, &nr, 0, 1, index))
            return neg_errno();
        *got += nr;
        if (nr < chunk)
            return 0;
    }
}

/* Skipping to the end of the ring reads all of it (an index of 0 is its oldest
 * byte), however big conring_size made it: bounded by time, not bytes, as a
 * hypervisor that prints without pause (a guest stuck in a loop that logs)
 * keeps it growing faster than it is read; then it starts from wherever it got. */
#define RING_SKIP_MS 2000u

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int xn_udump_capture(xn_handle *h, char *buf, size_t *len, unsigned int timeout_ms)
{
    uint32_t index = 0;
    size_t used = 0, got;
    unsigned int waited = 0;
    uint64_t skip_until = monotonic_ms() + RING_SKIP_MS;
    char *scratch;
    int rc;

    if (*len < 64)
        return -EINVAL;
    /* Move the index to the current end of the ring: only output that
     * appears after this point belongs to our dump. */
    scratch = malloc(16384);
    if (!scratch)
        return -ENOMEM;
    do {
        rc = ring_read_from(h, &index, scratch, 16384, &got);
    } while (rc == -ENOSPC && monotonic_ms() < skip_until);
    free(scratch);
    if (rc < 0 && rc != -ENOSPC)
        return rc;
    if (xc_send_debug_keys(h->xch, "u"))
        return neg_errno();
    /* The dump may be produced asynchronously: read until it stops growing,
     * or until the buffer is full once it holds the dump's start. */
    for (;;) {
        rc = ring_read_from(h, &index, buf + used, *len - used - 1, &got);
        used += got;
        if (rc < 0 && rc != -ENOSPC)
            return rc;
        if (used > 0 && memmem(buf, used, "Memory location of each domain:", 31) && (got == 0 || rc == -ENOSPC))
            break;
        if (rc == -ENOSPC || waited >= timeout_ms)
            break;
        sleep_ms(20);
        waited += 20;
    }
    buf[used] = '\0';
    *len = used;
    return used ? 0 : -EAGAIN;
}

void xn_features(xn_handle *h, struct xn_features *out)
{
    /* Room for every node Xen supports (MAX_NUMNODES is 64), so the probe needs
     * no topology query; a margin too, as the patched call's source is not public. */
    uint64_t probe[64];
    /* The call exists in the library; a hypervisor without the hypercall
     * answers ENOSYS, and the fallback is used then too. */
    int answered = h->patched.node_pages &&
                   xn_node_pages_native(h, 0, sizeof(probe) / sizeof(probe[0]), probe) != -ENOSYS;

    out->node_pages = answered ? XN_NATIVE : XN_FALLBACK;
    out->node_claims = h->patched.claim_pages_node ? XN_NATIVE : XN_UNAVAILABLE;
    out->claims = XN_NATIVE;
}

/* --- vNUMA ------------------------------------------------------------------------------ */

/*
 * Xen 4.17's own limits (xen/common/domctl.c, vnuma_alloc): each of its
 * copies must fit a page (XSA-77), so nr_vnodes^2 distances of 4 bytes --
 * at most 32 vnodes -- and PAGE_SIZE / sizeof(xen_vmemrange_t) ranges.
 */
#define XN_VNUMA_MAX_VNODES 32u
#define XN_VNUMA_MAX_RANGES (4096u / (unsigned)sizeof(xen_vmemrange_t)) /* 170 */

/* Whatever Xen would refuse (too many vnodes or ranges), or take but a guest
 * could not use (a vnode with no memory or no vCPU, ranges out of order), is
 * refused here, before any hypercall. */
int xn_vnuma_check(uint32_t nr_vnodes, uint32_t nr_ranges, const struct xn_vmemrange *ranges,
                   uint32_t nr_vcpus, const uint32_t *vdistance, const uint32_t *vcpu_to_vnode)
{
    uint64_t seen_memory = 0, seen_vcpu = 0;
    uint32_t i;

    if (nr_vnodes == 0 || nr_vnodes > XN_VNUMA_MAX_VNODES || nr_ranges == 0 || nr_ranges > XN_VNUMA_MAX_RANGES ||
        nr_vcpus < nr_vnodes || !ranges || !vdistance || !vcpu_to_vnode)
        return -EINVAL;
    for (i = 0; i < nr_ranges; i++) {
        const struct xn_vmemrange *r = &ranges[i];

        if (r->vnode >= nr_vnodes || r->end <= r->start || (r->start | r->end) & 0xfff)
            return -EINVAL;
        if (i > 0 && r->start < ranges[i - 1].end)
            return -EINVAL;
        seen_memory |= 1ull << r->vnode;
    }
    for (i = 0; i < nr_vcpus; i++) {
        if (vcpu_to_vnode[i] >= nr_vnodes)
            return -EINVAL;
        seen_vcpu |= 1ull << vcpu_to_vnode[i];
    }
    if (seen_memory != (1ull << nr_vnodes) - 1 || seen_vcpu != (1ull << nr_vnodes) - 1)
        return -EINVAL; /* nr_vnodes <= 32: the shift is defined */
    for (i = 0; i < nr_vnodes * nr_vnodes; i++)
        if (vdistance[i] == 0)
            return -EINVAL;
    return 0;
}

int xn_domain_setvnuma(xn_handle *h, uint32_t domid, uint32_t nr_vnodes, uint32_t nr_ranges,
                       const struct xn_vmemrange *ranges, uint32_t nr_vcpus, const uint32_t *vdistance,
                       const uint32_t *vcpu_to_vnode, const uint32_t *vnode_to_pnode)
{
    xen_vmemrange_t *vmem;
    unsigned int *dist, *v2n, *n2p;
    xc_domaininfo_t info;
    uint32_t i;
    int rc = xn_vnuma_check(nr_vnodes, nr_ranges, ranges, nr_vcpus, vdistance, vcpu_to_vnode);

    if (rc)
        return rc;
    if (!vnode_to_pnode)
        return -EINVAL;
    /* Xen takes any pnode below MAX_NUMNODES, one the host lacks included (its
     * memory would then come from anywhere): only the host's online nodes. */
    for (i = 0; i < nr_vnodes; i++)
        if ((rc = xn_node_check(h, vnode_to_pnode[i])))
            return rc;
    /* Xen wants one entry per vCPU the domain can have (d->max_vcpus): getdomaininfo's
     * max_vcpu_id is the last one's id. */
    if ((rc = xn_domain_info(h->xch, domid, &info)))
        return rc;
    if (nr_vcpus != info.max_vcpu_id + 1)
        return -EINVAL;
    /* libxc takes non-const unsigned int arrays and Xen's own range struct: copy */
    vmem = calloc(nr_ranges, sizeof(*vmem));
    dist = calloc((size_t)nr_vnodes * nr_vnodes, sizeof(*dist));
    v2n = calloc(nr_vcpus, sizeof(*v2n));
    n2p = calloc(nr_vnodes, sizeof(*n2p));
    if (!vmem || !dist || !v2n || !n2p) {
        rc = -ENOMEM;
        goto out;
    }
    for (i = 0; i < nr_ranges; i++) {
        vmem[i].start = ranges[i].start;
        vmem[i].end = ranges[i].end;
        vmem[i].nid = ranges[i].vnode;
    }
    for (i = 0; i < nr_vnodes * nr_vnodes; i++)
        dist[i] = vdistance[i];
    for (i = 0; i < nr_vcpus; i++)
        v2n[i] = vcpu_to_vnode[i];
    for (i = 0; i < nr_vnodes; i++)
        n2p[i] = vnode_to_pnode[i];
    rc = xc_domain_setvnuma(h->xch, domid, nr_vnodes, nr_ranges, nr_vcpus, vmem, dist, v2n, n2p)
             ? neg_errno() : 0;
out:
    free(vmem);
    free(dist);
    free(v2n);
    free(n2p);
    return rc;
}

int xn_domain_getvnuma(xn_handle *h, uint32_t domid, uint32_t *nr_vnodes, uint32_t *nr_ranges, uint32_t *nr_vcpus,
                       struct xn_vmemrange *ranges, uint32_t *vdistance, uint32_t *vcpu_to_vnode)
{
    uint32_t vnodes, nranges, vcpus, i;
    xen_vmemrange_t *vmem = NULL;
    unsigned int *dist = NULL, *v2n = NULL;
    int rc;

    if (!nr_vnodes || !nr_ranges || !nr_vcpus || *nr_vnodes > 64 || *nr_ranges > 4096 || *nr_vcpus > 65536)
        return -EINVAL;
    vnodes = *nr_vnodes;
    nranges = *nr_ranges;
    vcpus = *nr_vcpus;
    if ((nranges && !ranges) || (vnodes && !vdistance) || (vcpus && !vcpu_to_vnode))
        return -EINVAL;
    /* libxc takes Xen's own range struct and unsigned int arrays: bounce through copies */
    if ((nranges && !(vmem = calloc(nranges, sizeof(*vmem)))) ||
        (vnodes && !(dist = calloc((size_t)vnodes * vnodes, sizeof(*dist)))) ||
        (vcpus && !(v2n = calloc(vcpus, sizeof(*v2n))))) {
        rc = -ENOMEM;
        goto out;
    }
    errno = 0;
    rc = xc_domain_getvnuma(h->xch, domid, &vnodes, &nranges, &vcpus, vmem, dist, v2n) ? neg_errno() : 0;
    if (rc == 0 && (vnodes > *nr_vnodes || nranges > *nr_ranges || vcpus > *nr_vcpus))
        rc = -ENOBUFS; /* never trust a count above the room we gave */
    if (rc == 0) {
        for (i = 0; i < nranges; i++) {
            ranges[i].start = vmem[i].start;
            ranges[i].end = vmem[i].end;
            ranges[i].vnode = vmem[i].nid;
        }
        for (i = 0; i < vnodes * vnodes; i++)
            vdistance[i] = dist[i];
        for (i = 0; i < vcpus; i++)
            vcpu_to_vnode[i] = v2n[i];
    }
    if (rc == 0 || rc == -ENOBUFS) {
        *nr_vnodes = vnodes;
        *nr_ranges = nranges;
        *nr_vcpus = vcpus;
    }
out:
    free(vmem);
    free(dist);
    free(v2n);
    return rc;
}

int xn_cpupool_free_cpus(xn_handle *h, uint8_t *cpumap)
{
    xc_cpumap_t map;
    int bytes = xn_cpumap_bytes(h);

    if (bytes < 0)
        return bytes;
    errno = 0;
    map = xc_cpupool_freeinfo(h->xch);
    if (!map)
        return errno ? neg_errno() : -EIO;
    memcpy(cpumap, map, (size_t)bytes);
    free(map);
    return 0;
}

int xn_cpupool_next(xn_handle *h, uint32_t first_pool, uint32_t *pool_id, uint8_t *cpumap)
{
    xc_cpupoolinfo_t *info;
    int bytes = xn_cpumap_bytes(h);

    if (bytes < 0)
        return bytes;
    errno = 0;
    info = xc_cpupool_getinfo(h->xch, first_pool);
    if (!info)
        return errno && errno != ENOENT ? neg_errno() : -ENOENT;
    *pool_id = info->cpupool_id;
    memcpy(cpumap, info->cpumap, (size_t)bytes);
    xc_cpupool_infofree(h->xch, info);
    return 0;
}
