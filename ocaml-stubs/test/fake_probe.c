/* Test-only: read the fake libxenctrl's counters (absent from a real one:
 * then -1), so the OCaml tests can tell which library is loaded and that
 * nothing leaks; look at the fake guest's memory; make a signal pending
 * where a stub will meet it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <caml/alloc.h>
#include <caml/custom.h>
#include <caml/fail.h>
#include <caml/gc.h>
#include <caml/memory.h>
#include <caml/mlvalues.h>
#include <caml/signals.h>

#include <xenctrl.h>

CAMLextern int caml_convert_signal_number(int); /* OCaml's signal number to the system's */

/* Lower (MiB > 0) or give back (0) the soft limit on address space: a test that no
 * allocation by the gfn count of a far highest gfn is made, whatever the kernel's overcommit. */
CAMLprim value fake_limit_address_space(value mib)
{
    struct rlimit r;
    getrlimit(RLIMIT_AS, &r);
    r.rlim_cur = Int_val(mib) > 0 ? (rlim_t)Int_val(mib) << 20 : r.rlim_max;
    return Val_bool(setrlimit(RLIMIT_AS, &r) == 0);
}

CAMLprim value fake_open_handles(value unit)
{
    int *p = dlsym(RTLD_DEFAULT, "fake_xc_open_handles");
    (void)unit;
    return Val_int(p ? *p : -1);
}

CAMLprim value fake_heap_in_use(value unit)
{
    long (*f)(void) = (long (*)(void))dlsym(RTLD_DEFAULT, "fake_xc_heap_in_use");
    (void)unit;
    return Val_long(f ? f() : -1);
}

CAMLprim value fake_last_claim_node(value unit)
{
    unsigned long *p = dlsym(RTLD_DEFAULT, "fake_xc_last_claim_node");
    (void)unit;
    return Val_long(p ? (long)*p : -2);
}

/* Hold (or let go) xc_physinfo inside the fake library, to race a call in flight. */
CAMLprim value fake_hold_physinfo(value on)
{
    int *p = dlsym(RTLD_DEFAULT, "fake_xc_hold_physinfo");
    if (p)
        __atomic_store_n(p, Bool_val(on), __ATOMIC_SEQ_CST);
    return Val_unit;
}

/* Calls waiting inside the fake library now. */
CAMLprim value fake_held(value unit)
{
    int *p = dlsym(RTLD_DEFAULT, "fake_xc_held");
    (void)unit;
    return Val_int(p ? __atomic_load_n(p, __ATOMIC_SEQ_CST) : -1);
}

/* Calls (or closes) the fake library saw on an interface already closed. */
CAMLprim value fake_used_after_close(value unit)
{
    int *p = dlsym(RTLD_DEFAULT, "fake_xc_used_after_close");
    (void)unit;
    return Val_int(p ? __atomic_load_n(p, __ATOMIC_SEQ_CST) : -1);
}

/* While set, xc_numainfo answers that the host has no node (Xen never does:
 * every host has node 0), as a broken hypervisor or a fake might. */
static int numainfo_no_nodes;

CAMLprim value fake_numainfo_no_nodes(value on)
{
    numainfo_no_nodes = Bool_val(on);
    return Val_unit;
}

/* This executable's xc_numainfo, which libxenuma's calls bind to: the loaded
 * libxenctrl's, or a count of 0 while numainfo_no_nodes is set. */
int xc_numainfo(xc_interface *xch, unsigned *max_nodes, xc_meminfo_t *meminfo, uint32_t *distance)
{
    int (*next)(xc_interface *, unsigned *, xc_meminfo_t *, uint32_t *);

    if (numainfo_no_nodes) {
        *max_nodes = 0;
        return 0;
    }
    *(void **)&next = dlsym(RTLD_NEXT, "xc_numainfo"); /* at every call: threads may call at once */
    return next ? next(xch, max_nodes, meminfo, distance) : -1;
}

