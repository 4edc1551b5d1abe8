"""--password-file holding more than one line (``a\\nb``) was read as the password ``a\\nb``,
sent to xapi and refused there as a failed login, unsaid why.  xe's own ``-pwf`` file
(ocaml/xe-cli/newcli.ml, ``read_pwf``) holds the user name on its first line and the password
on its second, so an admin may well hand one over: neither all of it nor its first line is the
password.  The password is now the first line (less its line end), empty lines may follow it,
and a file with text on any later line is refused, naming the flag and the lines, never their
text, before anything is sent."""
import os

import pytest

from xapi_numa.backends.xapi_credentials import credentials
from xapi_numa.errors import InvalidArgument


def written(tmp_path, text: str) -> str:
    path = str(tmp_path / "pw")
    with open(path, "w", newline="") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize("text, lines", [("a\nb", "line 2"), ("root\nsecret\n", "line 2"),
                                         ("root\r\nsecret\r\n", "line 2"), ("\nsecret\n", "line 2"),
                                         ("a\n\nb\nc\n", "lines 3, 4"), ("a\n \n", "line 2")])
def test_text_after_the_first_line_is_refused_naming_the_flag_and_lines(tmp_path, text, lines):
    path = written(tmp_path, text)
    with pytest.raises(InvalidArgument) as refused:
        credentials("https://pool.example", "root", path, config=str(tmp_path / "none"))
    err = refused.value
    assert err.field == "--password-file" and "({})".format(lines) in err.detail, err.message
    assert path in err.detail and "xe's -pwf" in err.detail and "--user" in err.allowed, err.message
    assert "secret" not in err.message and "b\n" not in err.message  # the file's text is not shown


@pytest.mark.parametrize("text, password", [("secret\n", "secret"), ("secret\n\n\n", "secret"),
                                            ("secret\r\n\r\n", "secret"), (" s e \n", " s e ")])
def test_the_password_is_the_first_line_with_empty_lines_after_it(tmp_path, text, password):
    got = credentials("https://pool.example", "root", written(tmp_path, text), config=str(tmp_path / "none"))
    assert got.password == password
