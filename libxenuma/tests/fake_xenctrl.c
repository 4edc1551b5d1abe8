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
 * Pausing is Xen's: one count per domain, shared by every caller, and a run
 * clock (getdomaininfo's cpu_time) that stops while the count is above 0 and
 * moves otherwise (at every look, and by fake_xc_guest_run: the guest runs).
 *
 * Also exported for tests: how many interfaces are open, the last per-node
 * claim the patched call received, how many times each patched call ran.
 * A test can hold xc_physinfo inside the library (fake_xc_hold_physinfo) to
 * race it from another thread; interfaces come from a static pool, never
 * reused soon, so a call on a closed one is counted (fake_xc_used_after_close)
 * instead of reading freed memory.
 * Test-only code: global state is the point of a fake.
 *
 * Guest memory (domid 1, for the page-move code): machine frames are pages
 * of a memfd, FRAMES of them split evenly between the two nodes, each with
 * Xen's reference count (one for the allocation, one per mapping or other
 * holder: a frame is freed, and leaves tot_pages, only when the last goes).
 * The guest's p2m names a frame per gfn.  fake_xenforeignmemory.c maps
 * frames through the fake_xc_frame_* calls below.  The model lives in a
 * MAP_SHARED region, so a child a test forks (a mover that dies) changes
 * the parent's host, as a mover changes the one hypervisor.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xen/memory.h>
#include <xen/hvm/params.h>
#include <xen/grant_table.h>

#define NODES 2
#define CPUS 4
#define PAGES_PER_NODE 262144ull

struct xc_interface_core {
    int magic;
};

#define LIVE_MAGIC 0x4c495645
#define INTERFACE_POOL 4096u
static struct xc_interface_core interfaces[INTERFACE_POOL];
static unsigned int next_interface;

volatile int fake_xc_hold_physinfo; /* while set, xc_physinfo waits inside the library */
volatile int fake_xc_held;          /* calls waiting there now */
volatile int fake_xc_used_after_close;

int fake_xc_open_handles;
unsigned long fake_xc_patched_calls;
unsigned long fake_xc_last_claim_domid = ~0ul, fake_xc_last_claim_node = ~0ul;
unsigned long fake_xc_last_claim_pages;
unsigned long fake_xc_node_pages_room; /* the *nr_nodes the last node-page call was given */

static uint8_t hard[2][1] = { { 0xf }, { 0xf } }, soft[2][1] = { { 0xf }, { 0xf } };
static uint8_t node_affinity[1] = { 0x3 };

/* --- the guest-memory model ---------------------------------------------------------- */
#define FRAMES 8192u           /* machine frames: 0..4095 on node 0, 4096..8191 on node 1 */
#define GUEST_GFNS 32768u      /* gfn space of domid 1 (xc_domain_maximum_gpfn: 32767) */
#define GUEST_RAM 2048u        /* gfns 0..2047 are RAM */
#define GUEST_STORE_PFN 32000u /* HVM_PARAM_STORE_PFN and _CONSOLE_PFN: populated, magic */
#define GUEST_CONSOLE_PFN 32001u
#define NO_FRAME (-1)

struct model {
    int pause[2];                     /* Xen's controller_pause_count: one count every pauser shares */
    uint64_t run_ns[2];               /* cpu_time of getdomaininfo: the vCPUs' total running time */
    uint64_t tot_pages, max_pages;    /* of domid 1 */
    uint32_t node_room[NODES];        /* frames a node may still hand out */
    int32_t owner[FRAMES];            /* domid, or -1 when free */
    uint32_t refs[FRAMES];
    int32_t p2m[GUEST_GFNS];          /* frame of each gfn of domid 1, or NO_FRAME */
    int gnttab_version;               /* of domid 1: 1 from the start, as on Xen 4.17 */
    int gnttab_used;                  /* its shared frame is in use: a test granted something */
    uint8_t gnttab[4096];             /* its one shared grant frame (v1: 512 entries) */
    int backend_copies;               /* a backend grant-copies into every granted frame ... */
    uint32_t backend_copied;          /* ... at the next release (counted) */
    uint32_t paused_unmaps;           /* dom0 mappings of domid 1 undone while it was paused */
};

static struct model *M;
static int machine_fd = -1;
static uint8_t *machine;             /* every frame, as Xen sees them */

static int node_of(int32_t mfn)
{
    return mfn < (int32_t)(FRAMES / NODES) ? 0 : 1;
}

