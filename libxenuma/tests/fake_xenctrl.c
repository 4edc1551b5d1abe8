/*
 * A stand-in libxenctrl.so.4.17 for tests without Xen: every xc_* call
 * libxenuma makes, over a tiny fixed host (2 nodes x 2 CPUs, dom0 and one
 * HVM guest, domid 1, with 2 vCPUs).  Built with -DFAKE_XC_PATCHED it also
 * exports XenServer's patched calls, so one libxenuma binary can be run
 * against "stock" and "patched" libraries (LD_LIBRARY_PATH) and must pick
 * the right path at run time.
 *
 * Failures on demand: FAKE_XC_FAIL="xc_numainfo=ENOSYS,xc_domain_pause=EPERM"
 * makes those calls fail with that errno (names or numbers), read at every
 * call so a test can change it between calls.
 *
 * Also exported for tests: how many interfaces are open, the last per-node
 * claim the patched call received, how many times each patched call ran.
 * Test-only code: global state is the point of a fake.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <xenctrl.h>

#define NODES 2
#define CPUS 4
#define PAGES_PER_NODE 262144ull

struct xc_interface_core {
    int magic;
};

int fake_xc_open_handles;
unsigned long fake_xc_patched_calls;
unsigned long fake_xc_last_claim_domid = ~0ul, fake_xc_last_claim_node = ~0ul;
unsigned long fake_xc_last_claim_pages;

static uint8_t hard[2][1] = { { 0xf }, { 0xf } }, soft[2][1] = { { 0xf }, { 0xf } };
static uint8_t node_affinity[1] = { 0x3 };
static int pause_count[2];

/* Bytes the C heap has handed out and not taken back (leak checks). */
long fake_xc_heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (long)mi.uordblks;
}

static int errno_named(const char *name, size_t len)
{
    static const struct { const char *name; int value; } known[] = {
        { "ENOSYS", ENOSYS }, { "EPERM", EPERM }, { "ENOMEM", ENOMEM }, { "EACCES", EACCES },
        { "ESRCH", ESRCH }, { "EINVAL", EINVAL }, { "EOPNOTSUPP", EOPNOTSUPP }, { "EBUSY", EBUSY },
        { "EAGAIN", EAGAIN },
    };
    size_t i;
    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i].name) == len && strncmp(known[i].name, name, len) == 0)
            return known[i].value;
    return atoi(name);
}

/* Should `fn` fail now?  Sets errno and returns 1 if FAKE_XC_FAIL says so. */
static int failing(const char *fn)
{
    const char *spec = getenv("FAKE_XC_FAIL"), *p;
    size_t len = strlen(fn);

    for (p = spec; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (strncmp(p, fn, len) == 0 && p[len] == '=') {
            const char *value = p + len + 1, *end = strchr(value, ',');
            errno = errno_named(value, end ? (size_t)(end - value) : strlen(value));
            return 1;
        }
    }
    return 0;
}

#define FAIL_IF_ASKED() do { if (failing(__func__)) return -1; } while (0)

xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger,
                                unsigned open_flags)
{
    xc_interface *xch;
    (void)logger; (void)dombuild_logger; (void)open_flags;
    if (failing(__func__))
        return NULL;
    xch = calloc(1, sizeof(*xch));
    if (xch)
        fake_xc_open_handles++;
    return xch;
}

int xc_interface_close(xc_interface *xch)
{
    if (xch)
        fake_xc_open_handles--;
    free(xch);
    return 0;
}

struct xenforeignmemory_handle *xc_interface_fmem_handle(xc_interface *xch)
{
    (void)xch;
    return NULL;
}

int xc_physinfo(xc_interface *xch, xc_physinfo_t *info)
{
    (void)xch;
    FAIL_IF_ASKED();
    memset(info, 0, sizeof(*info));
    info->nr_cpus = CPUS;
    info->max_cpu_id = CPUS - 1;
    info->nr_nodes = NODES;
    info->max_node_id = NODES - 1;
    info->threads_per_core = 1;
    info->cores_per_socket = 2;
    info->total_pages = NODES * PAGES_PER_NODE;
    info->free_pages = PAGES_PER_NODE;
    return 0;
}

int xc_sched_id(xc_interface *xch, int *sched_id)
{
    (void)xch;
    FAIL_IF_ASKED();
    *sched_id = XEN_SCHEDULER_CREDIT2;
    return 0;
}

int xc_numainfo(xc_interface *xch, unsigned *max_nodes, xc_meminfo_t *meminfo, uint32_t *distance)
{
    unsigned i, j;
    (void)xch;
    FAIL_IF_ASKED();
    *max_nodes = NODES;
    for (i = 0; meminfo && i < NODES; i++) {
        meminfo[i].memsize = PAGES_PER_NODE << 12;
        meminfo[i].memfree = (PAGES_PER_NODE / (i + 2)) << 12;
    }
    for (i = 0; distance && i < NODES; i++)
        for (j = 0; j < NODES; j++)
            distance[i * NODES + j] = i == j ? 10 : 20;
    return 0;
}

