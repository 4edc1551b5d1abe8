/* OCaml stubs over libxenuma: domains, vCPUs, affinity, pausing, claims and pages per node.
 * Their conventions, and what every file shares: xenuma_stubs.c, xenuma_stubs.h. */
#include "xenuma_stubs.h"

#include <pthread.h>

#define DUMP_BYTES (4u << 20)

/* --- domains and vCPUs ------------------------------------------------------------------ */

CAMLprim value stub_xenuma_domains(value handle)
{
    CAMLparam1(handle);
    CAMLlocal4(result, dom, uuid, owner);
    xn_handle *h = handle_of(&handle);
    enum { CHUNK = 256 };
    struct xn_domain *all = NULL;
    uint32_t next = 0;
    int total = 0, got, i;

    owner = owned_new();
    /* one call in flight for every chunk: a [close] meanwhile takes effect after the last */
    call_begin(handle);
    for (;;) {
        struct xn_domain *grown = realloc(all, (size_t)(total + CHUNK) * sizeof(*all));
        if (!grown) {
            got = -ENOMEM;
            break;
        }
        all = grown;
        got = xn_domains(h, next, CHUNK, all + total);
        if (got < 0)
            break;
        total += got;
        if (got < CHUNK)
            break;
        next = all[total - 1].domid + 1;
    }
    call_end(handle);
    Owned(owner)->p[0] = all; /* grown outside the lock: handed over before any allocation */
    if (got < 0 || total == 0) {
        owned_free(owner);
        check(got, "xn_domains");
        CAMLreturn(Atom(0));
    }
    result = caml_alloc_tuple((mlsize_t)total);
    for (i = 0; i < total; i++) {
        uuid = caml_alloc_string(16);
        memcpy((char *)Bytes_val(uuid), all[i].handle, 16);
        dom = caml_alloc_tuple(9);
        Store_field(dom, 0, Val_int(all[i].domid));
        Store_field(dom, 1, Val_int(all[i].flags));
        Store_field(dom, 2, caml_copy_int64((int64_t)all[i].tot_pages));
        Store_field(dom, 3, caml_copy_int64((int64_t)all[i].max_pages));
        Store_field(dom, 4, caml_copy_int64((int64_t)all[i].outstanding_pages));
        Store_field(dom, 5, Val_int(all[i].nr_online_vcpus));
        /* XEN_INVALID_MAX_VCPU_ID (~0U): no vCPU yet; -1, so that 0 .. max_vcpu_id is empty */
        Store_field(dom, 6, Val_int(all[i].max_vcpu_id == ~0u ? -1 : (intnat)all[i].max_vcpu_id));
        Store_field(dom, 7, Val_int(all[i].cpupool));
        Store_field(dom, 8, uuid);
        Store_field(result, i, dom);
    }
    owned_free(owner);
    CAMLreturn(result);
}

CAMLprim value stub_xenuma_vcpu_info(value handle, value domid, value vcpu)
{
    CAMLparam3(handle, domid, vcpu);
    CAMLlocal1(r);
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_vcpu_info: domid"), v = u32_arg(vcpu, VCPU_MAX, "xn_vcpu_info: vcpu");
    xn_handle *h = handle_of(&handle);
    struct xn_vcpu info;
    int rc;

    call_begin(handle);
    rc = xn_vcpu_info(h, d, v, &info);
    call_end(handle);
    check(rc, rc == -ESRCH ? "xn_vcpu_info: no such domain or vCPU"
              : rc == -EINVAL ? "xn_vcpu_info: a vCPU beyond the domain's" : "xn_vcpu_info");
    r = caml_alloc_tuple(5);
    Store_field(r, 0, Val_bool(info.online));
    Store_field(r, 1, Val_bool(info.blocked));
    Store_field(r, 2, Val_bool(info.running));
    Store_field(r, 3, Val_int(info.cpu));
    Store_field(r, 4, caml_copy_int64((int64_t)info.cpu_time_ns));
    CAMLreturn(r);
}