static int32_t alloc_frame(int node)
{
    int32_t first = node < 0 ? 0 : node * (int32_t)(FRAMES / NODES), last = node < 0 ? FRAMES : first + FRAMES / NODES;
    int32_t mfn;

    for (mfn = first; mfn < last; mfn++)
        if (M->owner[mfn] < 0 && M->node_room[node_of(mfn)] > 0) {
            M->owner[mfn] = 1;
            M->refs[mfn] = 1; /* the allocation's own reference */
            M->node_room[node_of(mfn)]--;
            M->tot_pages++;
            memset(machine + (size_t)mfn * 4096, 0, 4096); /* Xen scrubs what it hands out */
            return mfn;
        }
    return NO_FRAME;
}

static void put_frame(int32_t mfn)
{
    if (mfn < 0 || mfn >= (int32_t)FRAMES || M->refs[mfn] == 0)
        abort(); /* a reference nobody took: a bug in the caller of the model */
    if (--M->refs[mfn] == 0) {
        M->owner[mfn] = -1;
        M->node_room[node_of(mfn)]++;
        M->tot_pages--;
        memset(machine + (size_t)mfn * 4096, 0xdb, 4096); /* freed: whoever reads it gets junk */
    }
}

/* Contents no page-layout rule mistakes for a vcpu_info or an event array. */
static void fill_pattern(uint8_t *page, uint64_t gfn)
{
    uint64_t x = gfn * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < 4096; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(page + i, &x, 8);
    }
}

static void populate_initial(uint64_t gfn)
{
    int32_t mfn = alloc_frame(0);
    M->p2m[gfn] = mfn;
    fill_pattern(machine + (size_t)mfn * 4096, gfn);
}

/* A fresh guest: RAM gfns 0..GUEST_RAM-1 and the two magic pages on node 0, at its maximum. */
void fake_xc_guest_reset(void)
{
    uint32_t i;

    if (!M) {
        M = mmap(NULL, sizeof(*M), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        machine_fd = memfd_create("fake-machine-frames", MFD_CLOEXEC);
        if (M == MAP_FAILED || machine_fd < 0 || ftruncate(machine_fd, (off_t)FRAMES * 4096))
            abort();
        machine = mmap(NULL, (size_t)FRAMES * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, machine_fd, 0);
        if (machine == MAP_FAILED)
            abort();
    }
    memset(M, 0, sizeof(*M));
    for (i = 0; i < FRAMES; i++)
        M->owner[i] = -1;
    for (i = 0; i < GUEST_GFNS; i++)
        M->p2m[i] = NO_FRAME;
    for (i = 0; i < NODES; i++)
        M->node_room[i] = FRAMES / NODES;
    for (i = 0; i < GUEST_RAM; i++)
        populate_initial(i);
    populate_initial(GUEST_STORE_PFN);
    populate_initial(GUEST_CONSOLE_PFN);
    M->max_pages = M->tot_pages;
    M->run_ns[0] = M->run_ns[1] = 5000000000ull; /* both have run 5 s */
    M->gnttab_version = 1; /* grant_table_init: gt_version = 1 */
}

static void model(void)
{
    if (!M)
        fake_xc_guest_reset();
}

/* For fake_xenforeignmemory.c and tests. */
int fake_xc_machine_fd(void)
{
    model();
    return machine_fd;
}

/* The frame behind a gfn of domid 1, or -1. */
long fake_xc_gfn_frame(uint32_t domid, uint64_t gfn)
{
    model();
    return domid == 1 && gfn < GUEST_GFNS ? M->p2m[gfn] : NO_FRAME;
}

void fake_xc_frame_get(long mfn)
{
    model();
    if (mfn < 0 || mfn >= (long)FRAMES || M->refs[mfn] == 0)
        abort();
    M->refs[mfn]++;
}

void fake_xc_frame_put(long mfn)
{
    model();
    put_frame((int32_t)mfn);
}

int fake_xc_frame_node(long mfn)
{
    return node_of((int32_t)mfn);
}

/* What the guest sees at gfn (NULL: unpopulated), and the pattern it started with. */
const uint8_t *fake_xc_gfn_page(uint64_t gfn)
{
    long mfn = fake_xc_gfn_frame(1, gfn);
    return mfn < 0 ? NULL : machine + (size_t)mfn * 4096;
}

void fake_xc_initial_page(uint64_t gfn, uint8_t *page)
{
    fill_pattern(page, gfn);
}

/* Frames allocated to anyone: tot_pages of domid 1 plus nothing else. */
long fake_xc_frames_in_use(void)
{
    long n = 0;
    model();
    for (uint32_t i = 0; i < FRAMES; i++)
        n += M->owner[i] >= 0;
    return n;
}

void fake_xc_set_node_room(unsigned int node, uint32_t frames)
{
    model();
    M->node_room[node] = frames;
}

/* fake_xenforeignmemory.c tells each unmap of domid 1's frames: a test waits on the count
 * to know a scan's pass over a paused guest is over (no frame of it still mapped). */
void fake_xc_note_unmap(uint32_t domid)
{
    model();
    if (domid == 1 && M->pause[1])
        M->paused_unmaps++;
}

uint32_t fake_xc_paused_unmaps(void)
{
    model();
    return M->paused_unmaps;
}

int fake_xc_pause_count(uint32_t domid)
{
    model();
    return domid < 2 ? M->pause[domid] : -1;
}

/* The guest runs for ns (and may write its memory meanwhile): only while no
 * pause holds, as in Xen, where a paused domain's vCPUs are never scheduled.
 * 1: it ran (its clock moved); 0: paused, it did not. */
int fake_xc_guest_run(uint32_t domid, uint64_t ns)
{
    model();
    if (domid >= 2 || M->pause[domid])
        return 0;
    M->run_ns[domid] += ns;
    return 1;
}

uint64_t fake_xc_run_clock(uint32_t domid)
{
    model();
    return domid < 2 ? M->run_ns[domid] : 0;
}

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
    xch = &interfaces[__atomic_fetch_add(&next_interface, 1, __ATOMIC_SEQ_CST) % INTERFACE_POOL];
    xch->magic = LIVE_MAGIC;
    __atomic_add_fetch(&fake_xc_open_handles, 1, __ATOMIC_SEQ_CST);
    return xch;
}

