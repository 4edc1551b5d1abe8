"""The live domains as one read of the hypervisor lists them: domid -> UUID.  Pure.

A start's dry run reads this list on every call, on hosts of a thousand
domains.  It is kept as Xen gives it, the domids ascending and their 16-byte
handles end to end, and a UUID's text is made only when asked for: the start
compares the whole list with xapi-numad's tally at once (:meth:`fingerprint`,
a digest of the raw list) and looks up its few reserved VMs (:meth:`domid_of`),
where formatting every UUID had been a third of its time.  Look-ups by domid
bisect the sorted domids: a start asks few, and a table of a thousand would
cost more to build than they do.
"""
import bisect
import hashlib
import itertools
import operator
import struct
from typing import Collection, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set

HANDLE = 16  # bytes of a domain handle (a UUID)
SIEVE_FROM = 8  # UUIDs looked for at once from which sieving the list is quicker than searching it per UUID
SIEVE_BYTES = 4  # leading bytes of a handle the sieve compares


def uuid_text(handle: bytes) -> str:
    """A handle's 16 bytes as a UUID's text (what ``str(uuid.UUID(bytes=...))`` gives,
    without building the object)."""
    h = handle.hex()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])  # (quicker than str.format)


def handle_of(uuid: str) -> Optional[bytes]:
    """A UUID's text as Xen's 16-byte handle (any case; what ``uuid.UUID`` reads), None if
    it is no UUID.  The usual form, 8-4-4-4-12 hex digits, is read without the object."""
    if len(uuid) == 36 and uuid[8] == uuid[13] == uuid[18] == uuid[23] == "-":
        try:
            raw = bytes.fromhex(uuid.replace("-", ""))  # (it skips spaces: the length says if any were there)
        except ValueError:
            return None
        return raw if len(raw) == HANDLE else None
    import uuid as uuidlib  # only for other forms: on Python 3.6 it loads ctypes (see core.host.uuid4_text)
    try:
        return uuidlib.UUID(uuid).bytes
    except (ValueError, TypeError, AttributeError):
        return None


def handles_of(uuids: Sequence[str]) -> Optional[bytes]:
    """The handles of ``uuids``, end to end, if every one is in the usual form (what
    :func:`handle_of` reads without the object, 32 hex digits and four dashes where a
    UUID has them); else None.  One C-speed pass over them all, not one per UUID (a
    start looks up a boot storm's reservations): of 36 characters each with the dashes
    in place, only 32 hex digits each give 16 bytes each (a space, which ``fromhex``
    skips, or a dash elsewhere leaves fewer digits; anything else is refused)."""
    count = len(uuids)
    if set(map(type, uuids)) - {str} or set(map(len, uuids)) - {36}:
        return None
    joined = "".join(uuids)
    if any(joined[at::36] != "-" * count for at in (8, 13, 18, 23)):
        return None
    try:
        raw = bytes.fromhex(joined.replace("-", ""))
    except ValueError:
        return None
    return raw if len(raw) == HANDLE * count else None


def _digest(domids: bytes, handles: bytes) -> str:
    # equality of two lists, not a secret: any digest of the bytes would do; this one is quick
    return hashlib.sha256(domids + handles).hexdigest()


def _packed(domids: Sequence[int]) -> bytes:
    return struct.pack("<%dq" % len(domids), *domids)


def fingerprint_of(uuids: Mapping[int, str]) -> str:
    """What :meth:`LiveDomains.fingerprint` gives for the same domains, from their UUIDs'
    text (in any case).  A text that is no UUID names no domain of Xen's: then "", which
    no digest is (its own bytes in the digest read as handles, 16 of them as one)."""
    ordered = sorted(uuids)
    handles = [handle_of(uuids[d]) for d in ordered]
    return "" if None in handles else _digest(_packed(ordered), b"".join(handles))