/* --- the map sizes --------------------------------------------------------------------- */

/* While set, xc_get_max_cpus and xc_get_max_nodes wait inside the library, as
 * libxc's first call of each waits for its physinfo hypercall -- up to 2 s, so
 * that a stub holding the runtime lock there holds up the test, not ends it. */
static int hold_map_sizes, map_sizes_held, map_size_calls;

CAMLprim value fake_hold_map_sizes(value on)
{
    __atomic_store_n(&hold_map_sizes, Bool_val(on), __ATOMIC_SEQ_CST);
    return Val_unit;
}

/* Calls waiting there now. */
CAMLprim value fake_map_sizes_held(value unit)
{
    (void)unit;
    return Val_int(__atomic_load_n(&map_sizes_held, __ATOMIC_SEQ_CST));
}

/* Calls of xc_get_max_cpus and xc_get_max_nodes so far. */
CAMLprim value fake_map_size_calls(value unit)
{
    (void)unit;
    return Val_int(__atomic_load_n(&map_size_calls, __ATOMIC_SEQ_CST));
}

static void map_size_asked(void)
{
    int waited;

    __atomic_add_fetch(&map_size_calls, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&hold_map_sizes, __ATOMIC_SEQ_CST))
        return;
    __atomic_add_fetch(&map_sizes_held, 1, __ATOMIC_SEQ_CST);
    for (waited = 0; waited < 2000 && __atomic_load_n(&hold_map_sizes, __ATOMIC_SEQ_CST); waited++)
        usleep(1000);
    __atomic_sub_fetch(&map_sizes_held, 1, __ATOMIC_SEQ_CST);
}

/* This executable's xc_get_max_cpus and xc_get_max_nodes, which libxenuma's
 * calls bind to: counted (and held), then the loaded libxenctrl's.  Looked up
 * at every call: threads may call at once. */
int xc_get_max_cpus(xc_interface *xch)
{
    int (*next)(xc_interface *);

    map_size_asked();
    *(void **)&next = dlsym(RTLD_NEXT, "xc_get_max_cpus");
    return next ? next(xch) : -1;
}

int xc_get_max_nodes(xc_interface *xch)
{
    int (*next)(xc_interface *);

    map_size_asked();
    *(void **)&next = dlsym(RTLD_NEXT, "xc_get_max_nodes");
    return next ? next(xch) : -1;
}

/* --- the fake guest (domid 1: fake_xenctrl.c's guest-memory model) --------------------- */

static void *fake_sym(const char *name)
{
    return dlsym(RTLD_DEFAULT, name);
}

/* A fresh guest: RAM gfns 0..2047 on node 0, unpaused. */
CAMLprim value fake_guest_reset(value unit)
{
    void (*f)(void) = (void (*)(void))fake_sym("fake_xc_guest_reset");
    (void)unit;
    if (f)
        f();
    return Val_unit;
}

/* The node of the frame behind a gfn of domid 1; -1 for none. */
CAMLprim value fake_gfn_node(value gfn)
{
    long (*frame)(uint32_t, uint64_t) = (long (*)(uint32_t, uint64_t))fake_sym("fake_xc_gfn_frame");
    int (*node)(long) = (int (*)(long))fake_sym("fake_xc_frame_node");
    long mfn = frame && node ? frame(1, (uint64_t)Long_val(gfn)) : -1;
    return Val_int(mfn < 0 ? -1 : node(mfn));
}

/* Does a gfn of domid 1 hold what it held at the start? */
CAMLprim value fake_gfn_intact(value gfn)
{
    const uint8_t *(*page)(uint64_t) = (const uint8_t *(*)(uint64_t))fake_sym("fake_xc_gfn_page");
    void (*initial)(uint64_t, uint8_t *) = (void (*)(uint64_t, uint8_t *))fake_sym("fake_xc_initial_page");
    uint8_t want[4096];
    const uint8_t *now;

    if (!page || !initial)
        return Val_false;
    now = page((uint64_t)Long_val(gfn));
    initial((uint64_t)Long_val(gfn), want);
    return Val_bool(now && memcmp(now, want, sizeof(want)) == 0);
}