int xc_interface_close(xc_interface *xch)
{
    if (xch) {
        if (xch->magic != LIVE_MAGIC)
            __atomic_add_fetch(&fake_xc_used_after_close, 1, __ATOMIC_SEQ_CST); /* closed twice */
        xch->magic = 0;
        __atomic_sub_fetch(&fake_xc_open_handles, 1, __ATOMIC_SEQ_CST);
    }
    return 0;
}

/* Wait here while a test holds xc_physinfo; count a call on a closed interface. */
static void hold_and_check(xc_interface *xch)
{
    if (fake_xc_hold_physinfo) {
        __atomic_add_fetch(&fake_xc_held, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&fake_xc_hold_physinfo, __ATOMIC_SEQ_CST))
            usleep(1000);
        __atomic_sub_fetch(&fake_xc_held, 1, __ATOMIC_SEQ_CST);
    }
    if (xch->magic != LIVE_MAGIC)
        __atomic_add_fetch(&fake_xc_used_after_close, 1, __ATOMIC_SEQ_CST);
}

/* fake_xenforeignmemory.c takes any handle: this one only has to be there. */
static int fmem_stand_in;

struct xenforeignmemory_handle *xc_interface_fmem_handle(xc_interface *xch)
{
    (void)xch;
    return (struct xenforeignmemory_handle *)&fmem_stand_in;
}

/* FAKE_XC_HOTPLUG_CPUS=N (at most 4): N possible CPUs beyond the online ones, as Xen
 * counts CPUs the firmware lists for hotplug ("SMP: Allowing 8 CPUs, 4 hotplug CPUs"):
 * the CPU maps are that much wider and an unpinned vCPU's hard map has them set. */
static unsigned int hotplug_cpus(void)
{
    const char *n = getenv("FAKE_XC_HOTPLUG_CPUS");
    unsigned int v = n ? (unsigned int)atoi(n) : 0;

    return v > 4 ? 4 : v;
}

/* FAKE_XC_SMT=1: two threads per core, one core per socket (CPUs 0 and 1 core 0 of socket
 * 0, CPUs 2 and 3 core 0 of socket 1), as a host with hyperthreading; otherwise every CPU
 * is a core of its own. */
static int smt(void)
{
    const char *v = getenv("FAKE_XC_SMT");

    return v && *v == '1';
}

/* FAKE_XC_PARKED_CPUS=N (at most 2): the second thread of the first N cores parked (CPU 1,
 * then CPU 3), as smt=0 or xen-hptool cpu-offline leave them: still present, so
 * cputopoinfo gives each its node (up to the last online CPU), but in no CPU pool, not
 * free, and not in physinfo's count of online CPUs. */
static unsigned int parked_cpus(void)
{
    const char *n = getenv("FAKE_XC_PARKED_CPUS");
    unsigned int v = n ? (unsigned int)atoi(n) : 0;

    return v > 2 ? 2 : v;
}

static uint8_t parked_map(void)
{
    return parked_cpus() >= 2 ? 0x0a : parked_cpus() == 1 ? 0x02 : 0;
}

/* FAKE_XC_POOLLESS_CPU=k: CPU k online but taken out of Pool-0 (xl cpupool-cpu-remove):
 * in the free map, in no pool. */
