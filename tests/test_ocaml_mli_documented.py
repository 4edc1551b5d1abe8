"""The OCaml binding's interface (ocaml-stubs/lib/xenuma.mli) is what xenopsd's authors
read: every function there has a doc comment, and every one that talks to Xen (takes a
handle) says what it raises.  domains, physinfo, node_affinity, pause and unpause had
none, and online_cpus, features, vcpu_affinity and record_busy named no failure, so a
caller had to read the C stubs to learn that a missing domain is Error (ESRCH, _)."""
import os
import re

MLI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ocaml-stubs", "lib", "xenuma.mli")
ITEM = re.compile(r"^(?:val|type|exception|external)\b|^\(\*\* \{", re.M)


def vals() -> list:
    """(name, signature, doc) of each val: its doc is the comment that follows it, up to the next item."""
    with open(MLI) as f:
        text = f.read()
    starts = [m.start() for m in ITEM.finditer(text)] + [len(text)]
    out = []
    for a, b in zip(starts, starts[1:]):
        item = text[a:b]
        if item.startswith("val "):
            signature, _, doc = item.partition("(**")
            out.append((item.split()[1], signature, doc))
    return out


def test_the_parser_sees_the_interface():
    names = [name for name, _, _ in vals()]
    assert {"open_", "domains", "pause", "move", "vnuma"} <= set(names) and len(names) >= 30


def test_every_function_is_documented():
    assert [name for name, _, doc in vals() if not doc.strip()] == []


def test_every_call_into_xen_says_what_it_raises():
    silent = [name for name, signature, doc in vals()
              if "handle ->" in signature and not re.search(r"Error|raise", doc, re.I)]
    assert silent == []
