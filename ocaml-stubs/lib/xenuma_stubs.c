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
#include "xenuma_stubs.h"

/* --- errors ----------------------------------------------------------------------------- */

/* Raise Xenuma.Error (errno of a -errno return, context); never returns. */
void raise_error(int rc, const char *context)
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

void check(int rc, const char *context)
{
    if (rc < 0)
        raise_error(rc, context);
}

/* --- arguments -------------------------------------------------------------------------- */

/* The one conversion of an OCaml int to a C number: 0 with *out set if v is
 * in [0, max], else -EINVAL.  Never a cast: domid 65537 would be domain 1 to
 * Xen's 16-bit domid_t, -1 ms a pause of 49.7 days, node 2^32 + 1 node 1. */
int u32_of_int(value v, uint32_t max, uint32_t *out)
{
    intnat i = Long_val(v);

    if (i < 0 || (uintnat)i > max)
        return -EINVAL;
    *out = (uint32_t)i;
    return 0;
}

/* u32_of_int or Error (EINVAL, "<what> <v> out of range").  It raises: a stub
 * converts its arguments before it holds anything. */
uint32_t u32_arg(value v, uint32_t max, const char *what)
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
uint32_t count_arg(value array, const char *what)
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
void path_arg(value s, const char *what)
{
    if (!caml_string_is_c_safe(s))
        raise_error(-EINVAL, what);
}

/* --- the handle ------------------------------------------------------------------------- */

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
void enter_blocking(void)
{
    caml_enter_blocking_section_no_pending();
}

/* Release the runtime lock for a call on the handle, counting it in flight. */
void call_begin(value v)
{
    Box(v)->in_flight++;
    enter_blocking();
}

/* The call is back (runtime lock held): the last one in flight after a [close] closes it. */
void call_done(struct handle_box *b)
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
xn_handle *handle_of(value *root)
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

/* Free what `v` owns, and empty it: the stub calls it once its answer is built, the GC
 * (its finaliser) for what a raise left, or for nothing. */
void owned_free(value v)
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
value owned_new(void)
{
    value v = caml_alloc_custom(&owned_ops, sizeof(struct owned), 0, 1);

    memset(Owned(v), 0, sizeof(struct owned));
    return v;
}
