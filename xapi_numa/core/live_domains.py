"""The live domains as one read of the hypervisor lists them: domid -> UUID.  Pure.

A start's dry run reads this list on every call, on hosts of a thousand
domains.  It is kept as Xen gives it, the domids ascending and their 16-byte
handles end to end, and a UUID's text is made only when asked for: the start
compares the whole list with xapi-numad's tally at once (:meth:`fingerprint`,
text joined in C) and looks up its few reserved VMs (:meth:`domid_of`), where
formatting every UUID had been a third of its time.
"""
import itertools
import uuid as uuidlib
from typing import Collection, Iterator, List, Mapping, Optional, Sequence, Tuple

HANDLE = 16  # bytes of a domain handle (a UUID)


def uuid_text(handle: bytes) -> str:
    """A handle's 16 bytes as a UUID's text (what ``str(uuid.UUID(bytes=...))`` gives,
    without building the object)."""
    h = handle.hex()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])  # (quicker than str.format)


def fingerprint_of(uuids: Mapping[int, str]) -> Tuple[str, str]:
    """What :meth:`LiveDomains.fingerprint` gives for the same domains, from their UUIDs'
    text: the domids ascending, comma-separated, and their handles in hex, end to end."""
    ordered = sorted(uuids)
    return ",".join(map(str, ordered)), "".join(uuids[d].replace("-", "").lower() for d in ordered)


class LiveDomains(Mapping):
    """domid -> UUID (text) of the live domains, in domid order."""

    __slots__ = ("_domids", "_handles", "_index")

    def __init__(self, domids: Sequence[int], handles: bytes) -> None:
        """``handles``: the domains' handles, ``HANDLE`` bytes each, in the order of ``domids``."""
        if len(handles) != HANDLE * len(domids):
            raise ValueError("{} handle bytes for {} domains".format(len(handles), len(domids)))
        order = sorted(range(len(domids)), key=domids.__getitem__)
        if order != list(range(len(domids))):  # (Xen lists them ascending already)
            handles = b"".join(handles[HANDLE * i:HANDLE * (i + 1)] for i in order)
            domids = [domids[i] for i in order]
        self._domids: Tuple[int, ...] = tuple(domids)
        self._handles = bytes(handles)
        self._index = {d: i for i, d in enumerate(self._domids)}
        if len(self._index) != len(self._domids):
            raise ValueError("a domid listed twice")

    @classmethod
    def of(cls, uuids: Mapping[int, str]) -> "LiveDomains":
        """From UUIDs' text (a host that keeps them as text: the simulator, tests)."""
        ordered = sorted(uuids)
        return cls(ordered, b"".join(uuidlib.UUID(uuids[d]).bytes for d in ordered))

    # --- the Mapping --------------------------------------------------------------------
    def __getitem__(self, domid: int) -> str:
        i = self._index[domid]
        return uuid_text(self._handles[HANDLE * i:HANDLE * (i + 1)])

    def __iter__(self) -> Iterator[int]:
        return iter(self._domids)

    def __len__(self) -> int:
        return len(self._domids)

    def __contains__(self, domid: object) -> bool:
        return domid in self._index

    def __repr__(self) -> str:
        return "LiveDomains({!r})".format(dict(self.items()))

    # --- what a start asks --------------------------------------------------------------
    def domid_of(self, uuid: str) -> Optional[int]:
        """The domid of the domain with this UUID, or None.  Two domains share one while
        a VM migrates on its own host: the higher domid, the one being built, is given."""
        try:
            raw = uuidlib.UUID(uuid).bytes
        except ValueError:
            return None
        pos = self._handles.rfind(raw)
        while pos >= 0 and pos % HANDLE:  # a match across two handles is no handle
            pos = self._handles.rfind(raw, 0, pos + HANDLE - 1)
        return None if pos < 0 else self._domids[pos // HANDLE]

    def fingerprint(self, skip: Collection[int] = ()) -> Tuple[str, str]:
        """The domids ascending, comma-separated, and their handles in hex, end to end,
        but those of ``skip``: equal for equal lists (:func:`fingerprint_of`)."""
        cuts = sorted(self._index[d] for d in set(skip) if d in self._index)
        ids: List[Sequence[int]] = []
        handles: List[bytes] = []
        start = 0
        for i in cuts + [len(self._domids)]:
            ids.append(self._domids[start:i])
            handles.append(self._handles[HANDLE * start:HANDLE * i])
            start = i + 1
        return ",".join(map(str, itertools.chain.from_iterable(ids))), b"".join(handles).hex()
