/*
 * libxenuma: xapi-numa's libxc extension.
 *
 * Thin, allocation-free wrappers over libxenctrl for what NUMA placement
 * needs, with one error convention: every function returns 0 (or a count)
 * on success and -errno on failure.  Bitmaps are byte arrays, bit i of byte
 * i/8 for CPU (or node) i, as libxc's cpumaps.  Used by Python through cffi
 * and, later, by OCaml stubs for xenopsd (built as a plain shared library).
 */
#ifndef LIBXENUMA_H
#define LIBXENUMA_H

#include <stdint.h>
#include <stddef.h>

typedef struct xn_handle xn_handle;

struct xn_physinfo {
    uint32_t nr_cpus, max_cpu_id, nr_nodes, max_node_id;
    uint32_t threads_per_core, cores_per_socket;
    uint64_t total_pages, free_pages, outstanding_pages;
    uint32_t sched_id;   /* XEN_SCHEDULER_* of the default pool */
};

struct xn_domain {
    uint32_t domid;
    uint32_t flags;      /* XN_DOM_* below */
    uint64_t tot_pages, max_pages, outstanding_pages;
    uint32_t nr_online_vcpus, max_vcpu_id;
    uint32_t cpupool;
    uint8_t handle[16];  /* the domain's UUID */
};

/* plain literals: the cffi declarations are read from this header */
#define XN_DOM_DYING 0x1
#define XN_DOM_HVM 0x2
#define XN_DOM_SHUTDOWN 0x4
#define XN_DOM_PAUSED 0x8
#define XN_DOM_BLOCKED 0x10
#define XN_DOM_RUNNING 0x20
#define XN_DOM_HAP 0x100
/* ours, not Xen's: an HVM container without a device model's emulation (PVH).
 * Xen's flags say HVM for both; its emulation flags (getdomaininfo's
 * arch_config, x86) tell them apart: an HVM guest has the PIT, RTC and PIC
 * emulated, a PVH guest none of them (a PVH dom0 has the IOAPIC and vPCI). */
#define XN_DOM_PVH 0x200

struct xn_vcpu {
    uint8_t online, blocked, running;
    uint32_t cpu;
    uint64_t cpu_time_ns;  /* time this vCPU has run since it was created */
};

/* Feature states reported by xn_features(). */
#define XN_NATIVE      2
#define XN_FALLBACK    1
#define XN_UNAVAILABLE 0

struct xn_features {
    int node_pages;   /* per-node page counts: native (patched op) or fallback (debug key 'u') */
    int node_claims;  /* per-node claims: native, or unavailable */
    int claims;       /* host-wide claims */
};

/* XenServer's patched libxenctrl calls, looked up at run time in the
 * libxenctrl this process loaded (xn_patched_ops): one binary for stock
 * and patched Xen. */
#define XN_PATCHED_CLAIM_NODE 0x1  /* xc_domain_claim_pages_node */
#define XN_PATCHED_NODE_PAGES 0x2  /* xc_domain_numa_get_node_pages */
unsigned int xn_patched_ops(void);

int xn_open(xn_handle **out);
void xn_close(xn_handle *h);

int xn_physinfo(xn_handle *h, struct xn_physinfo *out);
/* Node sizes/free (bytes, ~0 for an invalid node) and the distance matrix
 * (row-major, max_nodes x max_nodes).  *nr_nodes: in capacity, out count. */
int xn_numainfo(xn_handle *h, unsigned int *nr_nodes, uint64_t *size, uint64_t *free_bytes,
                uint32_t *distances);
/* Per CPU: core, socket, node (~0 for an offline CPU). *nr_cpus: in capacity, out count. */
int xn_cputopo(xn_handle *h, unsigned int *nr_cpus, uint32_t *core, uint32_t *socket, uint32_t *node);

/* Domains from first_domid on, up to max; returns how many were filled. */
int xn_domains(xn_handle *h, uint32_t first_domid, unsigned int max, struct xn_domain *out);
int xn_vcpu_info(xn_handle *h, uint32_t domid, uint32_t vcpu, struct xn_vcpu *out);
/* Affinity bitmaps of `bytes` bytes (xn_cpumap_bytes). */
int xn_cpumap_bytes(xn_handle *h);
int xn_nodemap_bytes(xn_handle *h);
int xn_vcpu_get_affinity(xn_handle *h, uint32_t domid, uint32_t vcpu, uint8_t *hard, uint8_t *soft);
/* Set hard and/or soft (NULL leaves it alone); the effective maps come back in place. */
int xn_vcpu_set_affinity(xn_handle *h, uint32_t domid, uint32_t vcpu, uint8_t *hard, uint8_t *soft);
int xn_node_affinity_get(xn_handle *h, uint32_t domid, uint8_t *nodes);
int xn_node_affinity_set(xn_handle *h, uint32_t domid, uint8_t *nodes);
int xn_pause(xn_handle *h, uint32_t domid);
int xn_unpause(xn_handle *h, uint32_t domid);

