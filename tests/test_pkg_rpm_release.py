"""The RPM's Release is the same from a shallow clone as from a full one, and rises with
later commits.

It was ``git rev-list --count HEAD``: a ``git clone --depth 1`` (as CI checks out) counts 1,
so its RPM had a lower release than a full clone's of the same commit, and ``rpm -U``
refused the full clone's build over it ("already installed" / "newer installed").  The
release now comes from the commit's committer time, which every clone of it has.  Here a
scratch repository with a few commits (committer times set) is cloned both ways and
build_rpm.py's ``release()`` is read in each.
"""
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest
from conftest import missing

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="the RPM build runs on the build machine's Python")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# committer times of the scratch commits, oldest first (UTC)
TIMES = ["2026-01-02T03:04:05Z", "2026-03-04T05:06:07Z", "2026-12-05T23:59:58Z"]


def git(cwd, *args, when: str = "2026-01-01T00:00:00Z") -> str:
    env = dict(os.environ, GIT_COMMITTER_DATE=when, GIT_AUTHOR_DATE=when)
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "protocol.file.allow=always",
                           "-C", str(cwd)] + list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout


def repository(tmp_path, commits: int):
    """A repository holding build_rpm.py, with ``commits`` commits at TIMES."""
    if shutil.which("git") is None:
        missing("git is not installed")
    repo = tmp_path / "origin"
    (repo / "packaging").mkdir(parents=True)
    shutil.copy2(os.path.join(ROOT, "packaging", "build_rpm.py"), str(repo / "packaging" / "build_rpm.py"))
    git(repo, "init", "-q")
    for n in range(commits):
        (repo / "history.txt").write_text("commit {}\n".format(n))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "commit {}".format(n), when=TIMES[n])
    return repo


def release_of(checkout) -> str:
    spec = importlib.util.spec_from_file_location("build_rpm_release", os.path.join(str(checkout), "packaging",
                                                                                    "build_rpm.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.release()


def vercmp(a: str, b: str) -> int:
    """rpm's own comparison of two releases (-1, 0, 1)."""
    if shutil.which("rpm") is None:
        missing("rpm is not installed (Debian: apt-get install rpm)")
    out = subprocess.run(["rpm", "--eval", "%{{lua: print(rpm.vercmp('{}', '{}'))}}".format(a, b)],
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    return int(out)


def test_a_shallow_clone_builds_the_release_a_full_clone_does(tmp_path):
    origin = repository(tmp_path, len(TIMES))
    full, shallow = tmp_path / "full", tmp_path / "shallow"
    git(tmp_path, "clone", "-q", str(origin), str(full))
    git(tmp_path, "clone", "-q", "--depth", "1", "file://" + str(origin), str(shallow))
    assert git(shallow, "rev-parse", "--is-shallow-repository").strip() == "true"
    sha = git(origin, "rev-parse", "--short", "HEAD").strip()
    assert release_of(full) == release_of(shallow) == "20261205235958.g" + sha


def test_each_later_commit_builds_a_release_rpm_takes_as_newer(tmp_path):
    origin = repository(tmp_path, 1)
    releases = [release_of(origin)]
    for n in range(1, len(TIMES)):
        (origin / "history.txt").write_text("commit {}\n".format(n))
        git(origin, "commit", "-q", "-a", "-m", "commit {}".format(n), when=TIMES[n])
        releases.append(release_of(origin))
    for older, newer in zip(releases, releases[1:]):
        assert vercmp(newer, older) == 1, (older, newer)
    # above every release the commit count gave (an upgrade from those goes on working)
    assert vercmp(releases[0], "99999.g5188950") == 1
    # a build of an edited tree is newer than its commit's
    (origin / "history.txt").write_text("edited\n")
    dirty = release_of(origin)
    assert dirty.startswith(releases[-1] + ".dirty") and vercmp(dirty, releases[-1]) == 1, dirty
