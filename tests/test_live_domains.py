"""The live-domain list a start reads (core/live_domains): a Mapping domid -> UUID kept
as Xen's handles, whose fingerprint and UUID look-ups agree with the text."""
import uuid

from hypothesis import given, strategies as st

from xapi_numa.core.live_domains import LiveDomains, fingerprint_of, handle_of

uuids = st.builds(lambda n: str(uuid.UUID(int=n)), st.integers(0, 2 ** 128 - 1))
hosts = st.dictionaries(st.integers(0, 32767), uuids, max_size=40)


@given(hosts, st.sets(st.integers(0, 32767), max_size=4))
def test_it_is_the_mapping_and_its_fingerprint_is_the_texts(host, skip):
    live = LiveDomains.of(host)
    assert live == host and list(live) == sorted(host) and len(live) == len(host)
    assert all(d in live for d in host) and -1 not in live
    rest = {d: u for d, u in host.items() if d not in skip}
    assert live.fingerprint(skip) == fingerprint_of(rest)
    assert fingerprint_of({d: u.upper() for d, u in rest.items()}) == fingerprint_of(rest)  # (text in any case)
    # and a list that differs by one domain, or one UUID, differs
    if host:
        d = next(iter(host))
        other = dict(host)
        other[d] = str(uuid.UUID(int=(uuid.UUID(host[d]).int + 1) % 2 ** 128))
        assert LiveDomains.of(other).fingerprint() != live.fingerprint()


@given(hosts)
def test_domid_of_finds_each_uuid_and_nothing_else(host):
    live = LiveDomains.of(host)
    for domid, text in host.items():
        assert live.domid_of(text) == max(d for d, u in host.items() if u == text)  # (shared: the newer)
        assert live.domid_of(text.upper()) == live.domid_of(text)
    assert live.domid_of("not a uuid") is None


def test_a_uuid_across_two_handles_is_no_domains():
    a = "00000000-0000-0000-0000-0000000000ab"
    b = "cd000000-0000-0000-0000-000000000000"
    live = LiveDomains.of({1: a, 2: b})
    straddling = str(uuid.UUID(bytes=uuid.UUID(a).bytes[8:] + uuid.UUID(b).bytes[:8]))
    assert live.domid_of(straddling) is None


def test_two_domains_with_one_uuid_give_the_one_being_built():
    u = str(uuid.uuid4())
    assert LiveDomains.of({5: u, 9: str(uuid.uuid4()), 12: u}).domid_of(u) == 12


def test_handles_out_of_order_or_a_domid_twice():
    a, b = uuid.uuid4(), uuid.uuid4()
    live = LiveDomains([7, 3], a.bytes + b.bytes)
    assert list(live) == [3, 7] and live[7] == str(a) and live[3] == str(b)
    for bad in (([1, 1], a.bytes + b.bytes), ([1], a.bytes + b.bytes)):
        try:
            LiveDomains(*bad)
        except ValueError:
            continue
        raise AssertionError("accepted {}".format(bad))


@given(uuids)
def test_a_uuid_in_any_form_uuid_reads_is_found_and_nothing_like_one_is(text):
    u = uuid.UUID(text)
    live = LiveDomains.of({4: text})
    for form in (text, text.upper(), "{" + text + "}", "urn:uuid:" + text, u.hex):
        assert handle_of(form) == u.bytes and live.domid_of(form) == 4
    spaced = text[:7] + " " + text[8:]  # 36 characters, dashes in place, a space for a digit
    assert handle_of(spaced) is None and live.domid_of(spaced) is None
    for bad in (text[:-1] + "g", text[:-1], text.replace("-", "+"), "", "-" * 36):
        assert handle_of(bad) is None and live.domid_of(bad) is None


@given(hosts, st.lists(uuids, max_size=12), st.lists(st.sampled_from(["not a uuid", "", "{bad}"]), max_size=3),
       st.integers(0, 12))
def test_alive_names_the_uuids_domid_of_finds_few_or_many(host, strangers, junk, known):
    live = LiveDomains.of(host)
    mine = list(host.values())[:known]
    # a UUID with a live one's first half but not its second: the sieve lets it through, the search does not
    halves = [str(uuid.UUID(bytes=uuid.UUID(u).bytes[:8] + bytes(8))) for u in mine[:2]]
    asked = mine + strangers + junk + halves
    assert live.alive(asked) == {u for u in asked if live.domid_of(u) is not None}
    assert live.alive(u.upper() for u in mine) == {u.upper() for u in mine}
