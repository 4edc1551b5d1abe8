"""A ``--pool`` URL whose host name no resolver takes, a typo such as ``https://xen..example``
(an empty label), a leading dot, or a label longer than DNS's 63 characters, passed the URL
check and failed in the socket's IDNA encoding: "xapi-numa: internal error: UnicodeError:
encoding with 'idna' codec failed (UnicodeError: label empty or too long)", exit 70.  It is
refused as any other bad --pool, naming the flag and what is allowed, exit 2, before any
connection."""
import pytest

from test_review4_pool_url import topology_through
from xapi_numa.backends.xapi_credentials import check_pool_url
from xapi_numa.errors import InvalidArgument


@pytest.mark.parametrize("url", ["https://xen..example", "https://.xen.example", "https://xen.example..",
                                 "https://" + "a" * 64, "https://" + "a" * 64 + ".example:443/",
                                 "https://" + ".".join(["a" * 63] * 4) + ".example"])
def test_a_pool_url_with_a_host_no_resolver_takes_is_refused_naming_the_flag(tmp_path, capsys, url):
    code, err = topology_through(url, tmp_path, capsys)
    assert code == 2 and err.startswith("xapi-numa: error: --pool: ") and "internal error" not in err, (code, err)
    assert "host name" in err and "allowed: https://HOST" in err, err


@pytest.mark.parametrize("url", ["https://xen.example", "https://xen.example.", "https://" + "a" * 63,
                                 "https://[fd00::1]:443", "https://192.0.2.1/", "https://XEN-1.example"])
def test_host_names_a_resolver_takes_still_pass(url):
    assert check_pool_url(url).hostname


def test_the_check_is_made_where_every_url_is_checked():
    with pytest.raises(InvalidArgument) as refused:
        check_pool_url("https://a..b")
    assert refused.value.field == "--pool"
