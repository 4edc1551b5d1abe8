"""Where the CLI's pool credentials come from, and how the pool master is checked.

The URL, user name and password come from flags, then the environment, then
a file only its owner can read (:func:`credentials`); the pool master's URL
must be http(s) with a host, plain http only when the caller accepts the
password crossing the network in clear (:func:`check_pool_url`); TLS verifies
the master against a given certificate or the system's (:func:`tls_context`).
"""
import os
import re
import ssl
import stat
import urllib.parse
from typing import Optional

import attrs

from xapi_numa.core.numbers import shown, shown_path
from xapi_numa.errors import InvalidArgument

POOL_URL_SYNTAX = ("https://HOST[:PORT][/] (an IPv6 address goes in brackets: https://[fd00::1]; "
                   "http:// only with --insecure)")
# a URL's user name and password (``//user:password@``), up to the last '@' before the path
USERINFO = re.compile(r"(?<=//)[^/?#]*@")


# a URL's query or fragment: it may carry a secret too (?password=, a session_id copied from a console URL)
QUERY = re.compile(r"([?#]).*", re.DOTALL)


def without_query(text: str) -> str:
    """``text`` (a URL, or what follows its address) with its query or fragment left out: ``/x?...``."""
    return QUERY.sub(r"\1...", text)


# a pool URL is the admin's own: said whole, so that two that share their first characters are told apart
URL_SHOWN = 2048


def url_shown(url: str) -> str:
    """A pool URL, or a part of one, for a message: quoted whole (up to URL_SHOWN characters), never
    with a password typed into it (``//...@``) nor its query or fragment (``?...``, :func:`without_query`)."""
    return shown(without_query(USERINFO.sub("...@", url)), URL_SHOWN)


@attrs.frozen
class Credentials:
    url: str
    username: str
    password: str = attrs.field(repr=False)


def credentials(url: Optional[str] = None, username: Optional[str] = None, password_file: Optional[str] = None,
                config: Optional[str] = None) -> Credentials:
    """From flags, then $XAPI_NUMA_POOL_URL/_USER/_PASSWORD, then a credentials file.

    The file (``~/.config/xapi-numa/credentials`` by default) holds ``url=``,
    ``username=`` and ``password=`` lines (the password: the rest of its line, spaces
    included) and must be readable by its owner only.
    Where it names a pool (``url=``), its user and password are used for that pool
    only: a ``--pool`` naming another gets neither (a password is not sent to
    whatever URL is typed).
    """
    values = {"url": url or os.environ.get("XAPI_NUMA_POOL_URL"),
              "username": username or os.environ.get("XAPI_NUMA_POOL_USER"),
              "password": os.environ.get("XAPI_NUMA_POOL_PASSWORD")}
    if password_file:
        values["password"] = _password_line(_read_private(password_file, "--password-file"), password_file)
        if not values["password"]:  # (else another source's password would be used, unsaid)
            raise InvalidArgument("--password-file", "{} is empty".format(shown_path(password_file)),
                                  "a file holding the password")
    path = config or os.path.expanduser("~/.config/xapi-numa/credentials")
    other_pool = None
    if not all(values.values()) and os.path.exists(path):
        saved = _saved(_read_private(path, "credentials file"), values, path)
        if values["url"] and saved.get("url") and not _same_pool(values["url"], saved["url"]):
            # the file's user and password are for its own pool: never sent to another URL
            other_pool = saved["url"]
            saved = {}
        values.update({k: v for k, v in saved.items() if not values[k]})
    missing = [k for k, v in values.items() if not v]
    if missing:
        why = "no {} for the pool".format(", ".join(missing))
        if other_pool:
            why += " (the credentials file's are for {}, not {})".format(url_shown(other_pool),
                                                                         url_shown(values["url"]))
        raise InvalidArgument("--pool", why, "--pool URL --user NAME --password-file FILE, "
                              "$XAPI_NUMA_POOL_URL/_USER/_PASSWORD, or ~/.config/xapi-numa/credentials")
    return Credentials(values["url"], values["username"], values["password"])


def _saved(text: str, keys, path: str = "") -> dict:
    """The ``key=value`` lines of a credentials file, for ``keys``; blank lines and ``#``
    comments aside, any other line is refused, naming it (a mistyped ``user=`` would
    otherwise be dropped and reported as no user name at all).  A password is all of
    its line after ``password=`` less the line end (``\n``, or ``\r\n``), spaces and a
    ``\r`` inside included, as --password-file reads its file; written spaced,
    ``password = secret``, the one space after ``=`` goes too (it matches the one
    before).  The URL and user name have no spaces of their own (those around them go)."""
    saved = {}
    for number, line in enumerate(text.split("\n"), 1):
        line = line[:-1] if line.endswith("\r") else line
        key, sep, value = line.partition("=")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not sep or key.strip() not in keys:  # (nothing of the line: a password may be all of it, '=' too)
            raise InvalidArgument("credentials file", "{} line {}: not a url=, username= or password= line".format(
                shown_path(path), number), "url=, username=, password=, blank lines and # comments")
        if key.strip() != "password":
            value = value.strip()
        elif key[-1:] in (" ", "\t") and value[:1] in (" ", "\t"):
            value = value[1:]
        saved[key.strip()] = value
    return saved


