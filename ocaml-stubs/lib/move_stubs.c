/* OCaml stubs over libxenuma: moving memory between nodes.
 * Their conventions, and what every file shares: xenuma_stubs.c, xenuma_stubs.h. */
#include "xenuma_stubs.h"

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