/* Is `node` one of the host's online nodes (xc_numainfo gives it a size, not
 * XEN_INVALID_MEM_SZ)?  0, -EINVAL, or the -errno of numainfo.  Not
 * physinfo's max_node_id: Xen 4.17 says 63 there whatever the host has, and
 * takes any node below 64 in a memory op, where one the host lacks gives no
 * memory and no error.  Nodes seen online are cached in the handle.  (Xen's
 * memory flags carry a node in 8 bits, so 64 and up were never the host's.) */
int xn_node_check(xn_handle *h, uint32_t node);

/* Free bytes on `node` in the heap zones below address 2^max_width
 * (xc_availheap).  With Xen's DMA width, the memory its allocator gives a
 * domain only once no node has any other left (alloc_domheap_pages' second
 * pass): a node-affine build spills to other nodes first.  A node not the
 * host's: -EINVAL. */
int xn_node_free_below(xn_handle *h, uint32_t node, unsigned int max_width, uint64_t *bytes);
/* Xen's command line (XENVER_commandline), NUL-terminated in buf (len bytes,
 * at least 1024: the hypercall's size; -ENOSPC below that). */
int xn_xen_commandline(xn_handle *h, char *buf, size_t len);

/* Host-wide claim of nr_pages (0 cancels) or, where the hypervisor has it,
 * a claim on one node (node = ~0u for host-wide; another node not the
 * host's: -EINVAL). */
int xn_claim(xn_handle *h, uint32_t domid, uint32_t node, uint64_t nr_pages);

/* Pages per node with the patched op (returns how many nodes were filled,
 * never more than nr_nodes: -ENOBUFS if the op claims more); -ENOSYS where the
 * loaded libxenctrl lacks it or the hypervisor answers ENOSYS or EOPNOTSUPP. */
int xn_node_pages_native(xn_handle *h, uint32_t domid, unsigned int nr_nodes, uint64_t *pages);
/* Trigger debug key 'u' and return only the console output it produced
 * (read incrementally from the ring position before the key).  *len: in
 * capacity, out length.  Waits up to timeout_ms for the dump to finish. */
int xn_udump_capture(xn_handle *h, char *buf, size_t *len, unsigned int timeout_ms);
/* Parse a capture (see udump.h). */
int xn_udump_parse(const char *buf, size_t len, uint32_t domid, unsigned int nr_nodes,
                   uint64_t *pages, uint64_t *total);

void xn_features(xn_handle *h, struct xn_features *out);

/* --- Page migration between nodes (PVH/HVM guests; stock Xen 4.17) ---------------------
 * What a gfn is, for moving (a scan's map holds one byte per gfn):     */
#define XN_GFN_RAM 0         /* ordinary RAM: may move */
#define XN_GFN_NOT_RAM 1     /* hole, MMIO, or Xen's own (shared_info, grant frames) */
#define XN_GFN_MAGIC 2       /* an HVM param's page: xenstore, console, ioreq, rings */
#define XN_GFN_GRANTED 3     /* granted to another domain (a backend may map or copy into it) */
#define XN_GFN_VCPU_INFO 4   /* looks like a vcpu_info (or time area) Xen keeps mapped */
#define XN_GFN_EVTCHN 5      /* looks like a FIFO event-channel control block or event array */
#define XN_GFN_CHANGED 6     /* changed while the domain was paused (the probe) */
#define XN_GFN_CLASSES 7

/* Can this domain's memory be moved?  0, -ESRCH (gone or dying),
 * -EPROTOTYPE (a PV guest: its page tables hold machine frames),
 * -EOPNOTSUPP (populate-on-demand entries outstanding). */
