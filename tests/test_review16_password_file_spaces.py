"""--password-file: the password is the file's text less one trailing line end.

The text was ``.strip()``-ped, so a password beginning or ending with spaces (or a
tab) was sent without them and the login refused; only the newline an editor or
``echo`` adds (``\\n`` or ``\\r\\n``) is not the password's."""
import os

import pytest

from xapi_numa.backends.xapi_credentials import credentials


@pytest.mark.parametrize("written, password", [
    ("  secret  \n", "  secret  "),
    ("\tsecret \r\n", "\tsecret "),
    ("secret", "secret"),
    ("secret\n\n", "secret"),  # the first line: empty lines after it are no part of it (review 27)
    ("sec\rret\n", "sec\rret"),  # a carriage return inside stays one
])
def test_only_the_trailing_line_end_goes(tmp_path, written, password):
    path = tmp_path / "pw"
    with open(str(path), "w", newline="") as f:
        f.write(written)
    os.chmod(str(path), 0o600)
    got = credentials("https://pool.example", "root", str(path), config=str(tmp_path / "none"))
    assert got.password == password
