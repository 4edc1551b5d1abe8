"""The credentials file's password goes only to the pool the file names.

A file saved for pool A (``url=``, ``username=``, ``password=``) gave its user and
password to any ``--pool`` typed on the command line, so ``xapi-numa --pool
https://other ...`` sent A's root password to ``other`` (review 15l)."""
import os

import pytest

from xapi_numa.backends.xapi_credentials import credentials
from xapi_numa.errors import InvalidArgument


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("url=https://pool-a.example\nusername=root\npassword=secretA\n")
    os.chmod(str(path), 0o600)
    return str(path)


def test_the_files_pool_gets_its_password(saved):
    got = credentials(config=saved)
    assert (got.url, got.username, got.password) == ("https://pool-a.example", "root", "secretA")
    assert credentials("https://POOL-A.example/", config=saved).password == "secretA"


def test_another_pool_does_not_get_it(saved, monkeypatch):
    monkeypatch.delenv("XAPI_NUMA_POOL_PASSWORD", raising=False)
    monkeypatch.delenv("XAPI_NUMA_POOL_USER", raising=False)
    with pytest.raises(InvalidArgument) as caught:
        credentials("https://other.example", config=saved)
    assert "pool-a.example" in str(caught.value) and "secretA" not in str(caught.value)


def test_a_file_naming_no_pool_serves_any(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("username=root\npassword=secret\n")
    os.chmod(str(path), 0o600)
    assert credentials("https://other.example", config=str(path)).password == "secret"
