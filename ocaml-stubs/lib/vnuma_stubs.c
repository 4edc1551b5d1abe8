/* OCaml stubs over libxenuma: vNUMA: a domain's layout set and read.
 * Their conventions, and what every file shares: xenuma_stubs.c, xenuma_stubs.h. */
#include "xenuma_stubs.h"

/* --- vNUMA ------------------------------------------------------------------------------ */

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
