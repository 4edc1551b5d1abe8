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
 *    decide about (ENOSYS/EOPNOTSUPP for a call the hypervisor lacks);
 *  - every OCaml int is range-checked into its C type (u32_of_int), never
 *    cast: a cast wraps, and a wrapped domid, node or timeout names another
 *    domain, another node or a pause of weeks; an array's length handed to C
 *    as a count likewise (count_arg), raising Invalid_argument;
 *  - nothing is acquired (memory, the in-flight count) and no state changed
 *    before the last point that can raise: argument checks and handle_of
 *    come first, and the lock is released by enter_blocking, which runs no
 *    signal handler (one may raise);
 *  - every OCaml allocation may raise (Out_of_memory), so C memory still held
 *    while an answer is built belongs to a custom block made before it
 *    (owned_new), whose finaliser frees it if a raise skips the stub's free,
 *    and an interface is opened only once its block exists.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
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

/* Unix.error -> its errno (EUNKNOWNERR n: n), for the exception's printer */
value stub_xenuma_errno_of_error(value error)
{
    CAMLparam1(error);
    CAMLreturn(Val_int(code_of_unix_error(error)));
}

static void check(int rc, const char *context)
{
    if (rc < 0)
        raise_error(rc, context);
}

/* --- arguments -------------------------------------------------------------------------- */

/* Bounds of the ints the stubs take from OCaml (all at least 0). */
#define U32_MAX 0xFFFFFFFFu
#define DOMID_MAX 0x7FEFu   /* below DOMID_FIRST_RESERVED (xen.h): DOMID_SELF and up name no domain */
#define NODE_MAX 0xFFFFFFFEu /* ~0u is xn_claim's host-wide: never a node */
#define VCPU_MAX U32_MAX
#define DUMP_TIMEOUT_MAX_MS 600000u /* 10 minutes: a dump of the largest host takes seconds */

/* The one conversion of an OCaml int to a C number: 0 with *out set if v is
 * in [0, max], else -EINVAL.  Never a cast: domid 65537 would be domain 1 to
 * Xen's 16-bit domid_t, -1 ms a pause of 49.7 days, node 2^32 + 1 node 1. */
static int u32_of_int(value v, uint32_t max, uint32_t *out)
{
    intnat i = Long_val(v);

    if (i < 0 || (uintnat)i > max)
        return -EINVAL;
    *out = (uint32_t)i;
    return 0;
}

/* u32_of_int or Error (EINVAL, "<what> <v> out of range").  It raises: a stub
 * converts its arguments before it holds anything. */
static uint32_t u32_arg(value v, uint32_t max, const char *what)
{
    uint32_t out = 0;
    char context[160];

    if (u32_of_int(v, max, &out) < 0) {
        snprintf(context, sizeof(context), "%s %ld out of range (0 to %u)", what, (long)Long_val(v), max);
        raise_error(-EINVAL, context);
    }
    return out;
}

/* The length of `array` as a count for libxenuma, which takes uint32_t, or
 * Invalid_argument "<what>: <n> entries, ...".  Never cut to its low 32 bits:
 * 2^32 + 1 ranges would be taken for 1 and the rest read into a buffer sized
 * for that one.  Invalid_argument, not Error (EINVAL): no host or layout makes
 * such a length right, it is the caller's bug (as Array.make's is). */
static uint32_t count_arg(value array, const char *what)
{
    mlsize_t n = Wosize_val(array);
    char msg[160];

    if (n > U32_MAX) {
        snprintf(msg, sizeof(msg), "%s: %lu entries, more than %u", what, (unsigned long)n, U32_MAX);
        caml_invalid_argument(msg);
    }
    return (uint32_t)n;
}

