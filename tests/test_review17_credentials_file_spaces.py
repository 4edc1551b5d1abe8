"""The credentials file's ``password=``: the rest of its line less the line end, as
--password-file keeps its file's text (review 16).

The file's values were ``.strip()``-ped, so a password beginning or ending with
spaces (or a tab) was sent without them and the login refused; its lines were also
split at any of Python's line breaks, so a ``\\r`` inside a password ended it there."""
import os

import pytest

from xapi_numa.backends.xapi_credentials import credentials


def saved(tmp_path, text):
    path = tmp_path / "credentials"
    with open(str(path), "w", newline="") as f:
        f.write(text)
    os.chmod(str(path), 0o600)
    return str(path)


@pytest.mark.parametrize("line, password", [
    ("password=  secret  \n", "  secret  "),
    ("password=\tsecret \r\n", "\tsecret "),
    ("password=secret", "secret"),
    ("password=sec\rret\n", "sec\rret"),  # a carriage return inside stays one
    ("password=a=b c\n", "a=b c"),  # the first '=' ends the key
])
def test_the_password_is_the_rest_of_its_line(tmp_path, line, password):
    path = saved(tmp_path, "url=https://pool.example\nusername=root\n" + line)
    assert credentials(config=path).password == password


def test_the_url_and_user_lose_the_spaces_around_them(tmp_path):
    path = saved(tmp_path, " url = https://pool.example \r\nusername= root\t\r\npassword=x\r\n")
    got = credentials(config=path)
    assert (got.url, got.username, got.password) == ("https://pool.example", "root", "x")


@pytest.mark.parametrize("line, password", [
    ("password = secret\n", "secret"),  # written spaced: the space after '=' matches the one before
    ("password =  secret \n", " secret "),  # only that one space goes
    ("password\t=\tsecret\n", "secret"),
    ("password= secret\n", " secret"),  # not spaced before '=': every space is the password's
])
def test_a_spaced_password_line_loses_the_one_space_after_the_equals_sign(tmp_path, line, password):
    """rA's review: ``password = secret``, as the url and user lines may be written, sent
    " secret" and the login was refused."""
    path = saved(tmp_path, "url = https://pool.example\nusername = root\n" + line)
    assert credentials(config=path).password == password
