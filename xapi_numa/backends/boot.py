"""Which boot of dom0 this is: Linux's boot id (``/proc/sys/kernel/random/boot_id``,
a random UUID the kernel makes once per boot).

The Xen adapter's clock is dom0's monotonic clock, which starts again at every
boot (dom0 boots with Xen): a time stamped with it means something only next to
the boot id it was stamped under.  Unreadable (not Linux, no procfs), it is ""
(unknown), and callers go on as without one."""
import re

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_BOOT_ID = re.compile(r"^[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}$")


def boot_id(path: str = BOOT_ID_PATH) -> str:
    """This boot's id, or "" if it cannot be read or is not a boot id."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read(100).strip().lower()
    except (OSError, ValueError):  # (ValueError: not ASCII)
        return ""
    return text if _BOOT_ID.match(text) else ""