int xc_cputopoinfo(xc_interface *xch, unsigned *max_cpus, xc_cputopo_t *cputopo)
{
    unsigned i;
    (void)xch;
    FAIL_IF_ASKED();
    *max_cpus = CPUS;
    for (i = 0; cputopo && i < CPUS; i++) {
        cputopo[i].core = i % 2;
        cputopo[i].socket = i / 2;
        cputopo[i].node = i / 2;
    }
    return 0;
}

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain, unsigned int max_domains,
                          xc_domaininfo_t *info)
{
    unsigned int n = 0;
    uint32_t d;
    (void)xch;
    FAIL_IF_ASKED();
    for (d = first_domain; d < 2 && n < max_domains; d++, n++) {
        memset(&info[n], 0, sizeof(info[n]));
        info[n].domain = d;
        info[n].flags = (d == 1 ? XEN_DOMINF_hvm_guest | XEN_DOMINF_hap : 0) |
                        (pause_count[d] ? XEN_DOMINF_paused : XEN_DOMINF_running);
        info[n].tot_pages = d == 0 ? 65536 : 32768;
        info[n].max_pages = info[n].tot_pages;
        info[n].nr_online_vcpus = 2;
        info[n].max_vcpu_id = 1;
        info[n].handle[15] = (uint8_t)d;
    }
    return (int)n;
}

static int bad_domain(uint32_t domid)
{
    if (domid < 2)
        return 0;
    errno = ESRCH;
    return 1;
}

int xc_vcpu_getinfo(xc_interface *xch, uint32_t domid, uint32_t vcpu, xc_vcpuinfo_t *info)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid) || vcpu > 1) {
        errno = vcpu > 1 ? EINVAL : ESRCH;
        return -1;
    }
    memset(info, 0, sizeof(*info));
    info->online = 1;
    info->running = vcpu == 0;
    info->blocked = vcpu != 0;
    info->cpu = domid * 2 + vcpu;
    info->cpu_time = 1500000000ull * (vcpu + 1); /* 1.5 s, 3 s */
    return 0;
}

int xc_get_max_cpus(xc_interface *xch)
{
    (void)xch;
    FAIL_IF_ASKED();
    return CPUS;
}

int xc_get_max_nodes(xc_interface *xch)
{
    (void)xch;
    FAIL_IF_ASKED();
    return NODES;
}

int xc_vcpu_getaffinity(xc_interface *xch, uint32_t domid, int vcpu, xc_cpumap_t cpumap_hard,
                        xc_cpumap_t cpumap_soft, uint32_t flags)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    if ((flags & XEN_VCPUAFFINITY_HARD) && cpumap_hard)
        cpumap_hard[0] = hard[vcpu & 1][0];
    if ((flags & XEN_VCPUAFFINITY_SOFT) && cpumap_soft)
        cpumap_soft[0] = soft[vcpu & 1][0];
    return 0;
}

int xc_vcpu_setaffinity(xc_interface *xch, uint32_t domid, int vcpu, xc_cpumap_t cpumap_hard_inout,
                        xc_cpumap_t cpumap_soft_inout, uint32_t flags)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    if (flags & XEN_VCPUAFFINITY_HARD)
        hard[vcpu & 1][0] = cpumap_hard_inout[0] & 0xf;
    if (flags & XEN_VCPUAFFINITY_SOFT)
        soft[vcpu & 1][0] = cpumap_soft_inout[0] & 0xf;
    return 0;
}

int xc_domain_node_getaffinity(xc_interface *xch, uint32_t domind, xc_nodemap_t nodemap)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domind))
        return -1;
    nodemap[0] = node_affinity[0];
    return 0;
}

int xc_domain_node_setaffinity(xc_interface *xch, uint32_t domind, xc_nodemap_t nodemap)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domind))
        return -1;
    node_affinity[0] = nodemap[0] & 0x3;
    return 0;
}

int xc_domain_pause(xc_interface *xch, uint32_t domid)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    pause_count[domid]++;
    return 0;
}

int xc_domain_unpause(xc_interface *xch, uint32_t domid)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    if (pause_count[domid] == 0) {
        errno = EINVAL; /* as Xen: the controller's pause count cannot go negative */
        return -1;
    }
    pause_count[domid]--;
    return 0;
}

int xc_domain_claim_pages(xc_interface *xch, uint32_t domid, unsigned long nr_pages)
{
    (void)xch; (void)nr_pages;
    FAIL_IF_ASKED();
    return bad_domain(domid) ? -1 : 0;
}