int xn_mig_check(xn_handle *h, uint32_t domid);
/* How many gfns a guest whose memory can be moved (HVM or PVH) can have: Xen 4.17 gives
 * such guests at most 48 bits of physical address (its P2M copes with no more, and it
 * says no more in their CPUID), 2^36 pages of 4 KiB.  A highest gfn at or past this (2^64 - 1
 * would wrap max_gfn + 1 to 0) is refused with -E2BIG before anyone allocates for it, as
 * is a larger nr to xn_mig_scan. */
#define XN_MIG_GFN_LIMIT 0x1000000000
int xn_mig_max_gfn(xn_handle *h, uint32_t domid, uint64_t *max_gfn);
struct xn_mig_scan_stats {
    uint64_t typed;        /* gfns whose type was asked (the scan stops after the last RAM) */
    uint64_t busy_grants;  /* granted frames their grantee reads or writes right now */
    uint64_t types_ns, grants_ns, layouts_ns;  /* time in each phase */
};
/* Classify gfns 0..nr-1 into cls[nr] (nr at most XN_MIG_GFN_LIMIT, else -E2BIG).  probe_ms > 0 (at most
 * XN_MIG_PROBE_MAX_MS) pauses the domain that long and also marks frames that
 * changed meanwhile; record_path is then required (else -EINVAL): a batch
 * record kept for that pause, as xn_mig_move's, so a process killed during
 * the probe leaves the domain recoverable by xn_mig_recover.  Without a probe,
 * record_path is not used (NULL or anything). */
#define XN_MIG_PROBE_MAX_MS 60000
int xn_mig_scan(xn_handle *h, uint32_t domid, uint64_t nr, uint8_t *cls, uint32_t probe_ms,
                const char *record_path, struct xn_mig_scan_stats *stats);
/* The same scan of the domain's gfns (0 .. xn_mig_max_gfn, -E2BIG past the bound) into a
 * map it sizes itself, by what it classifies: the gfns typed (up to the last RAM page) and
 * the toolstack's magic pages.  The highest gfn a guest's p2m maps (a high MMIO or foreign
 * mapping) may lie far past its RAM, so a byte per gfn up to it could be gigabytes for a
 * guest of a few GiB.  0: *cls (malloc'd; xn_mig_map_free frees it) holds *nr classes, and every
 * gfn from *nr up is XN_GFN_NOT_RAM; -errno: *cls NULL, *nr 0. */
int xn_mig_scan_map(xn_handle *h, uint32_t domid, uint32_t probe_ms, const char *record_path, uint8_t **cls,
                    uint64_t *nr, struct xn_mig_scan_stats *stats);
void xn_mig_map_free(uint8_t *cls);
/* Pure: what a 4 KiB page looks like (XN_GFN_RAM, _VCPU_INFO or _EVTCHN). */
int xn_page_layout(const uint8_t *page);

/* Where a batch stopped (xn_mig_result.stage). */
#define XN_MIG_STAGE_NONE 0
#define XN_MIG_STAGE_COPY_OUT 1
#define XN_MIG_STAGE_RELEASE 2
#define XN_MIG_STAGE_VERIFY 3
#define XN_MIG_STAGE_POPULATE 4
#define XN_MIG_STAGE_COPY_BACK 5
#define XN_MIG_STAGE_UNPAUSE 6
#define XN_MIG_STAGE_DONE 7

struct xn_mig_result {
    uint64_t released;     /* gfns whose old frames were given back */
    uint64_t moved;        /* of those, now backed on the target node */
    uint64_t fallback;     /* of those, backed elsewhere (target short, or after a failure) */
    uint64_t lost;         /* of those, left unbacked: must be 0 */
    uint64_t superpages;   /* 2 MiB extents populated on the target */
    uint64_t not_freed;    /* frames a release did not free: something still references them */
    uint64_t stuck_first;  /* index in the batch of the chunk holding them ... */
    uint64_t stuck_count;  /* ... and its length */
    uint64_t raised_max;   /* pages max_pages was raised by to back every gfn again (then set back) */
    uint64_t pause_ns;     /* how long the domain was paused */
    int32_t stage;         /* XN_MIG_STAGE_* reached (DONE on success) */
    int32_t error;         /* -errno of the failure, 0 */
    uint64_t granted;      /* gfns left where they were: granted to another domain at the pause,
                              or given back by the guest since the scan (no longer populated) */
    uint64_t recognised;   /* gfns left where they were: at the pause their contents
                              were a page Xen keeps mapped (a vcpu_info, an event-channel page)
                              that the scan had not seen as one */
    uint64_t max_restored; /* xn_mig_recover: the toolstack's max_pages (pages), set again from
                              a raise a dead mover (or recoverer) left in force; 0: none was */
    uint32_t max_unknown;  /* xn_mig_recover: 1 when the record predates raises being recorded
                              (version 3 or 4) and its batch was past the copy, where one may
                              have been in force: max_pages is left as it is */
    uint32_t reserved;
};

