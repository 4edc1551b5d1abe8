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
