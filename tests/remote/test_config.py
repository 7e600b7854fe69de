"""``performance.cache.remote`` is validated with one clear line; secrets never leak."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
import yaml

from cache_core import ConfigError, load_config
from cache_core.net import redact as redact_url
from tests.support import REPO
from tests.support.cli import run_cli
from tests.support.http import FaultServer, serve_dir
from tests.support.remote import write_keypair


def _write(tmp_path, remote) -> str:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"performance": {"cache": {"directory": str(tmp_path / "c"),
                                                           "remote": remote}}}))
    p.chmod(0o600)  # inline secrets: only in a file nobody else can read
    return str(p)


@pytest.mark.parametrize("remote, expected", [
    ([{"url": "ftp://h/x"}], "remote[0].url: unsupported scheme 'ftp'"),
    ([{"url": "file://relative/x"}], "remote[0].url: expected file:///absolute/path"),
    ([{"url": "http://h/x", "mode": "write"}], 'remote[0].mode: expected "ro" or "rw"'),
    ([{"url": "http://h/x", "timeout": 0}], "remote[0].timeout: expected connect timeout"),
    ([{"url": "http://h/x", "colour": 1}], "remote[0].colour: unknown key"),
    ([{"mode": "rw"}], "remote[0]: url is required"),
    ([{"url": "http://h/x", "trusted_public_keys": ["k:short"]}],
     "remote[0].trusted_public_keys: expected a list of NAME:BASE64"),
    ([{"url": "http://h/x", "token": 5}], "remote[0].token: expected a bearer token (string), got ***"),
    ([{"url": "s3://u:pw@bucket/p"}], "put S3 keys in access_key_id"),
    ("not a list", "remote[0].url: unsupported scheme ''"),
    (7, "remote: expected a list of remotes"),
    ([{"url": "http://h/x", "pip_page_max_age": -1}], "remote[0].pip_page_max_age: expected seconds"),
    ([{"url": "http://h/x", "pip_page_max_age": "10m"}], "remote[0].pip_page_max_age: expected"),
])
def test_bad_remote_config_is_one_clear_line(tmp_path, remote, expected):
    path = _write(tmp_path, remote)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value) and "\n" not in str(info.value)
    r = run_cli("--config", path, "stats")
    assert r.returncode == 3 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_good_config_parses(tmp_path):
    cfg = load_config(_write(tmp_path, [{"url": "https://cache.example/bazel", "mode": "rw",
                                         "timeout": 0.5, "token": "t0ken-value"},
                                        "file:///srv/pkgcache"]))
    assert [r.url for r in cfg.remote] == ["https://cache.example/bazel", "file:///srv/pkgcache"]
    assert cfg.remote[0].timeout == 0.5 and cfg.remote[1].mode == "ro"
    assert "t0ken-value" not in repr(cfg.remote) and "t0ken-value" not in repr(cfg)


def test_pip_page_max_age_is_off_unless_set(tmp_path):
    """The fleet's page freshness window: 0 (off) unless a remote sets it; the largest wins."""
    from cache_core import PackageCache

    for remotes, want in (([{"url": f"file://{tmp_path}/s"}], 0.0),
                          ([{"url": f"file://{tmp_path}/s", "pip_page_max_age": 300},
                            {"url": f"file://{tmp_path}/t", "pip_page_max_age": 0}], 300.0)):
        cache = PackageCache.from_config(_write(tmp_path, remotes))
        assert cache.remote is not None and cache.remote.page_max_age() == want
        cache.close()


def test_secrets_are_redacted_in_errors_json_and_stats(tmp_path):
    assert redact_url("https://alice:pa55word@h:8/x?X-Amz-Signature=abc") == "https://h:8/x?X-Amz-Signature=REDACTED"
    srv = FaultServer("500")
    try:
        path = _write(tmp_path, [
            {"url": f"http://bob:hunter2-pass@127.0.0.1:{srv.port}/a", "mode": "rw"},
            {"url": "s3://bucket/p", "endpoint": f"http://127.0.0.1:{srv.port}",
             "access_key_id": "AKIAEXAMPLE", "secret_access_key": "sEcReT-KEY-value",
             "session_token": "SeSsIoN-ToKeN"}])
        outputs = []
        for args in (("get", "sha256:" + "a" * 64), ("stats", "--json"), ("stats",),
                     ("remote", "status", "--json"), ("remote", "status"), ("remote", "push")):
            r = run_cli("--config", path, *args)
            outputs.append(r.stdout + r.stderr)
        text = "\n".join(outputs)
        assert f"http://127.0.0.1:{srv.port}/a" in text and "HTTP 500" in text  # the remotes were used
        for secret in ("hunter2-pass", "sEcReT-KEY-value", "SeSsIoN-ToKeN", "bob:"):
            assert secret not in text
        state = (tmp_path / "c" / "remote-v1" / "state.json").read_text()
        assert "hunter2" not in state and "sEcReT" not in state
    finally:
        srv.stop()


