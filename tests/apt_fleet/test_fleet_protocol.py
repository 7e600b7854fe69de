"""The method spoken to directly, as apt speaks to it (method protocol on stdin/stdout): who
serves a request, and a non-root caller (a user's `apt-get download`) gets the real method only."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.apt_fleet.test_fleet_apt import _seeded_fleet
from tests.support import PY, REPO
from tests.support.user import readable_tree


def _read_msg(stream) -> list[str]:
    lines: list[str] = []
    while True:
        raw = stream.readline()
        if not raw:
            return lines
        line = raw.decode().rstrip("\n")
        if not line:
            if lines:
                return lines
            continue
        lines.append(line)


def converse(env: dict[str, str], uri: str, dest: Path, sha: str,
             user: str | None = None) -> tuple[list[list[str]], str]:
    """One session: capabilities, configuration, one 600 URI Acquire; every message until the
    201/400 for it, and the method's stderr."""
    code = REPO
    cmd = [PY, "-m", "hooks.apt.method", "http"]
    if user:  # another user runs a world-readable copy on the system Python (the checkout and
        # its venv may be private: a clone in a 0700 mktemp -d)
        code = readable_tree()
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user if user != 'nobody' else 'nogroup'}",
               "--clear-groups", "/usr/bin/python3", "-m", "hooks.apt.method", "http"]
    env = dict(env, PYTHONPATH=str(code))
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd="/")
    assert proc.stdin and proc.stdout
    msgs = [_read_msg(proc.stdout)]
    assert msgs[0][0].startswith("100 Capabilities"), msgs
    proc.stdin.write(b"601 Configuration\nConfig-Item: Acquire::Retries=0\n"
                     b"Config-Item: APT::Sandbox::User=root\n\n")
    proc.stdin.write(f"600 URI Acquire\nURI: {uri}\nFilename: {dest}\n"
                     f"Expected-SHA256: {sha}\n\n".encode())
    proc.stdin.flush()
    while True:
        m = _read_msg(proc.stdout)
        if not m:
            break
        msgs.append(m)
        if m[0].startswith(("201", "400")):
            break
    proc.stdin.close()
    proc.stdin = None  # closed: communicate() only reads what is left
    _, err = proc.communicate(timeout=120)
    return msgs, err.decode()


def test_root_served_from_the_fleet_user_relayed(fleet) -> None:
    _seeded_fleet(fleet)
    b = fleet.server("b")
    deb = fleet.repo.debs["alpha"]
    sha = hashlib.sha256(deb.read_bytes()).hexdigest()
    uri = fleet.url + "./" + deb.name
    env = b.env()
    work = Path(tempfile.mkdtemp(prefix="pkgcache-method-", dir="/var/tmp"))
    try:
        os.chmod(work, 0o777)
        fleet.origin.reset()
        msgs, err = converse(env, uri, work / "root.deb", sha)
        done = [m for m in msgs if m[0].startswith("201")]
        assert done and f"Filename: {work / 'root.deb'}" in done[0], msgs
        assert not any(ln.startswith("SHA256-Hash") for ln in done[0])  # apt hashes it itself
        assert (work / "root.deb").read_bytes() == deb.read_bytes()
        assert fleet.origin.deb_requests() == [] and err == ""

        msgs, err = converse(env, uri, work / "user.deb", sha, user="nobody")
        done = [m for m in msgs if m[0].startswith("201")]
        assert done, (msgs, err)
        assert any(ln.startswith("SHA256-Hash") for ln in done[0])  # the real http method
        assert fleet.origin.deb_requests() == ["/./" + deb.name]
        assert (work / "user.deb").read_bytes() == deb.read_bytes()
        assert err == ""  # no warning for a non-root user
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_release_key_never_keeps_credentials() -> None:
    from hooks.apt.method import release_key

    assert release_key("http://user:s3cret@mirror:8080/debian/dists/x/InRelease") == \
        "http://mirror:8080/debian/dists/x/InRelease"
    assert release_key("https://u:p%40ss@h/InRelease") == "https://h/InRelease"
    assert release_key("http://h/a%20b/InRelease") == "http://h/a b/InRelease"
