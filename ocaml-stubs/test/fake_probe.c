/* Test-only: read the fake libxenctrl's counters (absent from a real one:
 * then -1), so the OCaml tests can tell which library is loaded and that
 * nothing leaks. */
#define _GNU_SOURCE
#include <dlfcn.h>

#include <caml/alloc.h>
#include <caml/memory.h>
#include <caml/mlvalues.h>

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