def _password_line(text: str, path: str) -> str:
    """A password file's password: its first line, less the line end an editor or ``echo`` adds
    (``\n`` or ``\r\n``); spaces are the password's own (one may begin or end with them).
    Empty lines may follow it; any other line is refused: xe's ``-pwf`` file holds a user name,
    then a password, and neither the whole text nor its first line would be the password."""
    lines = text.split("\n")
    first = lines[0][:-1] if len(lines) > 1 and lines[0].endswith("\r") else lines[0]
    more = [str(number) for number, line in enumerate(lines[1:], 2) if line not in ("", "\r")]
    if more:
        raise InvalidArgument("--password-file", "{} has text after its first line (line{} {}): a user name, then a "
                              "password, as xe's -pwf file?".format(shown_path(path), "s" if more[1:] else "",
                                                                      ", ".join(more)),
                              "a file holding the password alone, on its first line (the user name goes in --user)")
    return first


def _same_pool(a: str, b: str) -> bool:
    """Do two pool URLs name the same master (case of scheme and host, a trailing slash aside)?"""
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


# what a file holding a secret must be (said where it cannot be read)
SECRET_FILE = "a regular file only its owner may read (chmod 600), in UTF-8"


def _read_private(path: str, what: str) -> str:
    """A regular file readable by its owner only, as text; every failure is an InvalidArgument."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidArgument(what, "{} is not a regular file".format(shown_path(path)),
                                  "a file holding the secret")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InvalidArgument(what, "{} is readable by others".format(shown_path(path)), "chmod 600 the file")
        # as written: a '\r' may be a password's own; an editor's byte order mark is not
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read(1 << 16)
    except OSError as err:
        raise InvalidArgument(what, "cannot read {}: {}".format(shown_path(path), err.strerror or err),
                              SECRET_FILE) from None
    except UnicodeDecodeError:
        raise InvalidArgument(what, "{} is not UTF-8 text".format(shown_path(path)), SECRET_FILE) from None


def check_pool_url(url: str, insecure: bool = False) -> urllib.parse.SplitResult:
    """An http(s) URL with a host and nothing after it but a ``/`` (xapi takes XML-RPC at ``/`` and ``/RPC2``,
    which the client posts to when the URL has no path); plain http only when the caller accepts sending the
    password in clear."""
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.port is not None and not 0 < parts.port < 65536:  # .port itself raises for a non-number
            parts = None
    except (ValueError, TypeError, AttributeError):
        parts = None
    # ASCII only: Python 3.6's urlsplit reads other scripts' digits as a port number
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(
            c.isspace() or ord(c) > 126 or ord(c) < 32 for c in url):  # (control characters too)
        raise InvalidArgument("--pool", "{} is not a URL of a pool master".format(url_shown(url)), POOL_URL_SYNTAX)
    if not _dns_name(parts.hostname):  # the socket's IDNA encoding would raise UnicodeError
        raise InvalidArgument("--pool", "{} has a host name no resolver takes (a label empty, as in a..b, or longer "
                              "than 63 characters, or more than 253 characters in all)".format(url_shown(url)),
                              POOL_URL_SYNTAX)
    if USERINFO.search(url):  # the client would send them to the master as HTTP Basic auth, and
        # messages would show them; the login's own user and password are --user and --password-file
        raise InvalidArgument("--pool", "{} holds a user name or password: give them with --user and "
                              "--password-file".format(url_shown(url)), POOL_URL_SYNTAX)
    after = url[len(parts.scheme) + len("://") + len(parts.netloc):]  # (urlsplit's netloc is the text as typed)
    if after not in ("", "/"):  # the client would post to that path, and the master answer HTTP 404
        raise InvalidArgument("--pool", "{} has {} after the pool master's address {}: a pool URL is the address "
                              "alone".format(url_shown(url), url_shown(after), url_shown(parts.netloc)),
                              POOL_URL_SYNTAX)
    if parts.scheme == "http" and not insecure:
        raise InvalidArgument("--pool", "{} is plain http: the password would cross the network in clear".format(
            url_shown(url)), "an https:// URL, or --insecure to accept that")
    return parts


def _dns_name(host: str) -> bool:
    """Is ``host`` (urlsplit's hostname: an IPv6 address unbracketed) one DNS takes: labels of
    1..63 characters, 253 in all, a last dot allowed (RFC 1035)?"""
    if ":" in host:
        return True
    name = host[:-1] if host.endswith(".") else host
    return len(name) <= 253 and all(0 < len(label) <= 63 for label in name.split("."))


def master_url(member: urllib.parse.SplitResult, master: str) -> str:
    """The URL of the pool master at ``master``, the address a member's HOST_IS_SLAVE names
    (an IPv6 one bare or already in brackets: bracketed once here), with the scheme, port
    and ``/`` of the member's URL (``member``, from :func:`check_pool_url`)."""
    host = master.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    netloc = "[{}]".format(host) if ":" in host else host
    if member.port is not None:
        netloc += ":{}".format(member.port)
    return urllib.parse.urlunsplit(member._replace(netloc=netloc))


def tls_context(ca_file: Optional[str] = None, insecure: bool = False) -> ssl.SSLContext:
    """Verify the master against ``ca_file`` (its self-signed certificate) or the system CAs.

    ``insecure`` without a CA file skips verification, like ``curl --insecure``.
    """
    if insecure and not ca_file:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file is None:
        return ssl.create_default_context()
    if not os.path.isfile(ca_file):
        raise InvalidArgument("--ca-file", "{} is not a file".format(shown_path(ca_file)),
                              "a PEM file holding the pool master's certificate")
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
        raise InvalidArgument("--ca-file", "cannot load {}: {}".format(shown_path(ca_file), err),
                              "a PEM file holding the pool master's certificate") from None