/*
 * The console ring: empty unless debug key 'u' was sent, whose dump the next
 * read returns.  FAKE_XC_CONSOLE=flood makes the hypervisor print without end
 * (every read comes back full), as a guest or driver stuck in a loop that logs
 * would: a reader that waits to catch up never does.
 */
static const char udump_text[] =
    "(XEN) 'u' pressed -> dumping numa info (now = 1234)\n"
    "(XEN) Memory location of each domain:\n"
    "(XEN) Domain 0 (total: 262144):\n"
    "(XEN)     Node 0: 131072\n"
    "(XEN)     Node 1: 131072\n"
    "(XEN) Domain 1 (total: 3002):\n"
    "(XEN)     Node 0: 1001\n"
    "(XEN)     Node 1: 2001\n";
static const char chatter[] = "(XEN) d1v0 fake chatter\n";
static int udump_pending;
static uint32_t console_produced;

int xc_readconsolering(xc_interface *xch, char *buffer, unsigned int *pnr_chars, int clear, int incremental,
                       uint32_t *pindex)
{
    const char *mode = getenv("FAKE_XC_CONSOLE");
    unsigned int n = 0, want = *pnr_chars;

    (void)xch; (void)clear; (void)incremental;
    FAIL_IF_ASKED();
    if (udump_pending && want >= sizeof(udump_text) - 1) {
        memcpy(buffer, udump_text, sizeof(udump_text) - 1);
        n = sizeof(udump_text) - 1;
        udump_pending = 0;
    }
    if (mode && strcmp(mode, "flood") == 0)
        for (; n < want; n++)
            buffer[n] = chatter[(console_produced + n) % (sizeof(chatter) - 1)];
    console_produced += n;
    *pindex = console_produced;
    *pnr_chars = n;
    return 0;
}

int xc_send_debug_keys(xc_interface *xch, const char *keys)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (strchr(keys, 'u'))
        udump_pending = 1;
    return 0;
}

int xc_get_pfn_type_batch(xc_interface *xch, uint32_t dom, unsigned int num, xen_pfn_t *arr);
int xc_get_pfn_type_batch(xc_interface *xch, uint32_t dom, unsigned int num, xen_pfn_t *arr)
{
    (void)xch; (void)num; (void)arr;
    FAIL_IF_ASKED();
    return bad_domain(dom) ? -1 : 0;
}

int xc_domain_maximum_gpfn(xc_interface *xch, uint32_t domid, xen_pfn_t *gpfns)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    *gpfns = 32767;
    return 0;
}

int xc_hvm_param_get(xc_interface *handle, uint32_t dom, uint32_t param, uint64_t *value)
{
    (void)handle; (void)dom; (void)param;
    FAIL_IF_ASKED();
    *value = 0;
    return 0;
}

int xc_gnttab_get_version(xc_interface *xch, uint32_t domid)
{
    (void)xch; (void)domid;
    FAIL_IF_ASKED();
    return 0;
}

int xc_gnttab_op(xc_interface *xch, int cmd, void *op, int op_size, int count)
{
    (void)xch; (void)cmd; (void)op; (void)op_size; (void)count;
    errno = ENOSYS;
    return -1;
}

int xc_domain_decrease_reservation(xc_interface *xch, uint32_t domid, unsigned long nr_extents,
                                   unsigned int extent_order, xen_pfn_t *extent_start)
{
    (void)xch; (void)domid; (void)nr_extents; (void)extent_order; (void)extent_start;
    errno = ENOSYS;
    return -1;
}

int xc_domain_populate_physmap(xc_interface *xch, uint32_t domid, unsigned long nr_extents,
                               unsigned int extent_order, unsigned int mem_flags, xen_pfn_t *extent_start)
{
    (void)xch; (void)domid; (void)nr_extents; (void)extent_order; (void)mem_flags; (void)extent_start;
    errno = ENOSYS;
    return -1;
}

int xc_domain_setmaxmem(xc_interface *xch, uint32_t domid, uint64_t max_memkb)
{
    (void)xch; (void)domid; (void)max_memkb;
    errno = ENOSYS;
    return -1;
}

#ifdef FAKE_XC_PATCHED
/* XenServer's patch queue (tools-xc_domain_claim_pages_node.patch,
 * tools-xc_domain_numa_get_node_pages.patch), as libxenuma calls them. */
int xc_domain_claim_pages_node(xc_interface *xch, uint32_t domid, unsigned int node, unsigned long nr_pages);
int xc_domain_claim_pages_node(xc_interface *xch, uint32_t domid, unsigned int node, unsigned long nr_pages)
{
    (void)xch;
    fake_xc_patched_calls++;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    if (node >= NODES) {
        errno = EINVAL;
        return -1;
    }
    fake_xc_last_claim_domid = domid;
    fake_xc_last_claim_node = node;
    fake_xc_last_claim_pages = nr_pages;
    return 0;
}

