/*
 * What the files of the OCaml stubs share (private: not installed).  Every
 * file includes it first: _GNU_SOURCE must come before any system header.
 * xenuma_stubs.c: errors, the conversion of arguments, the handle, C memory
 * an answer is built from (its conventions hold for every file);
 * host_stubs.c: the host's topology, memory and features; domain_stubs.c:
 * domains, vCPUs, affinity, claims, pages per node; move_stubs.c: moving
 * memory; vnuma_stubs.c: vNUMA layouts.
 */
#ifndef XENUMA_STUBS_H
#define XENUMA_STUBS_H

#define _GNU_SOURCE
#include <errno.h>
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

/* Bounds of the ints the stubs take from OCaml (all at least 0). */
#define U32_MAX 0xFFFFFFFFu
#define DOMID_MAX 0x7FEFu   /* below DOMID_FIRST_RESERVED (xen.h): DOMID_SELF and up name no domain */
#define NODE_MAX 0xFFFFFFFEu /* ~0u is xn_claim's host-wide: never a node */
#define VCPU_MAX U32_MAX
#define DUMP_TIMEOUT_MAX_MS 600000u /* 10 minutes: a dump of the largest host takes seconds */

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

/* `v` must be the stub's CAMLparam-registered handle, read after the lock is back. */
#define call_end(v) do { caml_leave_blocking_section(); call_done(Box(v)); } while (0)

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

/* The helpers every file uses, by the short names the stubs are written with.  As symbols
 * they are xenuma_stubs_*, hidden from the shared object: a static link of xenopsd, whose
 * other stubs may have a check() of their own, meets no short name of ours. */
#define HIDDEN __attribute__((visibility("hidden")))
#define raise_error xenuma_stubs_raise_error
#define check xenuma_stubs_check
#define u32_of_int xenuma_stubs_u32_of_int
#define u32_arg xenuma_stubs_u32_arg
#define count_arg xenuma_stubs_count_arg
#define path_arg xenuma_stubs_path_arg
#define enter_blocking xenuma_stubs_enter_blocking
#define call_begin xenuma_stubs_call_begin
#define call_done xenuma_stubs_call_done
#define handle_of xenuma_stubs_handle_of
#define owned_new xenuma_stubs_owned_new
#define owned_free xenuma_stubs_owned_free

_Noreturn HIDDEN void raise_error(int rc, const char *context);
HIDDEN void check(int rc, const char *context);
HIDDEN int u32_of_int(value v, uint32_t max, uint32_t *out);
HIDDEN uint32_t u32_arg(value v, uint32_t max, const char *what);
HIDDEN uint32_t count_arg(value array, const char *what);
HIDDEN void path_arg(value s, const char *what);
HIDDEN void enter_blocking(void);
HIDDEN void call_begin(value v);
HIDDEN void call_done(struct handle_box *b);
HIDDEN xn_handle *handle_of(value *root);
HIDDEN value owned_new(void);
HIDDEN void owned_free(value v);

#endif