static uint8_t poolless_map(void)
{
    const char *k = getenv("FAKE_XC_POOLLESS_CPU");

    return k && *k ? (uint8_t)(1u << (atoi(k) & 3)) : 0;
}

int xc_physinfo(xc_interface *xch, xc_physinfo_t *info)
{
    hold_and_check(xch);
    FAIL_IF_ASKED();
    memset(info, 0, sizeof(*info));
    info->nr_cpus = CPUS - parked_cpus();
    info->max_cpu_id = CPUS - 1 + hotplug_cpus();
    info->nr_nodes = NODES;
    info->max_node_id = 63; /* Xen 4.17: MAX_NUMNODES - 1, whatever the host has (sysctl.c) */
    info->threads_per_core = smt() ? 2 : 1;
    info->cores_per_socket = smt() ? 1 : 2;
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
    unsigned i, j, n;
    (void)xch;
    FAIL_IF_ASKED();
    /* as Xen: with arrays, only as many entries as the caller has room for */
    n = meminfo || distance ? (*max_nodes < NODES ? *max_nodes : NODES) : NODES;
    *max_nodes = n;
    for (i = 0; meminfo && i < n; i++) {
        meminfo[i].memsize = PAGES_PER_NODE << 12;
        meminfo[i].memfree = (PAGES_PER_NODE / (i + 2)) << 12;
        /* FAKE_XC_OFFLINE_NODE=N: node N offline, as Xen reports one (XEN_INVALID_MEM_SZ) */
        if (getenv("FAKE_XC_OFFLINE_NODE") && *getenv("FAKE_XC_OFFLINE_NODE") &&
            (unsigned)atoi(getenv("FAKE_XC_OFFLINE_NODE")) == i)
            meminfo[i].memsize = meminfo[i].memfree = XEN_INVALID_MEM_SZ;
    }
    for (i = 0; distance && i < n; i++)
        for (j = 0; j < n; j++)
            distance[i * n + j] = i == j ? 10 : 20;
    return 0;
}

/* Node 0's memory below 2^26 (64 MiB: 16384 pages) is free, as a DMA zone
 * would be; none elsewhere.  Xen's zones: max_width 0 means every zone. */
int xc_availheap(xc_interface *xch, int min_width, int max_width, int node, uint64_t *bytes)
{
    uint64_t low = 16384ull << 12;
    (void)xch;
    (void)min_width;
    FAIL_IF_ASKED();
    if (max_width == 0 || max_width > 40)
        *bytes = node < 0 ? 3 * low : node == 0 ? 2 * low : low;
    else
        *bytes = node <= 0 && max_width >= 26 ? low : 0;
    return 0;
}

/* XENVER_commandline: FAKE_XC_CMDLINE, else a typical XenServer line */
int xc_version(xc_interface *xch, int cmd, void *arg)
{
    const char *line = getenv("FAKE_XC_CMDLINE");
    (void)xch;
    FAIL_IF_ASKED();
    if (cmd != XENVER_commandline) {
        errno = ENOSYS;
        return -1;
    }
    memset(arg, 0, sizeof(xen_commandline_t));
    strncpy(arg, line ? line : "dom0_mem=2048M,max:2048M watchdog ucode=scan", sizeof(xen_commandline_t) - 1);
    return 0;
}

int xc_cputopoinfo(xc_interface *xch, unsigned *max_cpus, xc_cputopo_t *cputopo)
{
    unsigned i;
    (void)xch;
    FAIL_IF_ASKED();
    /* as Xen: up to the last online CPU (a parked CPU 3 is not listed, a parked CPU 1 is) */
    *max_cpus = parked_map() & 0x08 ? CPUS - 1 : CPUS;
    for (i = 0; cputopo && i < *max_cpus; i++) {
        cputopo[i].core = smt() ? 0 : i % 2;
        cputopo[i].socket = i / 2;
        cputopo[i].node = i / 2;
    }
    return 0;
}

static uint32_t fake_emulation(const char *kind)
{
    if (kind && !strcmp(kind, "1"))
        return XEN_X86_EMU_ALL & ~XEN_X86_EMU_VPCI;
    if (kind && !strcmp(kind, "dom0"))
        return XEN_X86_EMU_LAPIC | XEN_X86_EMU_IOAPIC | XEN_X86_EMU_VPCI;
    return XEN_X86_EMU_LAPIC;
}

/* FAKE_XC_CLAIM_HELD=N: domain 1 holds a claim of N pages (getdomaininfo's
 * outstanding_pages), and Xen keeps one claim per domain: a further one, host-wide
 * or on a node, answers EINVAL (domain_set_outstanding_pages) until a claim of 0. */
