/*
 * A stand-in libxenforeignmemory.so.1 over fake_xenctrl.c's guest-memory
 * model, for tests of the page mover without Xen.  A mapping is what privcmd
 * gives dom0: page i of it is the machine frame behind arr[i] at the time of
 * the call (it stays that frame whatever the p2m does later), and it holds a
 * reference on that frame until it is unmapped, so Xen cannot free a frame
 * dom0 still maps.  A gfn with nothing behind it gets its error in err[] and
 * is left inaccessible (touching it faults, as privcmd's SIGBUS would).
 * Test-only code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xen/memory.h>

#include <xenforeignmemory.h>

/* fake_xenctrl.c (this library is linked against it) */
int fake_xc_machine_fd(void);
long fake_xc_gfn_frame(uint32_t domid, uint64_t gfn);
void fake_xc_frame_get(long mfn);
void fake_xc_frame_put(long mfn);
void fake_xc_note_unmap(uint32_t domid);
const uint8_t *fake_xc_grant_table(void);
int xc_domain_decrease_reservation(void *xch, uint32_t domid, unsigned long nr_extents, unsigned int extent_order,
                                   xen_pfn_t *extent_start);

#define PAGE 4096ul

struct mapping {
    struct mapping *next;
    uint8_t *addr;
    size_t pages;
    uint32_t dom;
    long frames[];   /* -1 where nothing was mapped */
};

static struct mapping *mappings; /* this process's */
static int handle_stand_in;
long fake_fmem_live_mappings;

xenforeignmemory_handle *xenforeignmemory_open(struct xentoollog_logger *logger, unsigned int open_flags)
{
    (void)logger; (void)open_flags;
    return (xenforeignmemory_handle *)&handle_stand_in;
}

int xenforeignmemory_close(xenforeignmemory_handle *fmem)
{
    (void)fmem;
    return 0;
}

/* FAKE_FMEM_GIVE_BACK_AT_MAP="g1,g2,...": the guest's balloon driver gives back the next
 * gfn of the list at each map of domain 1 (one per call, until the list is used up), just
 * before the map reads the p2m: a balloon driver busy while the mover maps its batch. */
static void give_back_at_map(uint32_t dom)
{
    static char last[256];
    static size_t used;
    const char *list = getenv("FAKE_FMEM_GIVE_BACK_AT_MAP");
    const char *at;
    xen_pfn_t gfn;
    size_t k;

    if (!list || dom != 1)
        return;
    if (strncmp(list, last, sizeof(last) - 1)) { /* a new list: from its start */
        strncpy(last, list, sizeof(last) - 1);
        used = 0;
    }
    for (at = list, k = 0; *at && k < used; k++) {
        at = strchr(at, ',');
        at = at ? at + 1 : "";
    }
    if (!*at)
        return;
    used++;
    gfn = strtoull(at, NULL, 0);
    xc_domain_decrease_reservation(NULL, 1, 1, 0, &gfn);
}

void *xenforeignmemory_map(xenforeignmemory_handle *fmem, uint32_t dom, int prot, size_t pages,
                           const xen_pfn_t arr[], int err[])
{
    struct mapping *m;
    size_t i;

    if (!fmem || pages == 0) {
        errno = EINVAL;
        return NULL;
    }
    if (getenv("FAKE_FMEM_MAP_FAILS")) { /* a map refused for another reason than a missing frame */
        errno = EIO;
        return NULL;
    }
    give_back_at_map(dom);
    m = malloc(sizeof(*m) + pages * sizeof(long));
    if (!m)
        return NULL;
    m->addr = mmap(NULL, pages * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m->addr == MAP_FAILED) {
        free(m);
        return NULL;
    }
    m->pages = pages;
    m->dom = dom;
    for (i = 0; i < pages; i++) {
        long mfn = fake_xc_gfn_frame(dom, arr[i]);
        m->frames[i] = -1;
        err[i] = mfn < 0 ? -EINVAL : 0;
        if (mfn < 0)
            continue;
        if (mmap(m->addr + i * PAGE, PAGE, prot, MAP_SHARED | MAP_FIXED, fake_xc_machine_fd(),
                 (off_t)mfn * (off_t)PAGE) == MAP_FAILED)
            abort();
        fake_xc_frame_get(mfn);
        m->frames[i] = mfn;
    }
    m->next = mappings;
    mappings = m;
    fake_fmem_live_mappings++;
    return m->addr;
}

int xenforeignmemory_unmap(xenforeignmemory_handle *fmem, void *addr, size_t pages)
{
    struct mapping **pp, *m;
    size_t i;

    (void)fmem;
    for (pp = &mappings; *pp && (*pp)->addr != addr; pp = &(*pp)->next)
        ;
    m = *pp;
    if (!m || m->pages != pages)
        abort(); /* unmapping what was never mapped, or a different length: a caller bug */
    *pp = m->next;
    munmap(m->addr, pages * PAGE);
    for (i = 0; i < pages; i++)
        if (m->frames[i] >= 0)
            fake_xc_frame_put(m->frames[i]);
    fake_xc_note_unmap(m->dom);
    free(m);
    fake_fmem_live_mappings--;
    return 0;
}

int xenforeignmemory_restrict(xenforeignmemory_handle *fmem, domid_t domid)
{
    (void)fmem; (void)domid;
    return 0;
}

void *xenforeignmemory_map2(xenforeignmemory_handle *fmem, uint32_t dom, void *addr, int prot, int flags,
                            size_t pages, const xen_pfn_t arr[], int err[])
{
    (void)addr; (void)flags;
    return xenforeignmemory_map(fmem, dom, prot, pages, arr, err);
}

/* Only the guest's one shared grant frame (fake_xc_grant_table), read-only. */
xenforeignmemory_resource_handle *xenforeignmemory_map_resource(
    xenforeignmemory_handle *fmem, domid_t domid, unsigned int type, unsigned int id, unsigned long frame,
    unsigned long nr_frames, void **paddr, int prot, int flags)
{
    void *copy;
    (void)fmem; (void)prot; (void)flags;
    if (domid != 1 || type != XENMEM_resource_grant_table || id != XENMEM_resource_grant_table_id_shared ||
        frame != 0 || nr_frames != 1) {
        errno = EINVAL;
        return NULL;
    }
    copy = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (copy == MAP_FAILED)
        return NULL;
    memcpy(copy, fake_xc_grant_table(), PAGE);
    mprotect(copy, PAGE, PROT_READ);
    *paddr = copy;
    fake_fmem_live_mappings++;
    return (xenforeignmemory_resource_handle *)copy;
}

int xenforeignmemory_unmap_resource(xenforeignmemory_handle *fmem, xenforeignmemory_resource_handle *fres)
{
    (void)fmem;
    munmap(fres, PAGE);
    fake_fmem_live_mappings--;
    return 0;
}

int xenforeignmemory_resource_size(xenforeignmemory_handle *fmem, domid_t domid, unsigned int type,
                                   unsigned int id, size_t *size)
{
    (void)fmem; (void)domid; (void)type; (void)id; (void)size;
    errno = EOPNOTSUPP;
    return -1;
}