#define XN_MIG_ALLOW_FALLBACK 0x1       /* target short: put the rest anywhere, not an error */
#define XN_MIG_FAULT_AFTER_RELEASE 0x100 /* tests: fail right after the release, as a populate would */
#define XN_MIG_FAULT_DIE_AFTER_RELEASE 0x200 /* tests: the process exits there (needs a record) */
#define XN_MIG_FAULT_DIE_AFTER_UNPAUSE 0x400 /* tests: exits after the unpause, the record not yet removed */
#define XN_MIG_FAULT_COPY_BACK 0x800 /* tests: the copy back fails, as a refused mapping would */

/*
 * Move gfns[0..n) (ascending, from xn_mig_scan's XN_GFN_RAM) to `node`, in
 * one pause window: leave out those the guest grants to another domain by
 * then (res->granted: a backend may copy into them while the guest is
 * paused, and that copy would be lost) or gave back since the scan (a balloon
 * driver: Xen types them not populated; counted in res->granted too), and those that look by
 * then like a page Xen keeps mapped (res->recognised), copy out, release in chunks of
 * verify_chunk pages checking each was really freed (stopping at the first that was not),
 * repopulate (order 9 for whole aligned runs), copy back, unpause.  Signals
 * are held off meanwhile.  The domain is unpaused on every path but two: when
 * the contents could not be put back (res->lost: a released gfn left without
 * a frame, or the copy back failed) and there is a record, the domain stays
 * paused and the record is kept, unlocked, for xn_mig_recover to finish (it
 * would otherwise run on missing or zeroed memory); and when the unpause
 * itself fails (tried three times; stage XN_MIG_STAGE_UNPAUSE), the record is
 * kept for xn_mig_recover to give the pause back.
 * record_path (required: -EINVAL without, as a kill in the pause window
 * would leave the guest paused with nothing knowing): a file on tmpfs that holds the saved contents and
 * how far the batch got (written before each step, the pause included),
 * locked by this process while it lives, removed when it is over; if the
 * process dies, xn_mig_recover puts the guest back together from it.
 * Returns 0 or the -errno also left in res->error; before any pause also
 * -EINVAL (gfns not ascending, no record, `node` not the host's), -EBUSY (a live mover holds that record), -EEXIST (a dead mover's record
 * awaits xn_mig_recover), -ENOSPC (no room for the record).
 */
int xn_mig_move(xn_handle *h, uint32_t domid, const uint64_t *gfns, uint32_t n, uint32_t node,
                uint32_t verify_chunk, uint32_t flags, const char *record_path, struct xn_mig_result *out);
/* xn_mig_move of the domain whose handle (xl's UUID, 16 bytes) is `handle`: -ESTALE
 * before any pause, nothing moved, if domid is another domain's now (destroyed and its
 * domid given again since the caller looked), -ESRCH if it is dying.  Checked once the
 * batch is mapped: the mapping holds the domain's pages, and with them its domid. */
int xn_mig_move_as(xn_handle *h, uint32_t domid, const uint8_t *handle, const uint64_t *gfns, uint32_t n,
                   uint32_t node, uint32_t verify_chunk, uint32_t flags, const char *record_path,
                   struct xn_mig_result *out);
/* After a mover died: back released gfns (any node), copy the saved contents
 * back, give back its pause -- never twice, and never someone else's: a record
 * saying the unpause was done, or may have been done while the domain is no
 * longer paused, is only removed; and a pause is given back only if the
 * guest has not run since the mover's pause (its vCPUs' total run time, kept
 * in the record, has not moved: a pause held after the guest ran is another
 * party's).  What remains ambiguous is said in pagerecover.c.  1: unpaused; 0: nothing to do (record removed, if any);
 * XN_MIG_RECOVERED_GONE: the record's domain no longer exists, or its domid
 * names another domain now (by the handle the record keeps) (removed);
 * -EBUSY: its mover is alive (record untouched); -EPROTO: not a record of
 * ours; other -errno (the record is kept if it holds data the guest needs).
 * XN_MIG_RECOVERED_RUNNING: the batch had not put every page's contents back
 * but the guest ran since the mover's pause (someone unpaused it; it may be
 * paused again by someone else, whose pause is left alone) or is not paused:
 * only the gfns without a frame were backed and given their saved contents
 * (out->fallback of them), the others keep what the guest has, as the copy
 * may be older; record removed. */
