/*
 * OCaml stubs over libxenuma (../libxenuma/src/libxenuma.h), for xenopsd.
 *
 * Conventions (those of xen-api's own C stubs):
 *  - the handle lives in a custom block whose finaliser closes it, so a
 *    handle dropped without [close] is not leaked; [close] is idempotent,
 *    and a [close] from one thread while another's call is in flight waits
 *    for that call to end before the handle is freed (see handle_box);
 *  - CAMLparam/CAMLlocal for every value held across an allocation;
 *  - OCaml arguments are copied to C before the runtime lock is released
 *    around any call into Xen (every one may block: hypercalls, page scans
 *    and moves, the console-ring capture), and no OCaml value is touched
 *    until it is taken back;
 *  - a failure is raised once, as the registered exception Xenuma.Error
 *    (Unix.error, context); xenuma.ml wraps into result what a caller must
 *    decide about (ENOSYS/EOPNOTSUPP for a call the hypervisor lacks).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <caml/alloc.h>
#include <caml/callback.h>
#include <caml/custom.h>
#include <caml/fail.h>
#include <caml/memory.h>
#include <caml/mlvalues.h>
#include <caml/signals.h>
#include <caml/unixsupport.h>

#include "libxenuma.h"

#define MAX_NODES 64u
#define MAX_CPUS 4096u
#define DUMP_BYTES (4u << 20)

/* --- errors ----------------------------------------------------------------------------- */

/* Raise Xenuma.Error (errno of a -errno return, context); never returns. */
static void raise_error(int rc, const char *context)
{
    CAMLparam0();
    CAMLlocal2(err, ctx);
    const value *exn = caml_named_value("Xenuma.Error");

    err = unix_error_of_code(rc < 0 ? -rc : rc);
    ctx = caml_copy_string(context);
    if (!exn)
        caml_failwith(context); /* Xenuma not initialised: cannot happen from OCaml code */
    {
        value args[2];
        args[0] = err;
        args[1] = ctx;
        caml_raise_with_args(*exn, 2, args);
    }
    CAMLnoreturn;
}

/* errno -> Unix.error, as the exceptions map it (the results' error fields too) */
value stub_xenuma_unix_error(value code)
{
    CAMLparam1(code);
    CAMLreturn(unix_error_of_code(Int_val(code)));
}

static void check(int rc, const char *context)
{
    if (rc < 0)
        raise_error(rc, context);
}

/* --- the handle ------------------------------------------------------------------------- */

/* The custom block's contents.  A call into Xen runs outside the runtime lock,
 * so another thread may call [close] meanwhile: [close] then only marks the
 * handle closed (later calls get EBADF) and the last call in flight closes it,
 * never freeing it under a call that is using it.  Every field is read and
 * written with the runtime lock held (before entering or after leaving a
 * blocking section), which serialises them without a mutex under OCaml 4's
 * one runtime lock (xenuma.opam asks for OCaml < 5).  The block itself may
 * move while a call is out (another thread's GC compacts the heap), so after
 * leaving a blocking section it is reached again through the stub's
 * registered root, never through a copy taken before (hence call_end is a
 * macro). */
struct handle_box {
    xn_handle *h;   /* NULL once closed */
    int in_flight;  /* calls outside the runtime lock now */
    int closing;    /* [close] was called while calls were in flight */
};

#define Box(v) ((struct handle_box *)Data_custom_val(v))
#define Handle_ptr(v) (Box(v)->h)

static void handle_finalize(value v)
{
    /* no call is in flight: each one keeps its handle value alive as a local root */
    xn_close(Handle_ptr(v)); /* NULL after [close]: xn_close ignores it */
    Handle_ptr(v) = NULL;
}

/* Release the runtime lock for a call on the handle, counting it in flight. */
static void call_begin(value v)
{
    Box(v)->in_flight++;
    caml_enter_blocking_section();
}

/* The call is back (runtime lock held): the last one in flight after a [close] closes it. */
static void call_done(struct handle_box *b)
{
    if (--b->in_flight == 0 && b->closing) {
        xn_handle *h = b->h;
        b->h = NULL;
        b->closing = 0;
        caml_enter_blocking_section();
        xn_close(h);
        caml_leave_blocking_section();
    }
}

/* `v` must be the stub's CAMLparam-registered handle, read after the lock is back. */
#define call_end(v) do { caml_leave_blocking_section(); call_done(Box(v)); } while (0)