static unsigned long claim_held(void)
{
    const char *held = getenv("FAKE_XC_CLAIM_HELD");
    return held && *held ? strtoul(held, NULL, 10) : 0;
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
                        (model(), M->pause[d] ? XEN_DOMINF_paused : XEN_DOMINF_running);
        /* domain 1 is PVH (a local APIC only); $FAKE_XC_HVM=1: HVM (all but vPCI, as
         * Xen allows an HVM domU); =dom0: what Xen gives a PVH dom0 */
        info[n].arch_config.emulation_flags = d != 1 ? 0 : fake_emulation(getenv("FAKE_XC_HVM"));
        /* a domain no pause holds runs: its clock has moved between any two looks */
        if (M->pause[d] == 0)
            M->run_ns[d] += 1000;
        info[n].cpu_time = M->run_ns[d];
        info[n].tot_pages = d == 0 ? 65536 : M->tot_pages;
        info[n].max_pages = d == 0 ? 65536 : M->max_pages;
        info[n].nr_online_vcpus = 2;
        info[n].max_vcpu_id = 1;
        /* FAKE_XC_NO_VCPUS=1: domain 1 has no vCPU yet, as getdomaininfo says of a domain
         * whose vCPUs are not created: XEN_INVALID_MAX_VCPU_ID */
        if (d == 1 && getenv("FAKE_XC_NO_VCPUS") && *getenv("FAKE_XC_NO_VCPUS") == '1') {
            info[n].nr_online_vcpus = 0;
            info[n].max_vcpu_id = XEN_INVALID_MAX_VCPU_ID;
        }
        info[n].outstanding_pages = d == 1 ? claim_held() : 0;
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
    return CPUS + hotplug_cpus();
}

/* libxc's is physinfo's max_node_id + 1: 64 on Xen 4.17, whatever the host has */
int xc_get_max_nodes(xc_interface *xch)
{
    (void)xch;
    FAIL_IF_ASKED();
    return 64;
}

int xc_vcpu_getaffinity(xc_interface *xch, uint32_t domid, int vcpu, xc_cpumap_t cpumap_hard,
                        xc_cpumap_t cpumap_soft, uint32_t flags)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    if ((flags & XEN_VCPUAFFINITY_HARD) && cpumap_hard)
        /* unpinned: Xen sets every possible CPU, the hotplug ones too */
        cpumap_hard[0] = hard[vcpu & 1][0] == 0xf && hotplug_cpus() ? 0xff : hard[vcpu & 1][0];
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

/* FAKE_XC_GONE_AT_PAUSE=<gfn>: the guest gives that gfn back (a balloon driver)
 * just before a pause lands, after a mover has mapped its batch. */
static void gone_at_pause(uint32_t domid)
{
    const char *gfn = getenv("FAKE_XC_GONE_AT_PAUSE");
    unsigned long g = gfn ? strtoul(gfn, NULL, 0) : GUEST_GFNS;

    if (domid == 1 && g < GUEST_GFNS && M->p2m[g] != NO_FRAME) {
        put_frame(M->p2m[g]);
        M->p2m[g] = NO_FRAME;
    }
}

/* What a gfn holds after FAKE_XC_RETAKEN_AT_PAUSE: the guest's new data. */
void fake_xc_retaken_page(uint64_t gfn, uint8_t *page)
{
    fill_pattern(page, gfn + GUEST_GFNS);
}

/* FAKE_XC_RETAKEN_AT_PAUSE=<gfn>: the guest gives that gfn back and takes it
 * again (a balloon driver), writing new data into its new frame, just before a
 * pause lands, after a mover has mapped its batch. */
static void retaken_at_pause(uint32_t domid)
{
    const char *gfn = getenv("FAKE_XC_RETAKEN_AT_PAUSE");
    unsigned long g = gfn ? strtoul(gfn, NULL, 0) : GUEST_GFNS;
    int32_t mfn;

    if (domid != 1 || g >= GUEST_GFNS || M->p2m[g] == NO_FRAME)
        return;
    put_frame(M->p2m[g]);
    mfn = alloc_frame(0);
    M->p2m[g] = mfn;
    if (mfn != NO_FRAME)
        fake_xc_retaken_page(g, machine + (size_t)mfn * 4096);
}

int xc_domain_pause(xc_interface *xch, uint32_t domid)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    model();
    gone_at_pause(domid);
    retaken_at_pause(domid);
    M->pause[domid]++;
    return 0;
}

int xc_domain_unpause(xc_interface *xch, uint32_t domid)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    model();
    if (M->pause[domid] == 0) {
        errno = EINVAL; /* as Xen: the controller's pause count cannot go negative */
        return -1;
    }
    M->pause[domid]--;
    return 0;
}