/* Domain 1's pause count (each pause not yet given back). */
CAMLprim value fake_pause_count(value unit)
{
    int (*f)(uint32_t) = (int (*)(uint32_t))fake_sym("fake_xc_pause_count");
    (void)unit;
    return Val_int(f ? f(1) : -1);
}

/* Guest pages the fake libxenforeignmemory has mapped now. */
CAMLprim value fake_live_mappings(value unit)
{
    long *p = fake_sym("fake_fmem_live_mappings");
    (void)unit;
    return Val_long(p ? *p : -1);
}

/* --- arrays longer than a uint32_t counts ---------------------------------------------- */

/* Arrays of 2^32 entries and more, for set_vnuma's counts (uint32_t in
 * libxenuma), without the 32 GiB such an array takes: blocks outside the OCaml
 * heap (black, as the runtime wants those), in a page of their own, whose
 * header claims the length.  Only the first entries are there; a stub that
 * reads past them reads past the page.  Never unmapped: a test makes a few. */
static value *oob_page(void)
{
    value *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (page == MAP_FAILED)
        caml_failwith("fake_probe: mmap");
    return page;
}

/* A block at *at of `wosize` words as its header says, `here` of them in the
 * page; *at moves past those. */
static value oob_block(value **at, tag_t tag, uintnat wosize, uintnat here)
{
    value *hp = *at;

    hp[0] = (value)Make_header(wosize, tag, Caml_black);
    *at = hp + 1 + here;
    return (value)(hp + 1);
}

/* An int array of `n` entries: the page's worth of them are 0. */
CAMLprim value fake_long_ints(value n)
{
    value *page = oob_page(), *at = page, a;
    uintnat here = 4096 / sizeof(value) - 1, i;

    a = oob_block(&at, 0, (uintnat)Long_val(n), here);
    for (i = 0; i < here; i++)
        Field(a, i) = Val_int(0);
    return a;
}

/* Review 5: an int array of `n` entries whose first `k` (k < 511) are 0 and whose
 * entry k is -1: a stub that checks the entries one by one stops there (EINVAL)
 * after writing k of them, so it never reads past the page. */
CAMLprim value fake_long_ints_bad_at(value n, value k)
{
    value *page = oob_page(), *at = page, a;
    uintnat here = 4096 / sizeof(value) - 1, i;

    a = oob_block(&at, 0, (uintnat)Long_val(n), here);
    for (i = 0; i < here; i++)
        Field(a, i) = Val_int(i < (uintnat)Long_val(k) ? 0 : -1);
    return a;
}

/* A boxed int64 at *at, with the ops of `like` (a real one). */
static value oob_int64(value **at, value like, int64_t x)
{
    value v = oob_block(at, Custom_tag, 2, 2);

    Field(v, 0) = (value)Custom_ops_val(like);
    *(int64_t *)Data_custom_val(v) = x;
    return v;
}

/* A vmemrange at *at: {start; stop; vnode}. */
static value oob_range(value **at, value like, int64_t start, int64_t stop)
{
    value r = oob_block(at, 0, 3, 3);

    Field(r, 0) = oob_int64(at, like, start);
    Field(r, 1) = oob_int64(at, like, stop);
    Field(r, 2) = Val_int(0);
    return r;
}

/* A vmemrange array of `n` entries: the first {0; 256 MiB; vnode 0}, the second
 * starting at -1, so that a stub reading on past a count cut to 1 stops there
 * (EINVAL) instead of running off the page. */