int xc_domain_numa_get_node_pages(xc_interface *xch, uint32_t domid, unsigned int *nr_nodes, uint64_t *pages);
int xc_domain_numa_get_node_pages(xc_interface *xch, uint32_t domid, unsigned int *nr_nodes, uint64_t *pages)
{
    unsigned int i;
    (void)xch;
    fake_xc_patched_calls++;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    for (i = 0; i < *nr_nodes && i < NODES; i++)
        pages[i] = 1000ull * (i + 1) + domid; /* recognisable: node 0 -> 1000+domid, node 1 -> 2000+domid */
    *nr_nodes = i;
    return 0;
}
#endif

/* vNUMA (xn_domain_setvnuma, xn_domain_getvnuma): the domctl's own checks, the
 * layout kept as Xen keeps it and given back by XENMEM_get_vnumainfo's protocol. */
#define FAKE_VNUMA_RANGES 8
unsigned int fake_xc_vnuma_nodes, fake_xc_vnuma_pnode[NODES];
static unsigned int vnuma_ranges, vnuma_dist[NODES * NODES], vnuma_v2n[2];
static xen_vmemrange_t vnuma_mem[FAKE_VNUMA_RANGES];

int xc_domain_setvnuma(xc_interface *xch, uint32_t domid, uint32_t nr_vnodes, uint32_t nr_regions,
                       uint32_t nr_vcpus, xen_vmemrange_t *vmemrange, unsigned int *vdistance,
                       unsigned int *vcpu_to_vnode, unsigned int *vnode_to_pnode)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    if (nr_vnodes == 0 || nr_vnodes > NODES || nr_regions == 0 || nr_regions > FAKE_VNUMA_RANGES || nr_vcpus != 2) {
        errno = EINVAL;
        return -1;
    }
    fake_xc_vnuma_nodes = nr_vnodes; /* replaces any earlier layout, as Xen does */
    vnuma_ranges = nr_regions;
    for (uint32_t i = 0; i < nr_vnodes; i++)
        fake_xc_vnuma_pnode[i] = vnode_to_pnode[i];
    for (uint32_t i = 0; i < nr_vnodes * nr_vnodes; i++)
        vnuma_dist[i] = vdistance[i];
    for (uint32_t i = 0; i < nr_regions; i++)
        vnuma_mem[i] = vmemrange[i];
    for (uint32_t i = 0; i < nr_vcpus; i++)
        vnuma_v2n[i] = vcpu_to_vnode[i];
    return 0;
}

int xc_domain_getvnuma(xc_interface *xch, uint32_t domid, uint32_t *nr_vnodes, uint32_t *nr_vmemranges,
                       uint32_t *nr_vcpus, xen_vmemrange_t *vmemrange, unsigned int *vdistance,
                       unsigned int *vcpu_to_vnode)
{
    int short_of_room;
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    if (fake_xc_vnuma_nodes == 0) {
        errno = EOPNOTSUPP;
        return -1;
    }
    short_of_room = *nr_vnodes < fake_xc_vnuma_nodes || *nr_vmemranges < vnuma_ranges || *nr_vcpus < 2;
    if (!short_of_room) {
        memcpy(vmemrange, vnuma_mem, vnuma_ranges * sizeof(*vmemrange));
        memcpy(vdistance, vnuma_dist, fake_xc_vnuma_nodes * fake_xc_vnuma_nodes * sizeof(*vdistance));
        memcpy(vcpu_to_vnode, vnuma_v2n, 2 * sizeof(*vcpu_to_vnode));
    }
    /* the counts come back either way: on ENOBUFS they say how much room is needed */
    *nr_vnodes = fake_xc_vnuma_nodes;
    *nr_vmemranges = vnuma_ranges;
    *nr_vcpus = 2;
    if (short_of_room) {
        errno = ENOBUFS;
        return -1;
    }
    return 0;
}

/* One CPU pool, Pool-0, with every CPU (as a host with no pools of its own). */
xc_cpupoolinfo_t *xc_cpupool_getinfo(xc_interface *xch, uint32_t poolid)
{
    xc_cpupoolinfo_t *info;
    (void)xch;
    if (poolid > 0) {
        errno = ENOENT;
        return NULL;
    }
    info = calloc(1, sizeof(*info));
    if (!info)
        return NULL;
    info->cpumap = calloc(1, 64);
    if (!info->cpumap) {
        free(info);
        return NULL;
    }
    info->cpumap[0] = 0x0f;
    return info;
}

void xc_cpupool_infofree(xc_interface *xch, xc_cpupoolinfo_t *info)
{
    (void)xch;
    if (info) {
        free(info->cpumap);
        free(info);
    }
}