/* As Xen's XENMEM_claim_pages (xen/common/memory.c), which answers EINVAL, not ESRCH,
 * for a domain that does not exist. */
static int claim_bad_domain(uint32_t domid)
{
    if (!bad_domain(domid))
        return 0;
    errno = EINVAL;
    return 1;
}

/* Xen's refusal of a second claim while one is held (see claim_held). */
static int claim_refused(uint32_t domid, unsigned long nr_pages)
{
    if (claim_bad_domain(domid))
        return 1;
    if (domid != 1 || nr_pages == 0 || claim_held() == 0)
        return 0;
    errno = EINVAL;
    return 1;
}

int xc_domain_claim_pages(xc_interface *xch, uint32_t domid, unsigned long nr_pages)
{
    (void)xch;
    FAIL_IF_ASKED();
    return claim_refused(domid, nr_pages) ? -1 : 0;
}

/*
 * The console ring: empty unless debug key 'u' was sent, whose dump the next
 * read returns.  FAKE_XC_CONSOLE=flood makes the hypervisor print without end
 * (every read comes back full), as a guest or driver stuck in a loop that logs
 * would: a reader that waits to catch up never does.  FAKE_XC_CONSOLE=old:N
 * starts with N bytes already in the ring, an older dump of other figures
 * among them, served as Xen serves an incremental read (from *pindex, index 0
 * being the oldest byte): a reader must skip them all, however many.
 * FAKE_XC_CONSOLE=overrun: the key's dump was larger than Xen's console ring
 * (conring_size, 16 KiB by default), so the reader gets only its tail: the
 * domains' lines without the header before them.
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
static const char old_udump_text[] =
    "(XEN) Memory location of each domain:\n"
    "(XEN) Domain 1 (total: 11):\n"
    "(XEN)     Node 0: 5\n"
    "(XEN)     Node 1: 6\n";
static int udump_pending;
static uint32_t console_produced;

/* Byte `at` of the old text: chatter, with the old dump a quarter of the way in. */
static char old_byte(uint32_t at, uint32_t total)
{
    uint32_t dump = total / 4;
    if (at >= dump && at < dump + sizeof(old_udump_text) - 1)
        return old_udump_text[at - dump];
    return chatter[at % (sizeof(chatter) - 1)];
}

int xc_readconsolering(xc_interface *xch, char *buffer, unsigned int *pnr_chars, int clear, int incremental,
                       uint32_t *pindex)
{
    const char *mode = getenv("FAKE_XC_CONSOLE");
    unsigned int n = 0, want = *pnr_chars;

    (void)xch; (void)clear; (void)incremental;
    FAIL_IF_ASKED();
    if (mode && strncmp(mode, "old:", 4) == 0) {
        uint32_t total = (uint32_t)strtoul(mode + 4, NULL, 10);
        if (console_produced < total)
            console_produced = total; /* the ring already held that much */
        for (; *pindex + n < total && n < want; n++)
            buffer[n] = old_byte(*pindex + n, total);
        if (n) {
            *pindex += n;
            *pnr_chars = n;
            return 0;
        }
    }
    if (udump_pending && want >= sizeof(udump_text) - 1) {
        const char *text = udump_text;
        if (mode && strcmp(mode, "overrun") == 0)
            text = strstr(udump_text, "(XEN) Domain 0"); /* the head overwritten before it was read */
        n = (unsigned int)strlen(text);
        memcpy(buffer, text, n);
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
    unsigned int i;
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(dom))
        return -1;
    if (num > 1024) {
        errno = E2BIG; /* XEN_DOMCTL_getpageframeinfo3 takes at most 1024 */
        return -1;
    }
    for (i = 0; i < num; i++)
        arr[i] = fake_xc_gfn_frame(dom, arr[i]) < 0 ? XEN_DOMCTL_PFINFO_XTAB : XEN_DOMCTL_PFINFO_NOTAB;
    return 0;
}

/* FAKE_XC_MAX_GPFN=<n>: the highest gfn said to be n (a libxc or hypervisor answering
 * nonsense), for the bound callers size their buffers by. */
int xc_domain_maximum_gpfn(xc_interface *xch, uint32_t domid, xen_pfn_t *gpfns)
{
    const char *said = getenv("FAKE_XC_MAX_GPFN");
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    *gpfns = said && *said ? (xen_pfn_t)strtoull(said, NULL, 0) : 32767;
    return 0;
}

int xc_hvm_param_get(xc_interface *handle, uint32_t dom, uint32_t param, uint64_t *value)
{
    (void)handle;
    FAIL_IF_ASKED();
    *value = dom != 1 ? 0 : param == HVM_PARAM_STORE_PFN ? GUEST_STORE_PFN
                          : param == HVM_PARAM_CONSOLE_PFN ? GUEST_CONSOLE_PFN : 0;
    return 0;
}