#define XN_MIG_RECOVERED_GONE 2
#define XN_MIG_RECOVERED_RUNNING 3
int xn_mig_recover(xn_handle *h, const char *record_path, struct xn_mig_result *out);
/* Does a live mover hold the record at record_path (its lock)?  1 yes, 0 no, -errno. */
int xn_mig_record_busy(const char *record_path);

/*
 * vNUMA: a domain's virtual NUMA layout, as toolstacks that build domains
 * themselves (xenopsd) need it; set before the domain first runs.  vnode v
 * sits on pnode vnode_to_pnode[v]; ranges[] are the guest-physical byte ranges
 * [start, end) of each vnode (a vnode may have several, e.g. around the MMIO
 * hole); vdistance is nr_vnodes x nr_vnodes, row-major; vcpu_to_vnode has
 * nr_vcpus entries.  xn_vnuma_check validates a layout without Xen: 0, or
 * -EINVAL for no vnode or more than 32 (Xen 4.17 keeps the distances in one
 * page), more than 170 ranges (the same for the ranges), a vnode without
 * memory or vCPU, a range empty, not page-aligned, unsorted or overlapping,
 * or an index out of range.  xn_domain_setvnuma checks the same, and what
 * needs Xen: every vnode_to_pnode entry is one of the host's online nodes
 * (xn_node_check: -EINVAL), and nr_vcpus is the domain's maximum number of
 * vCPUs (max_vcpu_id + 1, as Xen requires: -EINVAL), then calls
 * xc_domain_setvnuma.
 */
struct xn_vmemrange {
    uint64_t start, end;
    uint32_t vnode;
};
int xn_vnuma_check(uint32_t nr_vnodes, uint32_t nr_ranges, const struct xn_vmemrange *ranges,
                   uint32_t nr_vcpus, const uint32_t *vdistance, const uint32_t *vcpu_to_vnode);
int xn_domain_setvnuma(xn_handle *h, uint32_t domid, uint32_t nr_vnodes, uint32_t nr_ranges,
                       const struct xn_vmemrange *ranges, uint32_t nr_vcpus, const uint32_t *vdistance,
                       const uint32_t *vcpu_to_vnode, const uint32_t *vnode_to_pnode);
/* The domain's vNUMA layout as Xen holds it (XENMEM_get_vnumainfo); Xen does not
 * say which pnode backs a vnode (debug key 'u' does).  On entry *nr_vnodes,
 * *nr_ranges and *nr_vcpus are the room in ranges[], vcpu_to_vnode[] and
 * vdistance[] (nr_vnodes squared); on return, the domain's counts.  0: filled;
 * -ENOBUFS: too little room, nothing filled, the counts say how much is needed
 * (the expected answer to a first call with all counts 0, arrays NULL: the
 * answer libxl 4.17 treats as fatal); -EAGAIN: the layout changed between two
 * looks, ask again; -EOPNOTSUPP: the domain has no vNUMA layout; other -errno. */
int xn_domain_getvnuma(xn_handle *h, uint32_t domid, uint32_t *nr_vnodes, uint32_t *nr_ranges, uint32_t *nr_vcpus,
                       struct xn_vmemrange *ranges, uint32_t *vdistance, uint32_t *vcpu_to_vnode);

/* CPU pools: the id of the next pool from first_pool on (-ENOENT past the last one),
 * with its CPUs in cpumap (xn_cpumap_bytes() bytes).  A domain's vCPUs run only
 * on the CPUs of its pool, whatever their affinity says. */
int xn_cpupool_next(xn_handle *h, uint32_t first_pool, uint32_t *pool_id, uint8_t *cpumap);

/* The online CPUs in no pool, in cpumap (xn_cpumap_bytes() bytes).  With the pools'
 * CPUs they are the online ones: a parked CPU (smt=0, xen-hptool cpu-offline), which
 * Xen's cputopoinfo still gives its node, is in neither. */
int xn_cpupool_free_cpus(xn_handle *h, uint8_t *cpumap);

#endif
