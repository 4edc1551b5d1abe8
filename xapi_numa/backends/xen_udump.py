"""Debug key 'u' captures of the Xen adapter: when one is taken, and which one may answer.

The dump walks every page of every domain under a lock, so one capture serves every
reader of the adapter for ``interval`` seconds, and a capture asked for sooner waits
for the interval to pass.  Owned here too: which capture may answer a vNUMA read.  A
capture taken before this adapter last set a domain's layout shows that domain's
old pnodes (a vnode move sets the same ranges and vCPUs with another pnode, so
nothing in the dump tells), so the pnodes of that domain come from a capture begun
after the write.  Pages per node do not change with a layout: their readers keep
the capture there is.  Layouts set by others are caught by comparing the dump with
the layout Xen returns (:mod:`xapi_numa.backends.xen_vnuma`).
"""
import threading
import time
from typing import Callable, Dict, Optional


class DumpCache:
    """The last capture of one adapter and the times that say what it may answer."""

    def __init__(self, capture: Callable[[], bytes], interval: float) -> None:
        self._capture = capture
        self._interval = interval
        self._lock = threading.Lock()
        self._text: Optional[bytes] = None
        self._started = self._ended = 0.0  # when the last capture was begun, and when it ended
        self._written: Dict[int, float] = {}  # domid -> when this adapter last set its layout

    def text(self, fresh: bool = False, begun_after: Optional[float] = None) -> bytes:
        """A capture: the last one while it is younger than the interval (and begun after
        ``begun_after``), else a new one, taken no sooner than the interval allows."""
        with self._lock:
            now = time.monotonic()
            young = self._text is not None and now - self._ended < self._interval  # (the rest is the dump's end)
            if fresh or not young or (begun_after is not None and self._started <= begun_after):
                if young:
                    time.sleep(self._interval - (now - self._ended))
                started = time.monotonic()
                self._text = self._capture()
                self._started, self._ended = started, time.monotonic()
                # a write before this capture is in it: nothing older needs telling apart any more
                self._written = {d: t for d, t in self._written.items() if t >= started}
            return self._text

    def layout_set(self, domid: int) -> None:
        """This adapter just set ``domid``'s layout: earlier captures show its old pnodes."""
        with self._lock:
            self._written[domid] = time.monotonic()

    def for_layout(self, domid: int) -> Callable[[bool], bytes]:
        """Captures that may show ``domid``'s pnodes (``fresh``: a new one in any case)."""
        def text(fresh: bool) -> bytes:
            with self._lock:
                written = self._written.get(domid)
            return self.text(fresh, written)
        return text