CAMLprim value fake_long_ranges(value n)
{
    CAMLparam1(n);
    CAMLlocal1(like);
    value *page = oob_page(), *at = page, a;

    like = caml_copy_int64(0);
    a = oob_block(&at, 0, (uintnat)Long_val(n), 2);
    Field(a, 0) = oob_range(&at, like, 0, 256 << 20);
    Field(a, 1) = oob_range(&at, like, -1, 0);
    CAMLreturn(a);
}

/* --- signals ---------------------------------------------------------------------------- */

/* Make an OCaml signal pending without running its handler: the runtime's C
 * handler only records it, and this returns without polling (Unix.kill polls
 * before it returns).  The OCaml handler then runs at the next poll: inside
 * the next stub, as for a signal that arrives just before a call. */
CAMLprim value fake_signal_pending(value signo)
{
    raise(caml_convert_signal_number(Int_val(signo)));
    return Val_unit;
}

/* The signal strdup makes pending at its next call (0: none). */
static int signal_at_strdup;

/* Arm it: an OCaml stub that copies a path with the runtime lock held
 * (recover's record) then meets the signal between its last poll and the
 * release of the lock, where no OCaml code runs that could handle it first. */
CAMLprim value fake_signal_at_strdup(value signo)
{
    signal_at_strdup = caml_convert_signal_number(Int_val(signo));
    return Val_unit;
}

/* This executable's strdup, which the stubs' calls bind to: libc's, after the
 * armed signal.  Written out rather than reached through dlsym, which may
 * itself copy a string. */
char *strdup(const char *s)
{
    int signo = signal_at_strdup;
    size_t n = strlen(s) + 1;
    char *copy;

    signal_at_strdup = 0;
    if (signo)
        raise(signo);
    copy = malloc(n);
    if (copy)
        memcpy(copy, s, n);
    return copy;
}

/* Run what is pending (the handler of a signal made pending above). */
CAMLprim value fake_run_pending(value unit)
{
    (void)unit;
    caml_process_pending_actions();
    return Val_unit;
}

/* Let a held xc_physinfo go with `signo` pending, and wait, the runtime lock
 * released without running the handler, until the interfaces open are down to
 * `open_then` or a second has passed: the thread whose call was held ends it
 * (in the stub's call_done, closing a handle closed meanwhile) with the
 * signal pending. */
CAMLprim value fake_release_physinfo_with_signal(value signo, value open_then)
{
    int *hold = fake_sym("fake_xc_hold_physinfo"), *open = fake_sym("fake_xc_open_handles");
    int want = Int_val(open_then), waited;

    raise(caml_convert_signal_number(Int_val(signo)));
    if (hold)
        __atomic_store_n(hold, 0, __ATOMIC_SEQ_CST);
    caml_enter_blocking_section_no_pending();
    for (waited = 0; open && waited < 1000 && __atomic_load_n(open, __ATOMIC_SEQ_CST) != want; waited++)
        usleep(1000);
    caml_leave_blocking_section();
    return Val_unit;
}

/* Domain 1's max_pages now. */
CAMLprim value fake_max_pages(value unit)
{
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    xc_domaininfo_t info;
    long max = -1;

    (void)unit;
    if (xch && xc_domain_getinfolist(xch, 1, 1, &info) == 1)
        max = (long)info.max_pages;
    if (xch)
        xc_interface_close(xch);
    return Val_long(max);
}

/* The toolstack caps domain 1's max_pages `below` pages under its page count (as squeezed
 * does while its balloon driver is on its way down); returns the cap (-1: not done). */
CAMLprim value fake_cap_max(value below)
{
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    xc_domaininfo_t info;
    long cap = -1;

    if (xch && xc_domain_getinfolist(xch, 1, 1, &info) == 1) {
        cap = (long)info.tot_pages - Long_val(below);
        if (xc_domain_setmaxmem(xch, 1, (uint64_t)cap * 4))
            cap = -1;
    }
    if (xch)
        xc_interface_close(xch);
    return Val_long(cap);
}
