"""The credentials file and --password-file say what is wrong with them (a review, rB).

Before: an empty --password-file fell back to the credentials file's password, unsaid;
in the credentials file a mistyped key (``user=``) was dropped and reported as "no
username for the pool", and a byte order mark (an editor's) hid the first line's
``url=``, reported as "no url for the pool"."""
import os

import pytest

from xapi_numa.backends.xapi_credentials import credentials
from xapi_numa.errors import InvalidArgument


def _private(path, text: str, encoding: str = "utf-8") -> str:
    with open(str(path), "w", encoding=encoding, newline="") as f:
        f.write(text)
    os.chmod(str(path), 0o600)
    return str(path)


def test_an_empty_password_file_is_refused_not_replaced_by_the_saved_password(tmp_path):
    saved = _private(tmp_path / "credentials", "url=https://pool.example\nusername=root\npassword=saved\n")
    empty = _private(tmp_path / "pw", "")
    with pytest.raises(InvalidArgument) as err:
        credentials(password_file=empty, config=saved)
    assert err.value.params[0] == "--password-file" and "is empty" in err.value.message


def test_a_byte_order_mark_does_not_hide_the_first_line(tmp_path):
    saved = _private(tmp_path / "credentials", "url=https://pool.example\nusername=root\npassword=pw\n",
                     encoding="utf-8-sig")
    got = credentials(config=saved)
    assert (got.url, got.username, got.password) == ("https://pool.example", "root", "pw")


@pytest.mark.parametrize("line, secret", [("user=root", ["user=root"]), ("rootsecret", ["rootsecret"]),
                                          ("S3cr3t-Pa55=w0rd", ["S3cr3t", "w0rd"])])
def test_a_line_that_is_no_setting_is_refused_naming_its_line_not_its_text(tmp_path, line, secret):
    folder = tmp_path / ("a-folder-with-a-long-name-" * 3)  # (the path is said whole: it is the user's own)
    folder.mkdir()
    saved = _private(folder / "credentials", "# the pool\nurl=https://pool.example\n\n{}\npassword=pw\n".format(line))
    with pytest.raises(InvalidArgument) as err:
        credentials(config=saved)
    assert err.value.params[0] == "credentials file"
    assert "{!r} line 4: not a url=, username= or password= line".format(saved) in err.value.message, err.value
    # nothing of the line: a bare password, '=' in it too, is never printed (review rC)
    assert all(part not in err.value.message for part in secret), err.value.message


def test_comments_and_blank_lines_are_allowed(tmp_path):
    saved = _private(tmp_path / "credentials", "\n# pool A\n  # indented\nurl=https://a.example\r\n"
                                                "username=root\npassword=#not a comment\n")
    assert credentials(config=saved).password == "#not a comment"