/* A path handed to C is cut at its first NUL: one holding a NUL names another file. */
static void path_arg(value s, const char *what)
{
    if (!caml_string_is_c_safe(s))
        raise_error(-EINVAL, what);
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

/* Release the runtime lock without running pending signal handlers, as
 * caml_enter_blocking_section would: one may raise (Sys.catch_break's), and
 * a stub gets here holding memory, counted in flight or having let go of its
 * handle, none of which a raise may skip.  What is pending runs at the next
 * poll (handle_of's, if the next one is ours). */
static void enter_blocking(void)
{
    caml_enter_blocking_section_no_pending();
}

/* Release the runtime lock for a call on the handle, counting it in flight. */
static void call_begin(value v)
{
    Box(v)->in_flight++;
    enter_blocking();
}

/* The call is back (runtime lock held): the last one in flight after a [close] closes it. */
static void call_done(struct handle_box *b)
{
    if (--b->in_flight == 0 && b->closing) {
        xn_handle *h = b->h;
        b->h = NULL;
        b->closing = 0;
        enter_blocking(); /* cannot raise: h reaches xn_close */
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

/* The open xn_handle behind the stub's CAMLparam-registered handle `*root`, or
 * Error (EBADF).  It first runs what is pending (signal handlers, finalisers),
 * so a signal that came before the call is handled before it, not after a
 * pause of up to a minute; a handler may raise, so a stub calls handle_of
 * before it holds anything.  They may also run the GC, which may move the
 * block: it is read through the root afterwards. */
static xn_handle *handle_of(value *root)
{
    caml_process_pending_actions();
    if (!Handle_ptr(*root) || Box(*root)->closing)
        raise_error(-EBADF, "handle already closed");
    return Handle_ptr(*root);
}

CAMLprim value stub_xenuma_open(value unit)
{
    CAMLparam1(unit);
    CAMLlocal1(result);
    xn_handle *h = NULL;
    int rc;

    /* the block before the interface: an allocation that raised after xn_open
     * would lose it, while a block left empty (NULL) is only garbage */
    result = caml_alloc_custom(&handle_ops, sizeof(struct handle_box), 0, 1);
    Box(result)->h = NULL;
    Box(result)->in_flight = 0;
    Box(result)->closing = 0;
    caml_enter_blocking_section(); /* it may run a handler that raises: nothing is held yet */
    rc = xn_open(&h);
    caml_leave_blocking_section();
    check(rc, "xn_open: opening the Xen control interface");
    Box(result)->h = h; /* through the root: the block may have moved meanwhile */
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
    b->h = NULL; /* closed for every thread from here: h is this call's alone */
    enter_blocking(); /* cannot raise: h reaches xn_close */
    xn_close(h);
    caml_leave_blocking_section();
    CAMLreturn(Val_unit);
}

/* --- C memory an answer is built from ---------------------------------------------------- */

/* Building an answer allocates on the OCaml heap, and any allocation may raise
 * Out_of_memory out of the stub, past the free() that follows it.  So C memory
 * still held while the answer is built belongs to a custom block, a CAMLlocal
 * of the stub made before that memory (owned_new): the finaliser frees what
 * such a raise left behind, and the stub frees it at once when the answer is
 * built (owned_free).  The block may move while the runtime lock is released:
 * memory allocated out there is handed to it after the lock is back, through
 * the stub's root, before the next OCaml allocation. */
#define OWNED_MAX 3

struct owned {
    void *p[OWNED_MAX];
};

#define Owned(v) ((struct owned *)Data_custom_val(v))

/* Free what `v` owns, and empty it: the stub calls it once its answer is built, the GC
 * (its finaliser) for what a raise left, or for nothing. */
static void owned_free(value v)
{
    int i;

    for (i = 0; i < OWNED_MAX; i++) {
        free(Owned(v)->p[i]);
        Owned(v)->p[i] = NULL;
    }
}

static struct custom_operations owned_ops = {
    .identifier = "xapi-numa.xenuma.owned",
    .finalize = owned_free,
    .compare = custom_compare_default,
    .hash = custom_hash_default,
    .serialize = custom_serialize_default,
    .deserialize = custom_deserialize_default,
    .compare_ext = custom_compare_ext_default,
    .fixed_length = NULL,
};

/* An owner of nothing yet.  It allocates, so it may raise: made before the memory it is to own. */
static value owned_new(void)
{
    value v = caml_alloc_custom(&owned_ops, sizeof(struct owned), 0, 1);

    memset(Owned(v), 0, sizeof(struct owned));
    return v;
}


/* --- host ------------------------------------------------------------------------------- */

CAMLprim value stub_xenuma_physinfo(value handle)
{
    CAMLparam1(handle);
    CAMLlocal1(r);
    xn_handle *h = handle_of(&handle);
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

/* (size, free) per node in bytes, and the distance matrix: at least one node.
 * Xen always reports node 0 (a host without NUMA is one node), so an answer of
 * none is an error, raised here for every caller (node_memory, topology), not
 * arrays a placement would index. */
CAMLprim value stub_xenuma_numainfo(value handle)
{
    CAMLparam1(handle);
    CAMLlocal5(result, mem, row, dists, node);
    xn_handle *h = handle_of(&handle);
    uint64_t size[MAX_NODES], free_bytes[MAX_NODES];
    uint32_t dist[MAX_NODES * MAX_NODES];
    unsigned int n = MAX_NODES, i, j;
    int rc;

    call_begin(handle);
    rc = xn_numainfo(h, &n, size, free_bytes, dist);
    call_end(handle);
    check(rc, "xn_numainfo");
    if (n == 0)
        raise_error(-EIO, "xn_numainfo: the host reported no NUMA node");
    mem = caml_alloc_tuple(n);
    dists = caml_alloc_tuple(n);
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

/* Bytes free on a node below 2^width (xc_availheap): at Xen's DMA width, the
 * node's free memory in the DMA zone, which Xen gives an ordinary allocation
 * only once every node is out of the rest.  width 1 to 64 (0 would be every
 * zone to Xen: refused by libxenuma, as is a node the host lacks). */
CAMLprim value stub_xenuma_node_free_below(value handle, value node, value width)
{
    CAMLparam3(handle, node, width);
    uint32_t n = u32_arg(node, NODE_MAX, "xn_node_free_below: node");
    uint32_t w = u32_arg(width, 64, "xn_node_free_below: width");
    xn_handle *h = handle_of(&handle);
    uint64_t bytes = 0;
    int rc;

    call_begin(handle);
    rc = xn_node_free_below(h, n, w, &bytes);
    call_end(handle);
    check(rc, rc == -EINVAL ? "xn_node_free_below: not a node of the host's, or width 0" : "xn_node_free_below");
    CAMLreturn(caml_copy_int64((int64_t)bytes));
}

/* Xen's own command line (XENVER_commandline): where dma_bits= is read from. */
CAMLprim value stub_xenuma_xen_commandline(value handle)
{
    CAMLparam1(handle);
    xn_handle *h = handle_of(&handle);
    char line[1024]; /* xen_commandline_t */
    int rc;

    call_begin(handle);
    rc = xn_xen_commandline(h, line, sizeof(line));
    call_end(handle);
    check(rc, "xn_xen_commandline");
    CAMLreturn(caml_copy_string(line));
}

/* Per CPU (core, socket, node); -1 for an offline CPU.  A parked CPU (smt=0,
 * xen-hptool cpu-offline) has its node here as an online one does: xenuma.ml's
 * topology tells them apart (stub_xenuma_online_cpus). */
CAMLprim value stub_xenuma_cputopo(value handle)
{
    CAMLparam1(handle);
    CAMLlocal3(result, cpu, owner);
    xn_handle *h = handle_of(&handle);
    uint32_t *core, *socket, *node;
    unsigned int n = MAX_CPUS, i;
    int rc;

    owner = owned_new();
    core = Owned(owner)->p[0] = malloc(MAX_CPUS * sizeof(uint32_t));
    socket = Owned(owner)->p[1] = malloc(MAX_CPUS * sizeof(uint32_t));
    node = Owned(owner)->p[2] = malloc(MAX_CPUS * sizeof(uint32_t));
    rc = core && socket && node ? 0 : -ENOMEM;
    if (rc == 0) {
        call_begin(handle);
        rc = xn_cputopo(h, &n, core, socket, node);
        call_end(handle);
    }
    if (rc < 0 || n == 0) {
        owned_free(owner);
        check(rc, "xn_cputopo");
        CAMLreturn(Atom(0));
    }
    result = caml_alloc_tuple(n);
    for (i = 0; i < n; i++) {
        cpu = caml_alloc_tuple(3);
        Store_field(cpu, 0, Val_int(core[i] == ~0u ? -1 : (int)core[i]));
        Store_field(cpu, 1, Val_int(socket[i] == ~0u ? -1 : (int)socket[i]));
        Store_field(cpu, 2, Val_int(node[i] == ~0u ? -1 : (int)node[i]));
        Store_field(result, i, cpu);
    }
    owned_free(owner);
    CAMLreturn(result);
}

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

CAMLprim value stub_xenuma_features(value handle)
{
    CAMLparam1(handle);
    CAMLlocal1(r);
    xn_handle *h = handle_of(&handle);
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
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_mig_check: domid");
    xn_handle *h = handle_of(&handle);
    int rc;

    call_begin(handle);
    rc = xn_mig_check(h, d);
    call_end(handle);
    check(rc, rc == -EPROTOTYPE ? "xn_mig_check: a PV guest (its page tables hold machine frames)"
                                : "xn_mig_check");
    CAMLreturn(Val_unit);
}

/* (classes : bytes, (typed, busy_grants, types_ns, grants_ns, layouts_ns)) */
CAMLprim value stub_xenuma_mig_scan(value handle, value domid, value probe_ms, value record_opt)
{
    CAMLparam4(handle, domid, probe_ms, record_opt);
    CAMLlocal4(r, classes, stats_v, owner);
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_mig_scan: domid");
    uint32_t probe = u32_arg(probe_ms, XN_MIG_PROBE_MAX_MS, "xn_mig_scan: probe_ms");
    xn_handle *h;
    char *record = NULL;
    struct xn_mig_scan_stats stats;
    uint64_t nr = 0;
    uint8_t *cls = NULL;
    int rc;

    /* the probe pauses the guest: without a record a kill then would leave it paused, unknown */
    if (probe && !Is_block(record_opt))
        raise_error(-EINVAL, "xn_mig_scan: a probe needs a record");
    /* only a probe uses the record: without one it is neither checked nor handed on */
    if (probe)
        path_arg(Field(record_opt, 0), "xn_mig_scan: a record path holding a NUL");
    h = handle_of(&handle);
    owner = owned_new();
    /* record is freed before any allocation: no owner needed */
    if (probe && !(record = strdup(String_val(Field(record_opt, 0)))))
        raise_error(-ENOMEM, "xn_mig_scan");
    call_begin(handle);
    /* the map sized by the scan, not by the highest gfn (which may lie far past the RAM) */
    rc = xn_mig_scan_map(h, d, probe, record, &cls, &nr, &stats);
    call_end(handle);
    Owned(owner)->p[0] = cls; /* malloc'd outside the lock: handed over before any allocation */
    free(record);
    if (rc < 0) {
        owned_free(owner);
        raise_error(rc, rc == -EPROTOTYPE ? "xn_mig_scan: a PV guest"
                        : rc == -E2BIG ? "xn_mig_scan: a highest gfn past what Xen lets the guest address (2^36)"
                        : "xn_mig_scan");
    }
    classes = caml_alloc_string(nr);
    memcpy((char *)Bytes_val(classes), cls, nr);
    owned_free(owner);
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

    r = caml_alloc_tuple(16);
    for (i = 0; i < 10; i++)
        Store_field(r, i, caml_copy_int64((int64_t)counts[i]));
    Store_field(r, 10, Val_int(res->stage));
    Store_field(r, 11, Val_int(res->error < 0 ? -res->error : res->error));
    Store_field(r, 12, caml_copy_int64((int64_t)res->granted));
    Store_field(r, 13, caml_copy_int64((int64_t)res->recognised));
    /* xn_mig_recover: a raise of max_pages a dead mover left, set back (or one an older
     * record cannot say of) */
    Store_field(r, 14, caml_copy_int64((int64_t)res->max_restored));
    Store_field(r, 15, Val_bool(res->max_unknown != 0));
    CAMLreturn(r);
}

/* Outside the runtime lock: the move, and what an EINVAL before any pause meant
 * (written to what).  xn_mig_move answers EINVAL for gfns out of order, for a node
 * the host lacks, and for a gfn the guest does not have (Xen will not map it):
 * told apart here, so that the last is not read as one of the others. */
static int move_explained(xn_handle *h, uint32_t domid, const uint8_t *handle, const uint64_t *gfns, uint32_t n,
                          uint32_t node, uint32_t chunk, uint32_t flags, const char *record,
                          struct xn_mig_result *res, char *what, size_t len)
{
    uint64_t max_gfn = 0;
    uint32_t i;
    int rc = xn_mig_move_as(h, domid, handle, gfns, n, node, chunk, flags, record, res);

    snprintf(what, len, "xn_mig_move");
    if (rc == -ESTALE) /* (stage NONE: refused before the pause) */
        snprintf(what, len, "xn_mig_move: domain %u is no longer the one named by uuid (its domid was given "
                 "to another domain)", domid);
    if (rc != -EINVAL || res->stage != XN_MIG_STAGE_NONE)
        return rc;
    for (i = 1; i < n; i++)
        if (gfns[i] <= gfns[i - 1]) {
            snprintf(what, len, "xn_mig_move: gfns not ascending and unique (gfn %llu after %llu)",
                     (unsigned long long)gfns[i], (unsigned long long)gfns[i - 1]);
            return rc;
        }
    if (xn_node_check(h, node) == -EINVAL) {
        snprintf(what, len, "xn_mig_move: node %u is not a node of the host's", node);
        return rc;
    }
    if (n == 0) /* (nothing else refused an empty batch) */
        return rc;
    if (xn_mig_max_gfn(h, domid, &max_gfn) == 0 && gfns[n - 1] > max_gfn) {
        for (i = 0; gfns[i] <= max_gfn; i++) /* the first gfn past the guest's highest (ascending) */
            ;
        snprintf(what, len, "xn_mig_move: gfn %llu is not populated in domain %u (its highest gfn is %llu)",
                 (unsigned long long)gfns[i], domid, (unsigned long long)max_gfn);
        return rc;
    }
    if (n == 1)
        snprintf(what, len, "xn_mig_move: gfn %llu is not populated in domain %u", (unsigned long long)gfns[0],
                 domid);
    else
        snprintf(what, len, "xn_mig_move: a gfn of the batch (gfns %llu to %llu) is not populated in domain %u",
                 (unsigned long long)gfns[0], (unsigned long long)gfns[n - 1], domid);
    return rc;
}

/* Returns the result record; a failure inside the window is in it (error
 * and stage), a refusal before any pause is raised.  uuid_opt: Some of the
 * domain's 16-byte handle (domain.uuid), checked once the mover holds the
 * domain, as the Python adapter's move does: between a caller's scan and its
 * move the domain may be destroyed and its domid given to another VM, whose
 * pages would otherwise be moved. */
CAMLprim value stub_xenuma_mig_move_native(value handle, value domid, value gfns, value node, value verify_chunk,
                                           value flags, value record_path, value uuid_opt)
{
    CAMLparam5(handle, domid, gfns, node, verify_chunk);
    CAMLxparam3(flags, record_path, uuid_opt);
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_mig_move: domid");
    uint32_t to = u32_arg(node, NODE_MAX, "xn_mig_move: node");
    uint32_t chunk = u32_arg(verify_chunk, U32_MAX, "xn_mig_move: verify_chunk");
    uint32_t fl = u32_arg(flags, U32_MAX, "xn_mig_move: flags");
    mlsize_t n = Wosize_val(gfns), i;
    xn_handle *h;
    uint64_t *list;
    char *record;
    struct xn_mig_result res;
    uint8_t uuid[16];
    char what[160];
    int rc, has_uuid = Is_block(uuid_opt);

    (void)count_arg(gfns, "Xenuma.move: gfns"); /* as set_vnuma's arrays: Invalid_argument, the caller's bug */
    /* Xen's domain handle is 16 bytes: any other length names no domain */
    if (has_uuid && caml_string_length(Field(uuid_opt, 0)) != sizeof(uuid))
        raise_error(-EINVAL, "xn_mig_move: uuid is not 16 bytes (domain.uuid, raw)");
    if (has_uuid)
        memcpy(uuid, String_val(Field(uuid_opt, 0)), sizeof(uuid)); /* copied: read outside the lock */
    for (i = 0; i < n; i++)
        if (Long_val(Field(gfns, i)) < 0)
            raise_error(-EINVAL, "xn_mig_move: a negative gfn");
    path_arg(record_path, "xn_mig_move: a record path holding a NUL");
    h = handle_of(&handle);
    list = malloc((n ? n : 1) * sizeof(uint64_t));
    record = strdup(String_val(record_path));
    if (!list || !record) {
        free(list);
        free(record);
        raise_error(-ENOMEM, "xn_mig_move");
    }
    for (i = 0; i < n; i++)
        list[i] = (uint64_t)Long_val(Field(gfns, i));
    call_begin(handle);
    rc = move_explained(h, d, has_uuid ? uuid : NULL, list, (uint32_t)n, to, chunk, fl, record, &res, what,
                        sizeof(what));
    call_end(handle);
    free(list);
    free(record);
    if (rc < 0 && res.stage == XN_MIG_STAGE_NONE)
        raise_error(rc, rc == -EBUSY ? "xn_mig_move: a live mover holds the batch record"
                        : rc == -EEXIST ? "xn_mig_move: a dead mover's batch record awaits recovery"
                        : what);
    CAMLreturn(result_record(&res));
}

CAMLprim value stub_xenuma_mig_move_bytecode(value *argv, int argn)
{
    (void)argn;
    return stub_xenuma_mig_move_native(argv[0], argv[1], argv[2], argv[3], argv[4], argv[5], argv[6], argv[7]);
}

/* (outcome code, result record): 1 unpaused, 0 nothing, 2 domain gone. */
CAMLprim value stub_xenuma_mig_recover(value handle, value path)
{
    CAMLparam2(handle, path);
    CAMLlocal2(r, rec);
    xn_handle *h;
    char *p;
    struct xn_mig_result res;
    int rc;

    path_arg(path, "xn_mig_recover: a record path holding a NUL");
    h = handle_of(&handle);
    if (!(p = strdup(String_val(path))))
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
    char *p;
    int rc;

    path_arg(path, "xn_mig_record_busy: a record path holding a NUL");
    if (!(p = strdup(String_val(path))))
        raise_error(-ENOMEM, "xn_mig_record_busy");
    enter_blocking();
    rc = xn_mig_record_busy(p);
    caml_leave_blocking_section();
    free(p);
    check(rc, "xn_mig_record_busy");
    CAMLreturn(Val_bool(rc == 1));
}

/* An int array into n uint32_t (each at most max): 0, or -EINVAL for another length or an entry out of range. */
static int u32s_of_ints(value a, uint32_t n, uint32_t max, uint32_t *out)
{
    uint32_t i;

    if (Wosize_val(a) != n)
        return -EINVAL;
    for (i = 0; i < n; i++)
        if (u32_of_int(Field(a, i), max, &out[i]) < 0)
            return -EINVAL;
    return 0;
}

/* ranges (a vmemrange array: {start; stop : int64; vnode : int}) into r[]: 0 or -EINVAL. */
static int vmemranges_of_value(value ranges, struct xn_vmemrange *r)
{
    mlsize_t i;

    for (i = 0; i < Wosize_val(ranges); i++) {
        value f = Field(ranges, i);
        if (Int64_val(Field(f, 0)) < 0 || Int64_val(Field(f, 1)) < 0 ||
            u32_of_int(Field(f, 2), U32_MAX, &r[i].vnode) < 0)
            return -EINVAL;
        r[i].start = (uint64_t)Int64_val(Field(f, 0));
        r[i].end = (uint64_t)Int64_val(Field(f, 1));
    }
    return 0;
}

/* vdistance (an int array array) into nr_vnodes x nr_vnodes row-major: every
 * row must have nr_vnodes entries (a ragged matrix of the right total size
 * would otherwise be reshaped into another). */
static int vdistance_of_value(value rows, uint32_t nr_vnodes, uint32_t *out)
{
    uint32_t i;

    if (Wosize_val(rows) != nr_vnodes)
        return -EINVAL;
    for (i = 0; i < nr_vnodes; i++)
        if (u32s_of_ints(Field(rows, i), nr_vnodes, U32_MAX, out + (size_t)i * nr_vnodes) < 0)
            return -EINVAL;
    return 0;
}

/* vNUMA: ranges is a vmemrange array; layout is (vdistance, one int array per
 * vnode; vcpu_to_vnode; vnode_to_pnode), the counts those of the last two. */
CAMLprim value stub_xenuma_set_vnuma(value handle, value domid, value ranges, value layout)
{
    CAMLparam4(handle, domid, ranges, layout);
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_domain_setvnuma: domid");
    uint32_t nr_ranges = count_arg(ranges, "Xenuma.set_vnuma: ranges");
    uint32_t nr_vcpus = count_arg(Field(layout, 1), "Xenuma.set_vnuma: vcpu_to_vnode");
    uint32_t nr_vnodes = count_arg(Field(layout, 2), "Xenuma.set_vnuma: vnode_to_pnode");
    xn_handle *h = handle_of(&handle);
    /* read after handle_of, which may move them */
    value dist = Field(layout, 0), v2n = Field(layout, 1), n2p = Field(layout, 2);
    struct xn_vmemrange *r = calloc(nr_ranges ? nr_ranges : 1, sizeof(*r));
    uint32_t *cdist = calloc((size_t)nr_vnodes * nr_vnodes + 1, sizeof(*cdist));
    /* (size_t) before + 1: a count of 2^32 - 1, which count_arg lets through, would wrap to 0 */
    uint32_t *cv2n = calloc((size_t)nr_vcpus + 1, sizeof(*cv2n)), *cn2p = calloc((size_t)nr_vnodes + 1,
                                                                                    sizeof(*cn2p));
    int rc = 0;

    if (!r || !cdist || !cv2n || !cn2p)
        rc = -ENOMEM;
    else if (vmemranges_of_value(ranges, r) < 0 || vdistance_of_value(dist, nr_vnodes, cdist) < 0 ||
             u32s_of_ints(v2n, nr_vcpus, U32_MAX, cv2n) < 0 || u32s_of_ints(n2p, nr_vnodes, U32_MAX, cn2p) < 0)
        rc = -EINVAL; /* before any hypercall */
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
        v->ranges = calloc((size_t)v->nr_ranges + 1, sizeof(*v->ranges));
        v->vdistance = calloc((size_t)v->nr_vnodes * v->nr_vnodes + 1, sizeof(*v->vdistance));
        v->vcpu_to_vnode = calloc((size_t)v->nr_vcpus + 1, sizeof(*v->vcpu_to_vnode));
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
    CAMLlocal2(v2n, owner);
    uint32_t d = u32_arg(domid, DOMID_MAX, "xn_domain_getvnuma: domid"), i;
    xn_handle *h = handle_of(&handle);
    struct vnuma_read v;
    int rc;

    owner = owned_new();
    call_begin(handle);
    rc = vnuma_read(h, d, &v);
    call_end(handle);
    if (rc == -EOPNOTSUPP)
        CAMLreturn(Val_int(0)); /* None: Xen answers EOPNOTSUPP for a domain without a layout */
    check(rc, rc == -EAGAIN ? "xn_domain_getvnuma: the layout kept changing while it was read"
                            : "xn_domain_getvnuma"); /* v's arrays are freed on failure */
    /* read outside the lock: handed over before any allocation */
    Owned(owner)->p[0] = v.ranges;
    Owned(owner)->p[1] = v.vdistance;
    Owned(owner)->p[2] = v.vcpu_to_vnode;
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
    owned_free(owner);
    layout = caml_alloc_tuple(3);
    Store_field(layout, 0, ranges);
    Store_field(layout, 1, dists);
    Store_field(layout, 2, v2n);
    result = caml_alloc_tuple(1); /* Some layout */
    Store_field(result, 0, layout);
    CAMLreturn(result);
}