static struct custom_operations handle_ops = {
    .identifier = "xapi-numa.xenuma.handle",
    .finalize = handle_finalize,
    .compare = custom_compare_default,
    .hash = custom_hash_default,
    .serialize = custom_serialize_default,
    .deserialize = custom_deserialize_default,
    .compare_ext = custom_compare_ext_default,
    .fixed_length = NULL,
};

static xn_handle *handle_of(value v)
{
    xn_handle *h = Handle_ptr(v);
    if (!h || Box(v)->closing)
        raise_error(-EBADF, "handle already closed");
    return h;
}

CAMLprim value stub_xenuma_open(value unit)
{
    CAMLparam1(unit);
    CAMLlocal1(result);
    xn_handle *h = NULL;
    int rc;

    caml_enter_blocking_section();
    rc = xn_open(&h);
    caml_leave_blocking_section();
    check(rc, "xn_open: opening the Xen control interface");
    result = caml_alloc_custom(&handle_ops, sizeof(struct handle_box), 0, 1);
    Box(result)->h = h;
    Box(result)->in_flight = 0;
    Box(result)->closing = 0;
    CAMLreturn(result);
}

CAMLprim value stub_xenuma_close(value handle)
{
    CAMLparam1(handle);
    struct handle_box *b = Box(handle);
    xn_handle *h = b->h;

    if (b->in_flight > 0) { /* another thread's call is using it: that call closes it */
        b->closing = 1;
        CAMLreturn(Val_unit);
    }
    b->h = NULL;
    caml_enter_blocking_section();
    xn_close(h);
    caml_leave_blocking_section();
    CAMLreturn(Val_unit);
}

/* --- host ------------------------------------------------------------------------------- */

CAMLprim value stub_xenuma_physinfo(value handle)
{
    CAMLparam1(handle);
    CAMLlocal1(r);
    xn_handle *h = handle_of(handle);
    struct xn_physinfo p;
    int rc;

    call_begin(handle);
    rc = xn_physinfo(h, &p);
    call_end(handle);
    check(rc, "xn_physinfo");
    r = caml_alloc_tuple(8);
    Store_field(r, 0, Val_int(p.nr_cpus));
    Store_field(r, 1, Val_int(p.nr_nodes));
    Store_field(r, 2, Val_int(p.threads_per_core));
    Store_field(r, 3, Val_int(p.cores_per_socket));
    Store_field(r, 4, caml_copy_int64((int64_t)p.total_pages));
    Store_field(r, 5, caml_copy_int64((int64_t)p.free_pages));
    Store_field(r, 6, caml_copy_int64((int64_t)p.outstanding_pages));
    Store_field(r, 7, Val_int(p.sched_id));
    CAMLreturn(r);
}

/* (size, free) per node in bytes, and the distance matrix. */
CAMLprim value stub_xenuma_numainfo(value handle)
{
    CAMLparam1(handle);
    CAMLlocal5(result, mem, row, dists, node);
    xn_handle *h = handle_of(handle);
    uint64_t size[MAX_NODES], free_bytes[MAX_NODES];
    uint32_t dist[MAX_NODES * MAX_NODES];
    unsigned int n = MAX_NODES, i, j;
    int rc;

    call_begin(handle);
    rc = xn_numainfo(h, &n, size, free_bytes, dist);
    call_end(handle);
    check(rc, "xn_numainfo");
    mem = caml_alloc_tuple(n ? n : 1);
    dists = caml_alloc_tuple(n ? n : 1);
    for (i = 0; i < n; i++) {
        node = caml_alloc_tuple(2);
        Store_field(node, 0, caml_copy_int64((int64_t)size[i]));
        Store_field(node, 1, caml_copy_int64((int64_t)free_bytes[i]));
        Store_field(mem, i, node);
        row = caml_alloc_tuple(n);
        for (j = 0; j < n; j++)
            Store_field(row, j, Val_int(dist[i * n + j]));
        Store_field(dists, i, row);
    }
    result = caml_alloc_tuple(3);
    Store_field(result, 0, Val_int(n));
    Store_field(result, 1, mem);
    Store_field(result, 2, dists);
    CAMLreturn(result);
}

