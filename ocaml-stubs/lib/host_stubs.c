/* OCaml stubs over libxenuma: the host's topology, memory, console dump and features.
 * Their conventions, and what every file shares: xenuma_stubs.c, xenuma_stubs.h. */
#include "xenuma_stubs.h"

#define MAX_CPUS 4096u

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
