"""CPU masks as Python ints, with the cpumask helpers Xen's schedulers use."""


def bit(n: int) -> int:
    return 1 << n


def has(mask: int, n: int) -> bool:
    return (mask >> n) & 1 == 1


def first(mask: int) -> int:
    """Lowest set bit (mask must not be empty)."""
    return (mask & -mask).bit_length() - 1


def cycle(n: int, mask: int) -> int:
    """Next set bit strictly after ``n``, wrapping (Xen's cpumask_cycle)."""
    higher = mask >> (n + 1)
    if higher:
        return n + 1 + first(higher)
    return first(mask)


def count(mask: int) -> int:
    return bin(mask).count("1")


def iter_bits(mask: int):
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def soft_effective(hard: int, soft: int, online: int) -> bool:
    """Xen's has_soft_affinity: soft narrows hard and the pool, and meets hard."""
    return (hard & ~soft) != 0 and (hard & soft) != 0 and (online & ~soft) != 0