/* FAKE_XC_GNTTAB_NO_BOUNCE=1: libxc cannot allocate its hypercall bounce buffer
 * (dom0 short of memory).  Xen 4.17's xc_gnttab_op then returns 0 without the
 * hypercall, the op untouched, and xc_gnttab_get_version returns whatever its
 * uninitialised stack field held (here: 1, as plausible as it gets). */
static int no_bounce(void)
{
    const char *v = getenv("FAKE_XC_GNTTAB_NO_BOUNCE");
    return v && *v && *v != '0';
}

int xc_gnttab_get_version(xc_interface *xch, uint32_t domid)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (no_bounce())
        return 1;
    if (bad_domain(domid))
        return -1;
    model();
    return domid == 1 ? M->gnttab_version : 1;
}

/* GNTTABOP_get_version and GNTTABOP_query_size: one frame in use once the guest grants. */
int xc_gnttab_op(xc_interface *xch, int cmd, void *op, int op_size, int count)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (no_bounce())
        return 0;
    model();
    if (cmd == GNTTABOP_get_version && op_size == (int)sizeof(struct gnttab_get_version) && count == 1) {
        struct gnttab_get_version *g = op;
        if (bad_domain(g->dom))
            return -1;
        g->version = g->dom == 1 ? (uint32_t)M->gnttab_version : 1;
        return 0;
    }
    if (cmd == GNTTABOP_query_size && op_size == (int)sizeof(struct gnttab_query_size) && count == 1) {
        struct gnttab_query_size *q = op;
        q->nr_frames = q->dom == 1 && M->gnttab_used ? 1 : 0;
        q->max_nr_frames = 32;
        q->status = q->dom < 2 ? GNTST_okay : GNTST_bad_domain;
        return 0;
    }
    errno = ENOSYS;
    return -1;
}

/* The guest grants gfn to dom0 (a v1 entry, GTF_permit_access), as a frontend does. */
void fake_xc_grant(unsigned int ref, uint64_t gfn)
{
    uint16_t flags = GTF_permit_access, domid = 0;
    uint32_t frame = (uint32_t)gfn;
    model();
    M->gnttab_used = 1;
    memcpy(M->gnttab + ref * 8 + 2, &domid, 2);
    memcpy(M->gnttab + ref * 8 + 4, &frame, 4);
    memcpy(M->gnttab + ref * 8, &flags, 2);
}

const uint8_t *fake_xc_grant_table(void)
{
    model();
    return M->gnttab;
}

/* From the next release on, a backend answers a request into every frame the
 * guest grants (GNTTABOP_copy: Xen looks the gfn up at the time of the copy). */
void fake_xc_backend_copies(int on)
{
    model();
    M->backend_copies = on;
    M->backend_copied = 0;
}

uint32_t fake_xc_backend_copied(void)
{
    model();
    return M->backend_copied;
}

static const char BACKEND_DATA[] = "written by a backend";

static void backend_copy_now(void)
{
    for (unsigned int ref = 0; M->gnttab_version == 1 && ref < 512; ref++) {
        uint16_t flags;
        uint32_t gfn;
        memcpy(&flags, M->gnttab + ref * 8, 2);
        memcpy(&gfn, M->gnttab + ref * 8 + 4, 4);
        if ((flags & GTF_type_mask) == GTF_permit_access && gfn < GUEST_GFNS && M->p2m[gfn] != NO_FRAME) {
            memcpy(machine + (size_t)M->p2m[gfn] * 4096, BACKEND_DATA, sizeof(BACKEND_DATA));
            M->backend_copied++;
        }
    }
}

/* As Xen's decrease_reservation: gfns in order, each unhooked from the p2m and
 * its allocation reference dropped (the frame is freed only if nobody else
 * holds one); stops at the first gfn with nothing behind it.  Returns how many. */
int xc_domain_decrease_reservation(xc_interface *xch, uint32_t domid, unsigned long nr_extents,
                                   unsigned int extent_order, xen_pfn_t *extent_start)
{
    unsigned long i;
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid) || domid != 1 || extent_order != 0) {
        errno = domid == 1 ? EINVAL : ESRCH;
        return -1;
    }
    model();
    if (getenv("FAKE_XC_UNPAUSED_BY_OTHER"))
        M->pause[domid] = 0; /* an admin's xl unpause lands inside a mover's pause window */
    if (M->backend_copies) {
        M->backend_copies = 0;
        backend_copy_now(); /* the guest is paused; its backends are not */
    }
    for (i = 0; i < nr_extents; i++) {
        xen_pfn_t gfn = extent_start[i];
        if (gfn >= GUEST_GFNS || M->p2m[gfn] == NO_FRAME)
            break;
        put_frame(M->p2m[gfn]);
        M->p2m[gfn] = NO_FRAME;
    }
    return (int)i;
}