class LiveDomains(Mapping):
    """domid -> UUID (text) of the live domains, in domid order."""

    __slots__ = ("_domids", "_handles")

    def __init__(self, domids: Sequence[int], handles: bytes) -> None:
        """``handles``: the domains' handles, ``HANDLE`` bytes each, in the order of ``domids``."""
        if len(handles) != HANDLE * len(domids):
            raise ValueError("{} handle bytes for {} domains".format(len(handles), len(domids)))
        domids = tuple(domids)
        if not all(map(operator.lt, domids, itertools.islice(domids, 1, None))):  # (Xen lists them ascending)
            order = sorted(range(len(domids)), key=domids.__getitem__)
            handles = b"".join(handles[HANDLE * i:HANDLE * (i + 1)] for i in order)
            domids = tuple(domids[i] for i in order)
            if len(set(domids)) != len(domids):
                raise ValueError("a domid listed twice")
        self._domids = domids
        self._handles = bytes(handles)

    def _position(self, domid: object) -> Optional[int]:
        """Where ``domid`` is in the list, or None."""
        if not isinstance(domid, int):
            return None
        i = bisect.bisect_left(self._domids, domid)
        return i if i < len(self._domids) and self._domids[i] == domid else None

    @classmethod
    def of(cls, uuids: Mapping[int, str]) -> "LiveDomains":
        """From UUIDs' text (a host that keeps them as text: the simulator, tests)."""
        import uuid as uuidlib  # only here and for other forms: on Python 3.6 it loads ctypes

        ordered = sorted(uuids)
        return cls(ordered, b"".join(uuidlib.UUID(uuids[d]).bytes for d in ordered))

    # --- the Mapping --------------------------------------------------------------------
    def __getitem__(self, domid: int) -> str:
        i = self._position(domid)
        if i is None:
            raise KeyError(domid)
        return uuid_text(self._handles[HANDLE * i:HANDLE * (i + 1)])

    def __iter__(self) -> Iterator[int]:
        return iter(self._domids)

    def __len__(self) -> int:
        return len(self._domids)

    def __contains__(self, domid: object) -> bool:
        return self._position(domid) is not None

    def __repr__(self) -> str:
        return "LiveDomains({!r})".format(dict(self.items()))

    # --- what a start asks --------------------------------------------------------------
    def domid_of(self, uuid: str) -> Optional[int]:
        """The domid of the domain with this UUID, or None.  Two domains share one while
        a VM migrates on its own host: the higher domid, the one being built, is given."""
        raw = handle_of(uuid)
        if raw is None:
            return None
        pos = self._handles.rfind(raw)
        while pos >= 0 and pos % HANDLE:  # a match across two handles is no handle
            pos = self._handles.rfind(raw, 0, pos + HANDLE - 1)
        return None if pos < 0 else self._domids[pos // HANDLE]

    def alive(self, uuids: Iterable[str]) -> Set[str]:
        """Those of ``uuids`` that a live domain has (each one :meth:`domid_of` finds).  For
        many (a boot storm's reservations), the list is sieved in C-speed passes first
        (:meth:`_sieved`): only the few handles that pass are compared whole, instead of a
        search of the list per UUID."""
        uuids = list(uuids)
        if len(uuids) < SIEVE_FROM:
            return {u for u in uuids if self.domid_of(u) is not None}
        wanted: Dict[bytes, List[str]] = {}
        together = handles_of(uuids)  # (all at once, where each is in the usual form)
        for i, u in enumerate(uuids):
            raw = handle_of(u) if together is None else together[HANDLE * i:HANDLE * (i + 1)]
            if raw is not None:
                wanted.setdefault(raw, []).append(u)
        found: Set[str] = set()
        handles = self._handles
        for i in self._sieved(wanted):
            found.update(wanted.get(handles[HANDLE * i:HANDLE * (i + 1)], ()))
        return found

    def _sieved(self, wanted: Collection[bytes]) -> Iterator[int]:
        """The positions of the listed handles whose first :data:`SIEVE_BYTES` bytes are each,
        byte by byte, one that some handle of ``wanted`` has there: every position where a
        handle of ``wanted`` is, and few others (for 32 random UUIDs, about one in 4000).  Each
        byte column of the list is marked through a table (``bytes.translate``) and the
        marks are and-ed as one integer: no Python work per listed domain."""
        count = len(self._domids)
        marks = -1
        for k in range(SIEVE_BYTES):
            table = bytearray(256)
            for raw in wanted:
                table[raw[k]] = 1
            marks &= int.from_bytes(self._handles[k::HANDLE].translate(table), "little")
        if marks <= 0:
            return
        passed = marks.to_bytes(count, "little")
        i = passed.find(1)
        while i >= 0:
            yield i
            i = passed.find(1, i + 1)

    def fingerprint(self, skip: Collection[int] = ()) -> str:
        """A digest of the domids and their handles, but those of ``skip``: equal for
        equal lists (:func:`fingerprint_of`), and different, but by a digest's chance,
        for different ones."""
        cuts = sorted(i for i in map(self._position, set(skip)) if i is not None)
        spans = list(zip([0] + [i + 1 for i in cuts], cuts + [len(self._domids)]))
        digest = hashlib.sha256()  # (as _digest: the domids, then the handles; fed a span at a time, not copied)
        for start, end in spans:
            digest.update(_packed(self._domids[start:end]))
        handles = memoryview(self._handles)
        for start, end in spans:
            digest.update(handles[HANDLE * start:HANDLE * end])
        return digest.hexdigest()
