/* pagelayout: see pagelayout.h. */
#include "pagelayout.h"

#include <errno.h>
#include <string.h>

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/*
 * struct vcpu_time_info (32 bytes): u32 version, u32 pad0, u64 tsc_timestamp,
 * u64 system_time, u32 tsc_to_system_mul, s8 tsc_shift, u8 flags, u8 pad1[2].
 * Xen fills it: the pads are zero; the multiplier is a normalised fraction
 * in [2^30, 2^32): set_time_scale keeps it in [2^31, 2^32), and on a CPU
 * without a constant TSC each calibration may slow a fast local clock by a
 * factor Xen clamps at 0.5 (local_time_calibration), which takes it below
 * 2^31 now and then -- so bit 31 or 30 is set, which tells it from
 * page-table entries and small integers.  The shift is small; only the two
 * defined flag bits occur; system time (ns since boot) is positive and far
 * below 2^62 (146 years).
 */
#define TIME_MUL_MIN 0x40000000u

static int is_time_record(const uint8_t *p)
{
    int8_t shift = (int8_t)p[28];
    uint64_t system_time = rd64(p + 16);

    return rd32(p + 4) == 0 && rd16(p + 30) == 0 && rd32(p + 24) >= TIME_MUL_MIN && shift >= -16 &&
           shift <= 16 && (p[29] & ~0x3u) == 0 && rd64(p + 8) != 0 && system_time > 1000000ull &&
           system_time < (1ull << 62);
}

/*
 * struct vcpu_info (64 bytes on x86-64): u8 upcall_pending, u8 upcall_mask,
 * pad to 8, u64 pending_sel, arch {u64 cr2, u64 pad}, vcpu_time_info.
 */
static int is_vcpu_info(const uint8_t *p)
{
    return p[0] <= 1 && p[1] <= 1 && rd32(p + 2) == 0 && rd16(p + 6) == 0 && rd64(p + 24) == 0 &&
           is_time_record(p + 32);
}

/* FIFO event word: PENDING 31, MASKED 30, LINKED 29, BUSY 28, link in 0..16. */
#define EVTCHN_FIFO_MASKED (1u << 30)
#define EVTCHN_FIFO_UNUSED_BITS 0x0ffe0000u
#define EVTCHN_FIFO_MAX_PORT (1u << 17)
#define EVTCHN_FIFO_WORDS (XN_PAGE_SIZE / 4)
#define CONTROL_BLOCK_BYTES 72 /* u32 ready, u32 rsvd, u32 head[16] */

/*
 * An event-array page: guests (Linux: init_array_page) set MASKED on every
 * word when they add the page, and unmask only bound ports; no word uses
 * the bits between the flags and the link.
 */
static int is_event_array(const uint8_t *page)
{
    unsigned int masked = 0, i;

    /* Most pages are not: decide from 16 words spread over the page before
     * reading all.  (Not from the first words: the low ports are the bound,
     * unmasked ones -- timers, IPIs, xenstore, console.) */
    for (i = 0; i < EVTCHN_FIFO_WORDS; i += EVTCHN_FIFO_WORDS / 16)
        masked += (rd32(page + 4 * i) & EVTCHN_FIFO_MASKED) != 0;
    if (masked < 8)
        return 0;
    masked = 0;
    for (i = 0; i < EVTCHN_FIFO_WORDS; i++) {
        uint32_t w = rd32(page + 4 * i);
        if (w & EVTCHN_FIFO_UNUSED_BITS)
            return 0;
        masked += (w & EVTCHN_FIFO_MASKED) != 0;
    }
    return masked >= EVTCHN_FIFO_WORDS * 3 / 4;
}

/*
 * A control block at offset 0 of an otherwise zeroed page: 16 ready bits,
 * a zero reserved word, heads that are port numbers, at least one of them
 * set (the timer's port, once it has fired: an idle, never-used block is all
 * zeros and cannot be told from a zero page -- the probe finds those).
 */
static int is_control_block(const uint8_t *page)
{
    unsigned int i, nonzero = 0;

    if (rd32(page) > 0xffffu || rd32(page + 4) != 0)
        return 0;
    for (i = 0; i < 16; i++) {
        uint32_t head = rd32(page + 8 + 4 * i);
        if (head >= EVTCHN_FIFO_MAX_PORT)
            return 0;
        nonzero += head != 0;
    }
    if (!nonzero && rd32(page) == 0)
        return 0;
    for (i = CONTROL_BLOCK_BYTES; i < XN_PAGE_SIZE; i += 8)
        if (rd64(page + i))
            return 0;
    return 1;
}

int xn_page_layout(const uint8_t *page)
{
    unsigned int off;

    if (is_control_block(page) || is_event_array(page))
        return XN_LAYOUT_EVTCHN;
    /* Only whole vcpu_infos: Xen 4.17 keeps those mapped, while it writes
     * registered runstate and time areas through the guest's address space
     * (copy_to_guest), which follows a moved frame. */
    for (off = 0; off < XN_PAGE_SIZE; off += 64)
        if (is_vcpu_info(page + off))
            return XN_LAYOUT_VCPU_INFO;
    return XN_LAYOUT_PLAIN;
}

#define GTF_TYPE_MASK 3u
#define GTF_PERMIT_ACCESS 1u
#define GTF_READING (1u << 3)
#define GTF_WRITING (1u << 4)

long xn_granted_gfns(const uint8_t *table, size_t nr_entries, int version, uint64_t *gfns, size_t cap,
                     size_t *busy)
{
    size_t i, out = 0, size = version == 1 ? 8 : 16;

    if (version != 1 && version != 2)
        return -EINVAL;
    *busy = 0;
    for (i = 0; i < nr_entries && out < cap; i++) {
        const uint8_t *e = table + i * size;
        uint16_t flags = rd16(e);
        /* v1: u16 flags, u16 domid, u32 frame; v2 full_page: header, u32 pad, u64 frame */
        uint64_t frame = version == 1 ? rd32(e + 4) : rd64(e + 8);
        if ((flags & GTF_TYPE_MASK) != GTF_PERMIT_ACCESS)
            continue;
        if (flags & (GTF_READING | GTF_WRITING))
            (*busy)++;
        gfns[out++] = frame;
    }
    return (long)out;
}

size_t xn_superpage_runs(const uint64_t *gfns, size_t n, uint8_t *is_super)
{
    size_t i = 0, runs = 0;

    memset(is_super, 0, n);
    while (i < n) {
        if (gfns[i] % XN_SUPERPAGE_PAGES == 0 && i + XN_SUPERPAGE_PAGES <= n &&
            gfns[i + XN_SUPERPAGE_PAGES - 1] == gfns[i] + XN_SUPERPAGE_PAGES - 1) {
            memset(is_super + i, 1, XN_SUPERPAGE_PAGES);
            i += XN_SUPERPAGE_PAGES;
            runs++;
        } else {
            i++;
        }
    }
    return runs;
}

uint64_t xn_unfreed(uint64_t before, uint64_t after, uint64_t released)
{
    /* Unsigned: before - after would wrap to a huge "freed" if the count rose. */
    uint64_t freed = before > after ? before - after : 0;
    return freed >= released ? 0 : released - freed;
}