/* Per CPU (core, socket, node); -1 for an offline CPU. */
CAMLprim value stub_xenuma_cputopo(value handle)
{
    CAMLparam1(handle);
    CAMLlocal2(result, cpu);
    xn_handle *h = handle_of(handle);
    uint32_t *core = malloc(MAX_CPUS * sizeof(uint32_t)), *socket = malloc(MAX_CPUS * sizeof(uint32_t)),
             *node = malloc(MAX_CPUS * sizeof(uint32_t));
    unsigned int n = MAX_CPUS, i;
    int rc = core && socket && node ? 0 : -ENOMEM;

    if (rc == 0) {
        call_begin(handle);
        rc = xn_cputopo(h, &n, core, socket, node);
        call_end(handle);
    }
    if (rc < 0) {
        free(core); free(socket); free(node);
        raise_error(rc, "xn_cputopo");
    }
    result = caml_alloc_tuple(n ? n : 1);
    for (i = 0; i < n; i++) {
        cpu = caml_alloc_tuple(3);
        Store_field(cpu, 0, Val_int(core[i] == ~0u ? -1 : (int)core[i]));
        Store_field(cpu, 1, Val_int(socket[i] == ~0u ? -1 : (int)socket[i]));
        Store_field(cpu, 2, Val_int(node[i] == ~0u ? -1 : (int)node[i]));
        Store_field(result, i, cpu);
    }
    free(core); free(socket); free(node);
    if (n == 0)
        CAMLreturn(Atom(0));
    CAMLreturn(result);
}

/* --- domains and vCPUs ------------------------------------------------------------------ */

CAMLprim value stub_xenuma_domains(value handle)
{
    CAMLparam1(handle);
    CAMLlocal3(result, dom, uuid);
    xn_handle *h = handle_of(handle);
    enum { CHUNK = 256 };
    struct xn_domain *all = NULL;
    uint32_t next = 0;
    int total = 0, got, i;

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
    if (got < 0) {
        free(all);
        raise_error(got, "xn_domains");
    }
    result = caml_alloc_tuple(total ? (mlsize_t)total : 1);
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
        Store_field(dom, 6, Val_int(all[i].max_vcpu_id));
        Store_field(dom, 7, Val_int(all[i].cpupool));
        Store_field(dom, 8, uuid);
        Store_field(result, i, dom);
    }
    free(all);
    if (total == 0)
        CAMLreturn(Atom(0));
    CAMLreturn(result);
}