/* FAKE_XC_NO_BACKING=<gfn>: Xen will not back that gfn again, on any node. */
static int refused_backing(xen_pfn_t gfn, unsigned long pages)
{
    const char *refused = getenv("FAKE_XC_NO_BACKING");
    unsigned long g = refused ? strtoul(refused, NULL, 0) : GUEST_GFNS;

    return g >= gfn && g < gfn + pages;
}

/* As Xen's populate_physmap for a translated guest: extents in order, each
 * 2^order frames from the node XENMEMF_exact_node names (or any node), within
 * max_pages; a gfn already backed has its frame orphaned, as Xen's p2m does.
 * Stops at the first extent that cannot be had.  Returns how many. */
int xc_domain_populate_physmap(xc_interface *xch, uint32_t domid, unsigned long nr_extents,
                               unsigned int extent_order, unsigned int mem_flags, xen_pfn_t *extent_start)
{
    int node = mem_flags & XENMEMF_exact_node_request ? (int)XENMEMF_get_node(mem_flags) : -1;
    unsigned long i, pages = 1ul << extent_order, j;
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid) || domid != 1 || extent_order > 9 || node >= 64) {
        errno = domid == 1 ? EINVAL : ESRCH; /* Xen refuses only a node >= MAX_NUMNODES (memory.c) */
        return -1;
    }
    if (node >= NODES)
        return 0; /* a node the host lacks: Xen's allocator finds nothing there, and says so by a count of 0 */
    model();
    for (i = 0; i < nr_extents; i++) {
        xen_pfn_t gfn = extent_start[i];
        uint32_t room = node < 0 ? M->node_room[0] + M->node_room[1] : M->node_room[node];
        if (gfn + pages > GUEST_GFNS || gfn % pages || room < pages || M->tot_pages + pages > M->max_pages
            || refused_backing(gfn, pages))
            break;
        for (j = 0; j < pages; j++)
            M->p2m[gfn + j] = alloc_frame(node);
    }
    return (int)i;
}

/* FAKE_XC_POD_ENTRIES=<n>: the guest booted with populate-on-demand, n entries
 * still unpopulated. */
int xc_domain_get_pod_target(xc_interface *xch, uint32_t domid, uint64_t *tot_pages, uint64_t *pod_cache_pages,
                             uint64_t *pod_entries)
{
    const char *entries = getenv("FAKE_XC_POD_ENTRIES");
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    model();
    *tot_pages = domid == 1 ? M->tot_pages : 65536;
    *pod_cache_pages = 0;
    *pod_entries = entries && domid == 1 ? strtoull(entries, NULL, 0) : 0;
    return 0;
}

int xc_domain_setmaxmem(xc_interface *xch, uint32_t domid, uint64_t max_memkb)
{
    (void)xch;
    FAIL_IF_ASKED();
    if (bad_domain(domid))
        return -1;
    model();
    if (domid == 1 && getenv("FAKE_XC_DIE_AFTER_RAISE") && (max_memkb >> 2) > M->max_pages) {
        M->max_pages = max_memkb >> 2;
        _exit(97); /* a caller killed right after raising the maximum (the model is shared memory) */
    }
    if (domid == 1)
        M->max_pages = max_memkb >> 2;
    return 0;
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
    if (claim_refused(domid, nr_pages))
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
    fake_xc_node_pages_room = *nr_nodes;
    if (bad_domain(domid))
        return -1;
    for (i = 0; i < *nr_nodes && i < NODES; i++)
        pages[i] = 1000ull * (i + 1) + domid; /* recognisable: node 0 -> 1000+domid, node 1 -> 2000+domid */
    *nr_nodes = getenv("FAKE_XC_NODE_PAGES_COUNT") ? (unsigned int)atoi(getenv("FAKE_XC_NODE_PAGES_COUNT")) : i;
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
    info->cpumap[0] = (uint8_t)(0x0f & ~parked_map() & ~poolless_map());
    return info;
}

xc_cpumap_t xc_cpupool_freeinfo(xc_interface *xch)
{
    xc_cpumap_t map;
    (void)xch;
    if (failing(__func__))
        return NULL;
    map = calloc(1, 64);
    if (map)
        map[0] = poolless_map();
    return map;
}

void xc_cpupool_infofree(xc_interface *xch, xc_cpupoolinfo_t *info)
{
    (void)xch;
    if (info) {
        free(info->cpumap);
        free(info);
    }
}