/* A bitmap of `bytes` bytes as a bool array of bytes*8 entries. */
static value bools_of_map(const uint8_t *map, int bytes)
{
    CAMLparam0();
    CAMLlocal1(a);
    int i;

    if (bytes <= 0)
        CAMLreturn(Atom(0));
    a = caml_alloc_tuple((mlsize_t)bytes * 8);
    for (i = 0; i < bytes * 8; i++)
        Store_field(a, i, Val_bool(map[i / 8] >> (i % 8) & 1));
    CAMLreturn(a);
}

/* A bool array copied out of the OCaml heap, for a call outside the runtime
 * lock: a bitmap of its own length, and one past its last true entry. */
struct bits {
    uint8_t *map; /* NULL: none given */
    size_t bytes;
    size_t top;
};

static int bits_of_bools(value a, struct bits *b)
{
    mlsize_t i, n = Wosize_val(a);

    b->bytes = n / 8 + 1;
    b->top = 0;
    b->map = calloc(1, b->bytes);
    if (!b->map)
        return -ENOMEM;
    for (i = 0; i < n; i++)
        if (Bool_val(Field(a, i))) {
            b->map[i / 8] |= (uint8_t)(1u << (i % 8));
            b->top = i + 1;
        }
    return 0;
}

/* The sizes of libxc's CPU and node maps, in bytes.  libxc keeps them
 * (xc_get_max_cpus, xc_get_max_nodes) in statics of its own, filled by a
 * physinfo hypercall at the first call: so the first asker makes a hypercall,
 * which may block (it runs outside the runtime lock, as every call into Xen),
 * and those statics are written without synchronisation.  The stubs ask libxc
 * once, under map_sizes_lock, so that a second asker waits for that answer
 * instead of writing libxc's static at the same time; the answer is published
 * here (release) and read (acquire) by every later call, so libxc's static is
 * written before any stub call reads it (the affinity calls read it through
 * libxc's map allocators, and ask here first).  A failure is not kept: the
 * next call asks again.  Outside the runtime lock; no OCaml value touched. */
static pthread_mutex_t map_sizes_lock = PTHREAD_MUTEX_INITIALIZER;
static int cpumap_size, nodemap_size; /* 0 until known */