def test_remote_commands_without_a_remote_say_so(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("performance:\n  cache:\n    directory: " + str(tmp_path / "c") + "\n")
    r = run_cli("--config", str(p), "remote", "status")  # a question "none" answers
    assert r.returncode == 0 and r.stdout.startswith("no remote configured") and r.stderr == ""
    r = run_cli("--config", str(p), "remote", "status", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["remotes"] == []
    r = run_cli("--config", str(p), "remote", "pull")
    assert r.returncode in (2, 3) and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("entry, option", [
    ({"url": "https://h/x", "token": "t0ken-value-1"}, "token: an inline secret|token_file"),
    ({"url": "https://h/x", "username": "u", "password": "pa55-word"}, "password_file"),
    ({"url": "https://bob:pa55-word@h/x"}, "url: user:password@|password_file"),
    ({"url": "s3://b/p", "access_key_id": "AKIA1", "secret_access_key": "sEcReT-1"},
     "secret_access_key: an inline secret|credentials_file"),
])
@pytest.mark.parametrize("exposure", ["0644", "0640", "other owner"])
@pytest.mark.root  # chowns the config to another user and back
def test_an_inline_secret_in_a_config_others_can_read_is_refused(tmp_path, entry, option,
                                                                  exposure):
    """Exit 3 and one line naming the *_file option; the secret itself is never printed. The
    same file at 0600 (ours) works, and a *_file option works in a 0644 file."""
    path = _write(tmp_path, [entry])
    if exposure == "other owner":
        os.chown(path, 65534, 65534)
    else:
        os.chmod(path, int(exposure, 8))
    r = run_cli("--config", path, "stats")
    assert r.returncode == 3, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for part in option.split("|"):
        assert part in lines[0], lines[0]
    assert "pa55" not in r.stderr and "sEcReT" not in r.stderr and "t0ken" not in r.stderr
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)
    assert run_cli("--config", path, "stats").returncode == 0


def test_secret_files_in_a_world_readable_config_are_fine(tmp_path):
    token = tmp_path / "remote.token"
    token.write_text("t0ken-value-2\n")
    token.chmod(0o600)
    path = _write(tmp_path, [{"url": "https://h/x", "token_file": str(token)}])
    os.chmod(path, 0o644)
    r = run_cli("--config", path, "stats")
    assert r.returncode == 0, r.stderr


def _config_warnings(path: str, *args: str) -> list[str]:
    r = run_cli("--config", path, *args)
    assert r.returncode == 0, r.stderr
    return [ln for ln in r.stderr.splitlines() if ln.startswith("pkgcache: warning: remote ")]


@pytest.mark.parametrize("entry, says", [
    ({"mode": "rw", "trusted_public_keys": ["k"]},
     ["mode rw without signing_key_file", "other members will ignore them"]),
    ({"mode": "ro"}, ["no trusted_public_keys", "ignore the records other members upload"]),
    ({"mode": "rw"}, ["without signing_key_file", "no trusted_public_keys"]),
    ({"mode": "ro", "trust": "unsigned"}, []),
    ({"mode": "ro", "trusted_public_keys": ["k"]}, []),
    ({"mode": "rw", "trusted_public_keys": ["k"], "signing_key_file": "KEY"}, []),
])
def test_a_remote_whose_records_are_useless_is_one_warning_line(tmp_path, entry, says):
    """``remote status`` and ``stats`` name the entry whose records members will ignore, in
    one line; a complete entry (or ``trust: unsigned``) gets none."""
    public = write_keypair(tmp_path / "fleet.key", "fleet-1")
    entry = dict(entry, url=f"file://{tmp_path / 'store'}")
    if entry.get("trusted_public_keys"):
        entry["trusted_public_keys"] = [public]
    if entry.get("signing_key_file"):
        entry["signing_key_file"] = str(tmp_path / "fleet.key")
    (tmp_path / "store").mkdir()
    path = _write(tmp_path, [entry])
    for args in (("remote", "status"), ("remote", "status", "--json"), ("stats",),
                 ("stats", "--json")):
        lines = _config_warnings(path, *args)
        if not says:
            assert lines == [], (args, lines)
            continue
        assert len(lines) == 1, (args, lines)
        assert str(tmp_path / "store") in lines[0] and all(s in lines[0] for s in says), lines


@pytest.mark.parametrize("secret", ["gone", "fifo"])
def test_a_missing_secret_file_skips_that_remote_only(tmp_path, secret):
    """A token_file that is gone (or a FIFO: never waited on): that remote is a fault (one
    warning, its breaker), the next remote is still asked and serves; the local tier is
    untouched. Run as a hook runs (no secret_files check), in a child with a time limit."""
    from tests.support.remote import file_store

    store = file_store(tmp_path / "shared")
    data = os.urandom(5000)
    digest = hashlib.sha256(data).hexdigest()
    store.write(f"cas/{digest}", data)
    token = tmp_path / "remote.token"
    if secret == "fifo":
        os.mkfifo(token, 0o600)
    path = _write(tmp_path, [{"url": "http://127.0.0.1:9/x", "token_file": str(token)},
                             store.remote()])
    code = ("import sys; from cache_core import PackageCache\n"
            "c = PackageCache.from_config(sys.argv[1])\n"
            "got = c.get(sys.argv[2])\n"
            "print(open(got, 'rb').read().hex() if got else None, c.stats()['remote']['errors'])")
    r = subprocess.run([sys.executable, "-c", code, path, f"sha256:{digest}"], cwd=REPO,
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.split() == [data.hex(), "1"], (r.stdout[-200:], r.stderr)
    assert r.stderr.count("warning") == 1, r.stderr


def test_a_missing_secret_file_is_a_config_error_for_commands(tmp_path):
    gone = tmp_path / "gone.token"
    path = _write(tmp_path, [{"url": "https://h/x", "token_file": str(gone)}])
    with pytest.raises(ConfigError) as info:
        load_config(path, secret_files=True)
    assert "remote[0].token_file" in str(info.value) and str(gone) in str(info.value)
    load_config(path)  # hooks: not an error (the remote is skipped when used)


def test_a_secret_file_another_user_cannot_look_at_is_not_their_config_error(tmp_path,
                                                                            monkeypatch):
    """root's 0600 token in a 0700 directory: a normal user's `pkgcache stats` must not stop
    (stat itself fails with EACCES there); that remote is skipped when used. For root the same
    EACCES is a config error."""
    hidden = tmp_path / "hidden.token"
    path = _write(tmp_path, [{"url": "https://h/x", "token_file": str(hidden)}])
    real_stat = os.stat

    def denied(p, *a, **k):
        if str(p) == str(hidden):
            raise PermissionError(13, "Permission denied", str(p))
        return real_stat(p, *a, **k)

    monkeypatch.setattr(os, "stat", denied)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    load_config(path, secret_files=True)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(ConfigError):
        load_config(path, secret_files=True)
    for cmd in (["stats"], ["get", "deb:x.deb"], ["remote", "status"]):
        r = run_cli("--config", path, *cmd)
        assert r.returncode == 3 and r.stdout == "", (cmd, r.returncode, r.stderr)
        assert r.stderr.count("\n") == 1 and "token_file" in r.stderr, r.stderr
    # a drop-in keeps working, with its local cache: the remote alone is skipped
    www = tmp_path / "www"
    www.mkdir()
    (www / "f.txt").write_bytes(b"payload")
    srv = serve_dir(www)
    try:
        for _ in (1, 2):
            r = run_cli("--config", path, "fetch", srv.url("/f.txt"), "-o", str(tmp_path / "f"))
            assert r.returncode == 0 and (tmp_path / "f").read_bytes() == b"payload", r.stderr
            assert "cache unavailable" not in r.stderr and r.stderr.count("\n") <= 1, r.stderr
    finally:
        srv.stop()
    assert run_cli("--config", path, "exists", srv.url("/f.txt")).returncode == 3