CAMLprim value stub_xenuma_vcpu_info(value handle, value domid, value vcpu)
{
    CAMLparam3(handle, domid, vcpu);
    CAMLlocal1(r);
    xn_handle *h = handle_of(handle);
    uint32_t d = (uint32_t)Int_val(domid), v = (uint32_t)Int_val(vcpu);
    struct xn_vcpu info;
    int rc;

    call_begin(handle);
    rc = xn_vcpu_info(h, d, v, &info);
    call_end(handle);
    check(rc, "xn_vcpu_info");
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

/* A bool array into a zeroed bitmap of `bytes` bytes; entries beyond it must be false. */
static int map_of_bools(value a, uint8_t *map, int bytes)
{
    mlsize_t i, n = Wosize_val(a);

    memset(map, 0, (size_t)bytes);
    for (i = 0; i < n; i++)
        if (Bool_val(Field(a, i))) {
            if (i >= (mlsize_t)bytes * 8)
                return -EINVAL;
            map[i / 8] |= (uint8_t)(1u << (i % 8));
        }
    return 0;
}

CAMLprim value stub_xenuma_vcpu_affinity(value handle, value domid, value vcpu)
{
    CAMLparam3(handle, domid, vcpu);
    CAMLlocal3(r, hard_v, soft_v);
    xn_handle *h = handle_of(handle);
    uint32_t d = (uint32_t)Int_val(domid), v = (uint32_t)Int_val(vcpu);
    int bytes = xn_cpumap_bytes(h), rc;
    uint8_t *hard, *soft;

    check(bytes, "xn_cpumap_bytes");
    hard = calloc(2, (size_t)bytes);
    if (!hard)
        raise_error(-ENOMEM, "xn_vcpu_get_affinity");
    soft = hard + bytes;
    call_begin(handle);
    rc = xn_vcpu_get_affinity(h, d, v, hard, soft);
    call_end(handle);
    if (rc < 0) {
        free(hard);
        raise_error(rc, "xn_vcpu_get_affinity");
    }
    hard_v = bools_of_map(hard, bytes);
    soft_v = bools_of_map(soft, bytes);
    free(hard);
    r = caml_alloc_tuple(2);
    Store_field(r, 0, hard_v);
    Store_field(r, 1, soft_v);
    CAMLreturn(r);
}

/* hard and soft: bool array option each (None leaves it alone). */
CAMLprim value stub_xenuma_set_vcpu_affinity(value handle, value domid, value vcpu, value hard_opt,
                                             value soft_opt)
{
    CAMLparam5(handle, domid, vcpu, hard_opt, soft_opt);
    xn_handle *h = handle_of(handle);
    uint32_t d = (uint32_t)Int_val(domid), v = (uint32_t)Int_val(vcpu);
    int bytes = xn_cpumap_bytes(h), rc = 0;
    uint8_t *maps, *hard = NULL, *soft = NULL;

    check(bytes, "xn_cpumap_bytes");
    maps = calloc(2, (size_t)bytes);
    if (!maps)
        raise_error(-ENOMEM, "xn_vcpu_set_affinity");
    if (Is_block(hard_opt)) {
        hard = maps;
        rc = map_of_bools(Field(hard_opt, 0), hard, bytes);
    }
    if (rc == 0 && Is_block(soft_opt)) {
        soft = maps + bytes;
        rc = map_of_bools(Field(soft_opt, 0), soft, bytes);
    }
    if (rc == 0) {
        call_begin(handle);
        rc = xn_vcpu_set_affinity(h, d, v, hard, soft);
        call_end(handle);
    }
    free(maps);
    check(rc, rc == -EINVAL ? "xn_vcpu_set_affinity: a CPU beyond the host's" : "xn_vcpu_set_affinity");
    CAMLreturn(Val_unit);
}

CAMLprim value stub_xenuma_node_affinity(value handle, value domid)
{
    CAMLparam2(handle, domid);
    CAMLlocal1(r);
    xn_handle *h = handle_of(handle);
    uint32_t d = (uint32_t)Int_val(domid);
    int bytes = xn_nodemap_bytes(h), rc;
    uint8_t *map;

    check(bytes, "xn_nodemap_bytes");
    map = calloc(1, (size_t)bytes);
    if (!map)
        raise_error(-ENOMEM, "xn_node_affinity_get");
    call_begin(handle);
    rc = xn_node_affinity_get(h, d, map);
    call_end(handle);
    if (rc < 0) {
        free(map);
        raise_error(rc, "xn_node_affinity_get");
    }
    r = bools_of_map(map, bytes);
    free(map);
    CAMLreturn(r);
}

CAMLprim value stub_xenuma_set_node_affinity(value handle, value domid, value nodes)
{
    CAMLparam3(handle, domid, nodes);
    xn_handle *h = handle_of(handle);
    uint32_t d = (uint32_t)Int_val(domid);
    int bytes = xn_nodemap_bytes(h), rc;
    uint8_t *map;

    check(bytes, "xn_nodemap_bytes");
    map = calloc(1, (size_t)bytes);
    if (!map)
        raise_error(-ENOMEM, "xn_node_affinity_set");
    rc = map_of_bools(nodes, map, bytes);
    if (rc == 0) {
        call_begin(handle);
        rc = xn_node_affinity_set(h, d, map);
        call_end(handle);
    }
    free(map);
    check(rc, rc == -EINVAL ? "xn_node_affinity_set: a node beyond the host's" : "xn_node_affinity_set");
    CAMLreturn(Val_unit);
}

CAMLprim value stub_xenuma_pause(value handle, value domid, value pause)
{
    CAMLparam3(handle, domid, pause);
    xn_handle *h = handle_of(handle);
    uint32_t d = (uint32_t)Int_val(domid);
    int p = Bool_val(pause), rc;

    call_begin(handle);
    rc = p ? xn_pause(h, d) : xn_unpause(h, d);
    call_end(handle);
    check(rc, p ? "xn_pause" : "xn_unpause");
    CAMLreturn(Val_unit);
}

/* node: -1 for a host-wide claim. */
CAMLprim value stub_xenuma_claim(value handle, value domid, value node, value pages)
{
    CAMLparam4(handle, domid, node, pages);
    xn_handle *h = handle_of(handle);
    uint32_t d = (uint32_t)Int_val(domid), n = Int_val(node) < 0 ? ~0u : (uint32_t)Int_val(node);
    uint64_t nr = (uint64_t)Int64_val(pages);
    int rc;

    call_begin(handle);
    rc = xn_claim(h, d, n, nr);
    call_end(handle);
    check(rc, n == ~0u ? "xn_claim (host-wide)" : "xn_claim (per node)");
    CAMLreturn(Val_unit);
}

CAMLprim value stub_xenuma_node_pages_native(value handle, value domid, value nr_nodes)
{
    CAMLparam3(handle, domid, nr_nodes);
    CAMLlocal1(r);
    xn_handle *h = handle_of(handle);
    uint32_t d = (uint32_t)Int_val(domid);
    unsigned int n = (unsigned int)Int_val(nr_nodes), i;
    uint64_t pages[MAX_NODES];
    int rc;

    if (n > MAX_NODES)
        raise_error(-EINVAL, "xn_node_pages_native: too many nodes");
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
    CAMLlocal1(r);
    xn_handle *h = handle_of(handle);
    unsigned int t = (unsigned int)Int_val(timeout_ms);
    size_t len = DUMP_BYTES;
    char *buf = malloc(len);
    int rc;

    if (!buf)
        raise_error(-ENOMEM, "xn_udump_capture");
    call_begin(handle);
    rc = xn_udump_capture(h, buf, &len, t);
    call_end(handle);
    if (rc < 0) {
        free(buf);
        raise_error(rc, "xn_udump_capture: debug key 'u'");
    }
    r = caml_alloc_initialized_string(len, buf);
    free(buf);
    CAMLreturn(r);
}

/* Pure: (pages per node, total) of one domain in a capture. */
CAMLprim value stub_xenuma_udump_parse(value text, value domid, value nr_nodes)
{
    CAMLparam3(text, domid, nr_nodes);
    CAMLlocal2(r, pages_v);
    unsigned int n = (unsigned int)Int_val(nr_nodes), i;
    uint64_t pages[MAX_NODES], total = 0;
    int rc;

    if (n == 0 || n > MAX_NODES)
        raise_error(-EINVAL, "xn_udump_parse: number of nodes");
    rc = xn_udump_parse(String_val(text), caml_string_length(text), (uint32_t)Int_val(domid), n, pages, &total);
    check(rc, "xn_udump_parse");
    pages_v = caml_alloc_tuple(n);
    for (i = 0; i < n; i++)
        Store_field(pages_v, i, caml_copy_int64((int64_t)pages[i]));
    r = caml_alloc_tuple(2);
    Store_field(r, 0, pages_v);
    Store_field(r, 1, caml_copy_int64((int64_t)total));
    CAMLreturn(r);
}

CAMLprim value stub_xenuma_features(value handle)
{
    CAMLparam1(handle);
    CAMLlocal1(r);
    xn_handle *h = handle_of(handle);
    struct xn_features f;

    call_begin(handle);
    xn_features(h, &f);
    call_end(handle);
    r = caml_alloc_tuple(3);
    Store_field(r, 0, Val_int(f.node_pages));
    Store_field(r, 1, Val_int(f.node_claims));
    Store_field(r, 2, Val_int(f.claims));
    CAMLreturn(r);
}

CAMLprim value stub_xenuma_patched_ops(value unit)
{
    CAMLparam1(unit);
    CAMLreturn(Val_int(xn_patched_ops()));
}

/* --- moving memory ---------------------------------------------------------------------- */

CAMLprim value stub_xenuma_mig_check(value handle, value domid)
{
    CAMLparam2(handle, domid);
    xn_handle *h = handle_of(handle);
    uint32_t d = (uint32_t)Int_val(domid);
    int rc;

    call_begin(handle);
    rc = xn_mig_check(h, d);
    call_end(handle);
    check(rc, rc == -EPROTOTYPE ? "xn_mig_check: a PV guest (its page tables hold machine frames)"
                                : "xn_mig_check");
    CAMLreturn(Val_unit);
}

/* Copy an optional path out of the OCaml heap (NULL for None). */
static char *path_of_option(value opt)
{
    return Is_block(opt) ? strdup(String_val(Field(opt, 0))) : NULL;
}

/* (classes : bytes, (typed, busy_grants, types_ns, grants_ns, layouts_ns)) */
CAMLprim value stub_xenuma_mig_scan(value handle, value domid, value probe_ms, value record_opt)
{
    CAMLparam4(handle, domid, probe_ms, record_opt);
    CAMLlocal3(r, classes, stats_v);
    xn_handle *h = handle_of(handle);
    uint32_t d = (uint32_t)Int_val(domid), probe = (uint32_t)Int_val(probe_ms);
    char *record = path_of_option(record_opt);
    struct xn_mig_scan_stats stats;
    uint64_t max_gfn = 0, nr = 0;
    uint8_t *cls = NULL;
    int rc;

    if (Is_block(record_opt) && !record)
        raise_error(-ENOMEM, "xn_mig_scan");
    call_begin(handle);
    rc = xn_mig_max_gfn(h, d, &max_gfn);
    if (rc == 0) {
        nr = max_gfn + 1;
        cls = malloc(nr);
        rc = cls ? xn_mig_scan(h, d, nr, cls, probe, record, &stats) : -ENOMEM;
    }
    call_end(handle);
    free(record);
    if (rc < 0) {
        free(cls);
        raise_error(rc, rc == -EPROTOTYPE ? "xn_mig_scan: a PV guest" : "xn_mig_scan");
    }
    classes = caml_alloc_string(nr);
    memcpy((char *)Bytes_val(classes), cls, nr);
    free(cls);
    stats_v = caml_alloc_tuple(5);
    Store_field(stats_v, 0, caml_copy_int64((int64_t)stats.typed));
    Store_field(stats_v, 1, caml_copy_int64((int64_t)stats.busy_grants));
    Store_field(stats_v, 2, caml_copy_int64((int64_t)stats.types_ns));
    Store_field(stats_v, 3, caml_copy_int64((int64_t)stats.grants_ns));
    Store_field(stats_v, 4, caml_copy_int64((int64_t)stats.layouts_ns));
    r = caml_alloc_tuple(2);
    Store_field(r, 0, classes);
    Store_field(r, 1, stats_v);
    CAMLreturn(r);
}

static value result_record(const struct xn_mig_result *res)
{
    CAMLparam0();
    CAMLlocal1(r);
    const uint64_t counts[10] = { res->released, res->moved, res->fallback, res->lost, res->superpages,
                                  res->not_freed, res->stuck_first, res->stuck_count, res->raised_max,
                                  res->pause_ns };
    int i;

    r = caml_alloc_tuple(14);
    for (i = 0; i < 10; i++)
        Store_field(r, i, caml_copy_int64((int64_t)counts[i]));
    Store_field(r, 10, Val_int(res->stage));
    Store_field(r, 11, Val_int(res->error < 0 ? -res->error : res->error));
    Store_field(r, 12, caml_copy_int64((int64_t)res->granted));
    Store_field(r, 13, caml_copy_int64((int64_t)res->recognised));
    CAMLreturn(r);
}

/* Returns the result record; a failure inside the window is in it (error
 * and stage), a refusal before any pause is raised. */
CAMLprim value stub_xenuma_mig_move_native(value handle, value domid, value gfns, value node, value verify_chunk,
                                           value flags, value record_opt)
{
    CAMLparam5(handle, domid, gfns, node, verify_chunk);
    CAMLxparam2(flags, record_opt);
    xn_handle *h = handle_of(handle);
    uint32_t d = (uint32_t)Int_val(domid), to = (uint32_t)Int_val(node);
    uint32_t chunk = (uint32_t)Int_val(verify_chunk), fl = (uint32_t)Int_val(flags);
    mlsize_t n = Wosize_val(gfns), i;
    uint64_t *list = malloc((n ? n : 1) * sizeof(uint64_t));
    char *record = path_of_option(record_opt);
    struct xn_mig_result res;
    int rc;

    if (!list || (Is_block(record_opt) && !record)) {
        free(list);
        free(record);
        raise_error(-ENOMEM, "xn_mig_move");
    }
    for (i = 0; i < n; i++)
        list[i] = (uint64_t)Long_val(Field(gfns, i));
    call_begin(handle);
    rc = xn_mig_move(h, d, list, (uint32_t)n, to, chunk, fl, record, &res);
    call_end(handle);
    free(list);
    free(record);
    if (rc < 0 && res.stage == XN_MIG_STAGE_NONE)
        raise_error(rc, rc == -EBUSY ? "xn_mig_move: a live mover holds the batch record"
                        : rc == -EEXIST ? "xn_mig_move: a dead mover's batch record awaits recovery"
                        : "xn_mig_move");
    CAMLreturn(result_record(&res));
}

CAMLprim value stub_xenuma_mig_move_bytecode(value *argv, int argn)
{
    (void)argn;
    return stub_xenuma_mig_move_native(argv[0], argv[1], argv[2], argv[3], argv[4], argv[5], argv[6]);
}

/* (outcome code, result record): 1 unpaused, 0 nothing, 2 domain gone. */
CAMLprim value stub_xenuma_mig_recover(value handle, value path)
{
    CAMLparam2(handle, path);
    CAMLlocal2(r, rec);
    xn_handle *h = handle_of(handle);
    char *p = strdup(String_val(path));
    struct xn_mig_result res;
    int rc;

    if (!p)
        raise_error(-ENOMEM, "xn_mig_recover");
    call_begin(handle);
    rc = xn_mig_recover(h, p, &res);
    call_end(handle);
    free(p);
    check(rc, rc == -EBUSY ? "xn_mig_recover: its mover is alive"
              : rc == -EPROTO ? "xn_mig_recover: not a batch record" : "xn_mig_recover");
    rec = result_record(&res);
    r = caml_alloc_tuple(2);
    Store_field(r, 0, Val_int(rc));
    Store_field(r, 1, rec);
    CAMLreturn(r);
}

CAMLprim value stub_xenuma_mig_record_busy(value path)
{
    CAMLparam1(path);
    char *p = strdup(String_val(path));
    int rc;

    if (!p)
        raise_error(-ENOMEM, "xn_mig_record_busy");
    caml_enter_blocking_section();
    rc = xn_mig_record_busy(p);
    caml_leave_blocking_section();
    free(p);
    check(rc, "xn_mig_record_busy");
    CAMLreturn(Val_bool(rc == 1));
}

/* vNUMA: ranges is a vmemrange array ({start; stop : int64; vnode : int});
 * layout is (vdistance row-major, vcpu_to_vnode, vnode_to_pnode), int arrays. */
CAMLprim value stub_xenuma_set_vnuma(value handle, value domid, value ranges, value layout)
{
    CAMLparam4(handle, domid, ranges, layout);
    xn_handle *h = handle_of(handle);
    value dist = Field(layout, 0), v2n = Field(layout, 1), n2p = Field(layout, 2);
    uint32_t d = (uint32_t)Int_val(domid), nr_ranges = Wosize_val(ranges);
    uint32_t nr_vnodes = Wosize_val(n2p), nr_vcpus = Wosize_val(v2n), i;
    struct xn_vmemrange *r = calloc(nr_ranges ? nr_ranges : 1, sizeof(*r));
    uint32_t *cdist = calloc(nr_vnodes * nr_vnodes + 1, sizeof(*cdist));
    uint32_t *cv2n = calloc(nr_vcpus + 1, sizeof(*cv2n)), *cn2p = calloc(nr_vnodes + 1, sizeof(*cn2p));
    int rc = 0;

    if (!r || !cdist || !cv2n || !cn2p)
        rc = -ENOMEM;
    else if (Wosize_val(dist) != nr_vnodes * nr_vnodes)
        rc = -EINVAL; /* the distance table must be square over the vnodes */
    for (i = 0; rc == 0 && i < nr_ranges; i++) {
        value f = Field(ranges, i);
        r[i].start = (uint64_t)Int64_val(Field(f, 0));
        r[i].end = (uint64_t)Int64_val(Field(f, 1));
        r[i].vnode = (uint32_t)Int_val(Field(f, 2));
    }
    for (i = 0; rc == 0 && i < nr_vnodes * nr_vnodes; i++)
        cdist[i] = (uint32_t)Int_val(Field(dist, i));
    for (i = 0; rc == 0 && i < nr_vcpus; i++)
        cv2n[i] = (uint32_t)Int_val(Field(v2n, i));
    for (i = 0; rc == 0 && i < nr_vnodes; i++)
        cn2p[i] = (uint32_t)Int_val(Field(n2p, i));
    if (rc == 0) {
        call_begin(handle);
        rc = xn_domain_setvnuma(h, d, nr_vnodes, nr_ranges, r, nr_vcpus, cdist, cv2n, cn2p);
        call_end(handle);
    }
    free(r);
    free(cdist);
    free(cv2n);
    free(cn2p);
    check(rc, rc == -EINVAL ? "xn_domain_setvnuma: an inconsistent vNUMA layout" : "xn_domain_setvnuma");
    CAMLreturn(Val_unit);
}

/* An OCaml int array of n entries from uint32_t values (the empty array for n = 0). */
static value ints_of_u32(const uint32_t *a, uint32_t n)
{
    CAMLparam0();
    CAMLlocal1(r);
    uint32_t i;

    if (n == 0)
        CAMLreturn(Atom(0));
    r = caml_alloc_tuple(n);
    for (i = 0; i < n; i++)
        Store_field(r, i, Val_int(a[i]));
    CAMLreturn(r);
}

/* Tries at reading a layout: the first call only sizes (Xen answers ENOBUFS
 * with the counts); each further ENOBUFS or EAGAIN means the layout was
 * replaced between two calls, so we size again -- but not forever. */
#define VNUMA_TRIES 4

struct vnuma_read {
    uint32_t nr_vnodes, nr_ranges, nr_vcpus;
    struct xn_vmemrange *ranges;
    uint32_t *vdistance, *vcpu_to_vnode;
};

static void vnuma_read_free(struct vnuma_read *v)
{
    free(v->ranges);
    free(v->vdistance);
    free(v->vcpu_to_vnode);
    v->ranges = NULL;
    v->vdistance = v->vcpu_to_vnode = NULL;
}

/* Touches no OCaml value: runs with the runtime lock released.  0 with v
 * filled; -EOPNOTSUPP (no layout), -EAGAIN (it kept changing) or another
 * -errno with v's arrays freed. */
static int vnuma_read(xn_handle *h, uint32_t domid, struct vnuma_read *v)
{
    int tries, rc = -EAGAIN;

    memset(v, 0, sizeof(*v)); /* no room at first: the sizing call */
    for (tries = 0; tries < VNUMA_TRIES; tries++) {
        vnuma_read_free(v);
        /* room for the counts of the last answer (+1: calloc(0) may be NULL) */
        v->ranges = calloc(v->nr_ranges + 1, sizeof(*v->ranges));
        v->vdistance = calloc((size_t)v->nr_vnodes * v->nr_vnodes + 1, sizeof(*v->vdistance));
        v->vcpu_to_vnode = calloc(v->nr_vcpus + 1, sizeof(*v->vcpu_to_vnode));
        if (!v->ranges || !v->vdistance || !v->vcpu_to_vnode) {
            rc = -ENOMEM;
            break;
        }
        rc = xn_domain_getvnuma(h, domid, &v->nr_vnodes, &v->nr_ranges, &v->nr_vcpus, v->ranges, v->vdistance,
                                v->vcpu_to_vnode);
        if (rc == 0)
            return 0;
        if (rc != -ENOBUFS && rc != -EAGAIN)
            break;
        rc = -EAGAIN; /* what is left if this was the last try */
    }
    vnuma_read_free(v);
    return rc;
}

/* None (the domain has no vNUMA layout) or Some {ranges; vdistance; vcpu_to_vnode}. */
CAMLprim value stub_xenuma_get_vnuma(value handle, value domid)
{
    CAMLparam2(handle, domid);
    CAMLlocal5(result, layout, ranges, dists, range);
    CAMLlocal1(v2n);
    xn_handle *h = handle_of(handle);
    uint32_t d = (uint32_t)Int_val(domid), i;
    struct vnuma_read v;
    int rc;

    call_begin(handle);
    rc = vnuma_read(h, d, &v);
    call_end(handle);
    if (rc == -EOPNOTSUPP)
        CAMLreturn(Val_int(0)); /* None: Xen answers EOPNOTSUPP for a domain without a layout */
    check(rc, rc == -EAGAIN ? "xn_domain_getvnuma: the layout kept changing while it was read"
                            : "xn_domain_getvnuma");
    ranges = v.nr_ranges ? caml_alloc_tuple(v.nr_ranges) : Atom(0);
    for (i = 0; i < v.nr_ranges; i++) {
        range = caml_alloc_tuple(3);
        Store_field(range, 0, caml_copy_int64((int64_t)v.ranges[i].start));
        Store_field(range, 1, caml_copy_int64((int64_t)v.ranges[i].end));
        Store_field(range, 2, Val_int(v.ranges[i].vnode));
        Store_field(ranges, i, range);
    }
    dists = v.nr_vnodes ? caml_alloc_tuple(v.nr_vnodes) : Atom(0);
    for (i = 0; i < v.nr_vnodes; i++)
        Store_field(dists, i, ints_of_u32(v.vdistance + (size_t)i * v.nr_vnodes, v.nr_vnodes));
    v2n = ints_of_u32(v.vcpu_to_vnode, v.nr_vcpus);
    vnuma_read_free(&v);
    layout = caml_alloc_tuple(3);
    Store_field(layout, 0, ranges);
    Store_field(layout, 1, dists);
    Store_field(layout, 2, v2n);
    result = caml_alloc_tuple(1); /* Some layout */
    Store_field(result, 0, layout);
    CAMLreturn(result);
}
