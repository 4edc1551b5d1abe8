"""The memcheck guest (tests/xen/guest/memcheck.c), compiled and run on the host.

On Xen under QEMU the guest once printed "memcheck: pass %lu ok": glibc's printf
gave its format back unfilled, which it does only when its vector search for the
'%' misses it -- the guest's vector registers had come back wrong.  memcheck is
the page-move tests' witness of guest-visible corruption, so such a fault must be
reported as CORRUPT with what was printed, never as a malformed pass line (which
the tests misread, or choke on).  Here the fault is simulated by a shim linked in
with --wrap (tests/xen/guest/fault_shim.c).
"""
import os
import re
import select
import shutil
import subprocess
import time

import pytest
from conftest import needs

GUEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xen", "guest")
CC = shutil.which("gcc") or shutil.which("cc")


def build(tmp_path) -> str:
    exe = str(tmp_path / "memcheck")
    subprocess.check_call([CC, "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe,
                           os.path.join(GUEST, "memcheck.c"), os.path.join(GUEST, "fault_shim.c"),
                           "-Wl,--wrap=printf,--wrap=snprintf,--wrap=mlock"])
    return exe


def console(exe: str, fault_at: str, until, timeout: float = 60.0, corrupt_at: str = "") -> str:
    """memcheck's output (1 MiB checked) until ``until(text)`` or the timeout."""
    env = dict(os.environ, MEMCHECK_FAULT_AT=fault_at, MEMCHECK_CORRUPT_AT=corrupt_at)
    proc = subprocess.Popen([exe, "1"], stdout=subprocess.PIPE, env=env)
    text, deadline = b"", time.monotonic() + timeout
    try:
        while not until(text.decode()) and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                text += chunk
    finally:
        proc.kill()
        proc.wait()
    return text.decode()


def pass_lines(text: str) -> list:
    return [line for line in text.splitlines() if line.startswith("memcheck: pass ")]


@needs(CC is not None, "no C compiler")
def test_pass_lines_count_up_without_a_fault(tmp_path):
    text = console(build(tmp_path), "", lambda t: len(pass_lines(t)) >= 5)
    assert [line for line in pass_lines(text)][:5] == ["memcheck: pass {} ok".format(n) for n in range(1, 6)]
    assert "CORRUPT" not in text


@needs(CC is not None, "no C compiler")
def test_an_unfilled_pass_line_is_reported_as_corrupt_never_printed(tmp_path):
    text = console(build(tmp_path), "3", lambda t: "CORRUPT" in t or "%" in t)
    assert all(re.fullmatch(r"memcheck: pass \d+ ok", line) for line in pass_lines(text)), text
    assert re.search(r"memcheck: CORRUPT .*pass 3", text), text


@needs(CC is not None, "no C compiler")
def test_a_page_whose_contents_changed_is_reported_as_corrupt(tmp_path):
    """memcheck is the witness of every real-Xen page move: one byte of its memory
    flipped (as a move that lost a page's contents would) must be reported, never
    followed by another pass line."""
    text = console(build(tmp_path), "", lambda t: "CORRUPT" in t or len(pass_lines(t)) >= 6, corrupt_at="3")
    assert re.search(r"memcheck: CORRUPT page \d+ \(gfn 0x[0-9a-f]+\) in pass 4", text), text
    assert len(pass_lines(text)) == 3, text