static int map_bytes(xn_handle *h, int *known, int (*ask)(xn_handle *))
{
    int bytes = __atomic_load_n(known, __ATOMIC_ACQUIRE);

    if (bytes > 0)
        return bytes;
    pthread_mutex_lock(&map_sizes_lock);
    bytes = __atomic_load_n(known, __ATOMIC_ACQUIRE); /* another asker may have been first */
    if (bytes <= 0) {
        bytes = ask(h);
        if (bytes > 0)
            __atomic_store_n(known, bytes, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&map_sizes_lock);
    return bytes;
}

static int cpumap_bytes(xn_handle *h)
{
    return map_bytes(h, &cpumap_size, xn_cpumap_bytes);
}

static int nodemap_bytes(xn_handle *h)
{
    return map_bytes(h, &nodemap_size, xn_nodemap_bytes);
}

/* Outside the runtime lock: libxc's CPU map size and how many CPUs the host
 * has: max_cpu_id + 1, hotplug CPUs included (Xen sets them in an unpinned
 * vCPU's hard map).  The map is whole bytes, so it has room for entries past
 * the host's, which Xen would drop without a word.  (Nodes are not counted
 * this way: physinfo's max_node_id is 63 on Xen 4.17 whatever the host has;
 * see node_affinity_set_checked.) */
static int host_cpu_map(xn_handle *h, int *bytes, uint32_t *count)
{
    struct xn_physinfo p;
    int rc;

    *bytes = cpumap_bytes(h);
    if (*bytes < 0)
        return *bytes;
    if ((rc = xn_physinfo(h, &p)) < 0)
        return rc;
    *count = p.max_cpu_id + 1;
    if (*count > (uint32_t)*bytes * 8)
        *count = (uint32_t)*bytes * 8; /* what fits: every entry the map can take is the host's */
    return 0;
}

/* Outside the runtime lock: b as libxc's map of `bytes` bytes, or -EINVAL if it
 * sets an entry at or past `count` (then past the host's). */
static int bits_fit(struct bits *b, int bytes, uint32_t count)
{
    uint8_t *map;

    if (!b->map)
        return 0;
    if (b->top > count)
        return -EINVAL;
    map = calloc(1, (size_t)bytes);
    if (!map)
        return -ENOMEM;
    memcpy(map, b->map, b->bytes < (size_t)bytes ? b->bytes : (size_t)bytes); /* all set bits: top <= bytes * 8 */
    free(b->map);
    b->map = map;
    b->bytes = (size_t)bytes;
    return 0;
}

/* Outside the runtime lock: the map size (*bytes, negative if that failed),
 * then the hard and soft maps, one after the other in *maps (NULL, and
 * nothing held, on failure). */
static int vcpu_affinity_read(xn_handle *h, uint32_t domid, uint32_t vcpu, int *bytes, uint8_t **maps)
{
    int rc;

    *maps = NULL;
    if ((*bytes = cpumap_bytes(h)) < 0)
        return *bytes;
    if (!(*maps = calloc(2, (size_t)*bytes)))
        return -ENOMEM;
    if ((rc = xn_vcpu_get_affinity(h, domid, vcpu, *maps, *maps + *bytes)) < 0) {
        free(*maps);
        *maps = NULL;
    }
    return rc;
}

CAMLprim value stub_xenuma_vcpu_affinity(value handle, value domid, value vcpu)
{
    CAMLparam3(handle, domid, vcpu);
    CAMLlocal4(r, hard_v, soft_v, owner);
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_vcpu_get_affinity: domid");
    uint32_t v = u32_arg(vcpu, VCPU_MAX, "xn_vcpu_get_affinity: vcpu");
    xn_handle *h = handle_of(&handle);
    int bytes = 0, rc;
    uint8_t *maps;

    owner = owned_new();
    call_begin(handle);
    rc = vcpu_affinity_read(h, d, v, &bytes, &maps);
    call_end(handle);
    Owned(owner)->p[0] = maps; /* allocated outside the lock: handed over before any allocation */
    check(rc, bytes < 0 ? "xn_cpumap_bytes" : "xn_vcpu_get_affinity");
    hard_v = bools_of_map(maps, bytes);
    soft_v = bools_of_map(maps + bytes, bytes);
    owned_free(owner);
    r = caml_alloc_tuple(2);
    Store_field(r, 0, hard_v);
    Store_field(r, 1, soft_v);
    CAMLreturn(r);
}

/* Outside the runtime lock: the map size (*bytes, negative if that failed),
 * then the online CPUs in *map: the free ones and those of every CPU pool,
 * read from pool 0 on until -ENOENT (NULL, and nothing held, on failure;
 * *what names the call that failed).  A parked CPU is in neither. */
static int online_cpus_read(xn_handle *h, int *bytes, uint8_t **map, const char **what)
{
    uint8_t *pool_map;
    uint32_t first = 0, pool = 0;
    int rc, i;

    *map = NULL;
    *what = "xn_cpumap_bytes";
    if ((*bytes = cpumap_bytes(h)) < 0)
        return *bytes;
    *what = "xn_cpupool_free_cpus";
    if (!(*map = calloc(2, (size_t)*bytes))) /* the answer, then one pool's map */
        return -ENOMEM;
    pool_map = *map + *bytes;
    if ((rc = xn_cpupool_free_cpus(h, *map)) == 0) {
        *what = "xn_cpupool_next";
        while ((rc = xn_cpupool_next(h, first, &pool, pool_map)) == 0) {
            for (i = 0; i < *bytes; i++)
                (*map)[i] |= pool_map[i];
            if (pool == U32_MAX)
                break; /* no id after it: pool + 1 would wrap to 0 and read the pools again */
            first = pool + 1;
        }
        if (rc == -ENOENT) /* past the last pool */
            rc = 0;
    }
    if (rc < 0) {
        free(*map);
        *map = NULL;
    }
    return rc;
}

/* The online CPUs as a bool array (one entry per CPU the map holds). */
CAMLprim value stub_xenuma_online_cpus(value handle)
{
    CAMLparam1(handle);
    CAMLlocal2(r, owner);
    xn_handle *h = handle_of(&handle);
    const char *what = "xn_cpupool_free_cpus";
    int bytes = 0, rc;
    uint8_t *map;

    owner = owned_new();
    call_begin(handle);
    rc = online_cpus_read(h, &bytes, &map, &what);
    call_end(handle);
    Owned(owner)->p[0] = map; /* allocated outside the lock: handed over before any allocation */
    check(rc, what);
    r = bools_of_map(map, bytes);
    owned_free(owner);
    CAMLreturn(r);
}

/* Outside the runtime lock: refuse a CPU beyond the host's, then set. */
static int vcpu_set_affinity_checked(xn_handle *h, uint32_t domid, uint32_t vcpu, struct bits *hard,
                                     struct bits *soft)
{
    uint32_t cpus = 0;
    int bytes = 0, rc;

    if ((rc = host_cpu_map(h, &bytes, &cpus)) < 0 || (rc = bits_fit(hard, bytes, cpus)) < 0 ||
        (rc = bits_fit(soft, bytes, cpus)) < 0)
        return rc;
    return xn_vcpu_set_affinity(h, domid, vcpu, hard->map, soft->map);
}

/* hard and soft: bool array option each (None leaves it alone). */
CAMLprim value stub_xenuma_set_vcpu_affinity(value handle, value domid, value vcpu, value hard_opt,
                                             value soft_opt)
{
    CAMLparam5(handle, domid, vcpu, hard_opt, soft_opt);
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_vcpu_set_affinity: domid");
    uint32_t v = u32_arg(vcpu, VCPU_MAX, "xn_vcpu_set_affinity: vcpu");
    xn_handle *h = handle_of(&handle);
    struct bits hard = { NULL, 0, 0 }, soft = { NULL, 0, 0 };
    int rc = 0;

    if (Is_block(hard_opt))
        rc = bits_of_bools(Field(hard_opt, 0), &hard);
    if (rc == 0 && Is_block(soft_opt))
        rc = bits_of_bools(Field(soft_opt, 0), &soft);
    if (rc == 0) {
        call_begin(handle);
        rc = vcpu_set_affinity_checked(h, d, v, &hard, &soft);
        call_end(handle);
    }
    free(hard.map);
    free(soft.map);
    check(rc, rc == -EINVAL ? "xn_vcpu_set_affinity: a CPU beyond the host's, or a map Xen refused"
                            : "xn_vcpu_set_affinity");
    CAMLreturn(Val_unit);
}

/* Outside the runtime lock: the map size (*bytes, negative if that failed),
 * then the map in *map (NULL, and nothing held, on failure). */
static int node_affinity_read(xn_handle *h, uint32_t domid, int *bytes, uint8_t **map)
{
    int rc;

    *map = NULL;
    if ((*bytes = nodemap_bytes(h)) < 0)
        return *bytes;
    if (!(*map = calloc(1, (size_t)*bytes)))
        return -ENOMEM;
    if ((rc = xn_node_affinity_get(h, domid, *map)) < 0) {
        free(*map);
        *map = NULL;
    }
    return rc;
}

CAMLprim value stub_xenuma_node_affinity(value handle, value domid)
{
    CAMLparam2(handle, domid);
    CAMLlocal2(r, owner);
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_node_affinity_get: domid");
    xn_handle *h = handle_of(&handle);
    int bytes = 0, rc;
    uint8_t *map;

    owner = owned_new();
    call_begin(handle);
    rc = node_affinity_read(h, d, &bytes, &map);
    call_end(handle);
    Owned(owner)->p[0] = map; /* allocated outside the lock: handed over before any allocation */
    check(rc, bytes < 0 ? "xn_nodemap_bytes" : "xn_node_affinity_get");
    r = bools_of_map(map, bytes);
    owned_free(owner);
    CAMLreturn(r);
}

/* Is every entry of libxc's node map (`bytes` of it: all of MAX_NUMNODES) set?
 * That map is Xen's "no node affinity" (automatic), not a list of nodes. */
static int every_node(const struct bits *b, int bytes)
{
    int i;

    if (b->bytes < (size_t)bytes)
        return 0;
    for (i = 0; i < bytes; i++)
        if (b->map[i] != 0xff)
            return 0;
    return 1;
}

/* Outside the runtime lock: refuse a node the host lacks, then set.  Each node
 * named is one of the host's online nodes (xn_node_check), not merely below
 * max_node_id + 1, which Xen 4.17 reports as 64 whatever the host has. */
static int node_affinity_set_checked(xn_handle *h, uint32_t domid, struct bits *nodes)
{
    int bytes = nodemap_bytes(h), rc;
    uint32_t i;

    if (bytes < 0)
        return bytes;
    for (i = 0; !every_node(nodes, bytes) && i < nodes->top; i++)
        if ((nodes->map[i / 8] >> (i % 8)) & 1 && (rc = xn_node_check(h, i)) < 0)
            return rc;
    if ((rc = bits_fit(nodes, bytes, (uint32_t)bytes * 8)) < 0)
        return rc;
    return xn_node_affinity_set(h, domid, nodes->map);
}

CAMLprim value stub_xenuma_set_node_affinity(value handle, value domid, value nodes)
{
    CAMLparam3(handle, domid, nodes);
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_node_affinity_set: domid");
    xn_handle *h = handle_of(&handle);
    struct bits map = { NULL, 0, 0 };
    int rc = bits_of_bools(nodes, &map);

    if (rc == 0) {
        call_begin(handle);
        rc = node_affinity_set_checked(h, d, &map);
        call_end(handle);
    }
    free(map.map);
    check(rc, rc == -EINVAL ? "xn_node_affinity_set: a node beyond the host's, or a map Xen refused"
                            : "xn_node_affinity_set");
    CAMLreturn(Val_unit);
}

CAMLprim value stub_xenuma_pause(value handle, value domid, value pause)
{
    CAMLparam3(handle, domid, pause);
    uint32_t d = u32_arg(domid, DOMID_MAX, Bool_val(pause) ? "xn_pause: domid" : "xn_unpause: domid");
    xn_handle *h = handle_of(&handle);
    int p = Bool_val(pause), rc;

    call_begin(handle);
    rc = p ? xn_pause(h, d) : xn_unpause(h, d);
    call_end(handle);
    check(rc, p ? "xn_pause" : "xn_unpause");
    CAMLreturn(Val_unit);
}

/* Outside the runtime lock: the claim, and what its EINVAL meant (*what).  Xen's
 * XENMEM_claim_pages answers EINVAL for a domain that does not exist, as for a claim
 * it refuses (one held already, not above the domain's current pages, or above its maximum), and
 * xn_claim for a node the host lacks: a missing domain is ESRCH here, as every other
 * call (and the Python adapter's claim) says it. */
static int claim_explained(xn_handle *h, uint32_t domid, uint32_t node, uint64_t pages, const char **what)
{
    struct xn_domain found;
    int rc = xn_claim(h, domid, node, pages), n;

    *what = rc == -ENOMEM ? "xn_claim: not that much memory free"
            : node == ~0u ? "xn_claim (host-wide)" : "xn_claim (per node)";
    if (rc != -EINVAL)
        return rc;
    if (node != ~0u && xn_node_check(h, node) == -EINVAL) {
        *what = "xn_claim: not a node of the host's";
        return rc;
    }
    n = xn_domains(h, domid, 1, &found); /* the first domain from domid on */
    if (n == 0 || (n == 1 && found.domid != domid)) {
        *what = "xn_claim: no such domain";
        return -ESRCH;
    }
    if (n == 1 && found.outstanding_pages > 0) /* Xen takes one claim per domain */
        *what = "xn_claim: the domain holds a claim already (Xen keeps one per domain: a claim of 0 cancels it)";
    else
        *what = "xn_claim: Xen refused the claim (it must exceed the domain's current pages and not its maximum)";
    return rc;
}

/* node_opt: None for a host-wide claim (xn_claim's ~0u, which no node reaches: NODE_MAX). */
CAMLprim value stub_xenuma_claim(value handle, value domid, value node_opt, value pages)
{
    CAMLparam4(handle, domid, node_opt, pages);
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_claim: domid");
    uint32_t n = Is_block(node_opt) ? u32_arg(Field(node_opt, 0), NODE_MAX, "xn_claim: node") : ~0u;
    int64_t nr = Int64_val(pages);
    const char *what = "xn_claim";
    xn_handle *h;
    int rc;

    if (nr < 0)
        raise_error(-EINVAL, "xn_claim: a negative number of pages");
    h = handle_of(&handle);
    call_begin(handle);
    rc = claim_explained(h, d, n, (uint64_t)nr, &what);
    call_end(handle);
    check(rc, what);
    CAMLreturn(Val_unit);
}

CAMLprim value stub_xenuma_node_pages_native(value handle, value domid, value nr_nodes)
{
    CAMLparam3(handle, domid, nr_nodes);
    CAMLlocal1(r);
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_node_pages_native: domid");
    unsigned int n = u32_arg(nr_nodes, MAX_NODES, "xn_node_pages_native: nr_nodes"), i;
    xn_handle *h = handle_of(&handle);
    uint64_t pages[MAX_NODES];
    int rc;

    call_begin(handle);
    rc = xn_node_pages_native(h, d, n, pages);
    call_end(handle);
    check(rc, "xn_node_pages_native");
    r = caml_alloc_tuple(rc ? (mlsize_t)rc : 1);
    for (i = 0; i < (unsigned int)rc; i++)
        Store_field(r, i, caml_copy_int64((int64_t)pages[i]));
    if (rc == 0)
        CAMLreturn(Atom(0));
    CAMLreturn(r);
}

CAMLprim value stub_xenuma_udump_capture(value handle, value timeout_ms)
{
    CAMLparam2(handle, timeout_ms);
    CAMLlocal2(r, owner);
    unsigned int t = u32_arg(timeout_ms, DUMP_TIMEOUT_MAX_MS, "xn_udump_capture: timeout_ms");
    xn_handle *h = handle_of(&handle);
    size_t len = DUMP_BYTES;
    char *buf;
    int rc;

    owner = owned_new();
    buf = Owned(owner)->p[0] = malloc(len);
    if (!buf)
        raise_error(-ENOMEM, "xn_udump_capture");
    call_begin(handle);
    rc = xn_udump_capture(h, buf, &len, t);
    call_end(handle);
    /* Xen prints the dump within the key's hypercall: one larger than its console
     * ring has lost its head (the header and first domains) before any read, and
     * what is left would read as a dump without the domains asked about.  The
     * parser says so (ENODATA); dom0 is in every dump, so it is the one asked for. */
    if (rc == 0) {
        uint64_t node0, total;
        if (xn_udump_parse(buf, len, 0, 1, &node0, &total) == -ENODATA)
            rc = -ENODATA;
    }
    if (rc < 0) {
        owned_free(owner);
        raise_error(rc == -ENODATA ? -EAGAIN : rc,
                    rc == -EAGAIN    ? "xn_udump_capture: debug key 'u' printed nothing in time"
                    : rc == -ENODATA ? "xn_udump_capture: debug key 'u''s dump lost its head (larger than "
                                       "Xen's console ring: conring_size)"
                                     : "xn_udump_capture: debug key 'u'");
    }
    r = caml_alloc_initialized_string(len, buf);
    owned_free(owner);
    CAMLreturn(r);
}

/* Pure: (pages per node, total) of one domain in a capture. */
CAMLprim value stub_xenuma_udump_parse(value text, value domid, value nr_nodes)
{
    CAMLparam3(text, domid, nr_nodes);
    CAMLlocal2(r, pages_v);
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_udump_parse: domid");
    unsigned int n = u32_arg(nr_nodes, MAX_NODES, "xn_udump_parse: nr_nodes"), i;
    uint64_t pages[MAX_NODES], total = 0;
    int rc;

    if (n == 0)
        raise_error(-EINVAL, "xn_udump_parse: nr_nodes 0");
    rc = xn_udump_parse(String_val(text), caml_string_length(text), d, n, pages, &total);
    check(rc, "xn_udump_parse");
    pages_v = caml_alloc_tuple(n);
    for (i = 0; i < n; i++)
        Store_field(pages_v, i, caml_copy_int64((int64_t)pages[i]));
    r = caml_alloc_tuple(2);
    Store_field(r, 0, pages_v);
    Store_field(r, 1, caml_copy_int64((int64_t)total));
    CAMLreturn(r);
}
