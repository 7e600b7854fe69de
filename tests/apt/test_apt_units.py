"""Unit-level checks of the apt driver: naming, the hook protocol parser, the shipped snippet."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hooks.apt.harvest import parse_info
from hooks.apt.naming import archive_name, is_safe_name, parse_archive_name, quote
from hooks.apt.switch import DATA_SNIPPET, snippet_text

apt_pkg = pytest.importorskip("apt_pkg")


@given(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
               min_size=1, max_size=30))
def test_quote_matches_apt(value: str) -> None:
    for bad in ("_:", "_:."):
        assert quote(value, bad) == apt_pkg.quote_string(value, bad)


@given(st.from_regex(r"[a-z0-9][a-z0-9+.-]{0,20}", fullmatch=True),
       st.from_regex(r"([0-9]:)?[0-9][A-Za-z0-9.+~-]{0,15}(-[A-Za-z0-9.+~]{1,8})?", fullmatch=True),
       st.sampled_from(["amd64", "all", "arm64", "i386"]))
def test_archive_name_round_trip(name: str, version: str, arch: str) -> None:
    fname = archive_name(name, version, arch)
    assert "/" not in fname and ":" not in fname
    assert parse_archive_name(fname) == (name, version, arch)
    assert is_safe_name(fname)


def test_archive_name_epoch() -> None:
    assert archive_name("xxd", "2:9.0.1378-2+deb12u2", "amd64") == "xxd_2%3a9.0.1378-2+deb12u2_amd64.deb"


@pytest.mark.parametrize("bad", ["../x_1_all.deb", "a/b_1_all.deb", "x_1_all.deb\n", "x.deb",
                                 "..", "", "x_1_all.txt", "x_1_all.deb/"])
def test_unsafe_names_rejected(bad: str) -> None:
    assert not is_safe_name(bad)


V3 = """VERSION 3
APT::Architecture=amd64
Acquire::http::Proxy=http://user:hunter2@proxy:3128/
DPkg::Pre-Install-Pkgs::=/x%20y

libc6 - - none < 2.36-9 amd64 same /var/cache/apt/archives/libc6_2.36-9_amd64.deb
xxd - - none < 2:9.0-2 amd64 foreign /var/cache/apt/archives/xxd_2%3a9.0-2_amd64.deb
hello 2.10-2 amd64 none < 2.10-3 amd64 none /tmp/local dir/hello_2.10-3_amd64.deb
old 1.0 amd64 none > - - none **REMOVE**
xxd - - none < 2:9.0-2 amd64 foreign **CONFIGURE**
"""


def test_parse_v3_keeps_only_deb_actions() -> None:
    actions = parse_info(io.StringIO(V3))
    assert [(a.name, a.version, a.arch) for a in actions] == [
        ("libc6", "2.36-9", "amd64"), ("xxd", "2:9.0-2", "amd64"), ("hello", "2.10-3", "amd64")]
    assert actions[2].path == "/tmp/local dir/hello_2.10-3_amd64.deb"
    assert "hunter2" not in repr(actions)


def test_parse_v2_and_v1() -> None:
    v2 = "VERSION 2\nA::B=c\n\nhello - < 2.10-3 /a/hello_2.10-3_amd64.deb\nhello - < 2.10-3 **CONFIGURE**\n"
    assert [a.path for a in parse_info(io.StringIO(v2))] == ["/a/hello_2.10-3_amd64.deb"]
    v1 = "/a/hello_2.10-3_amd64.deb\n/a/xxd_2%3a9.0-2_amd64.deb\n"
    assert [a.path for a in parse_info(io.StringIO(v1))] == [
        "/a/hello_2.10-3_amd64.deb", "/a/xxd_2%3a9.0-2_amd64.deb"]


def _entries(text: str) -> list[str]:
    return re.findall(r'"([^"]*)"', "\n".join(ln for ln in text.splitlines()
                                              if not ln.lstrip().startswith("//")))


def test_snippet_every_command_is_guarded() -> None:
    text = DATA_SNIPPET.read_text()
    assert DATA_SNIPPET.name == "05pkgcache"  # sorts before docker-clean; a stable conffile name
    assert "%" not in text  # apt.conf decodes %XX in values
    commands = [e for e in _entries(text) if "pkgcache apt hook" in e]
    assert len(commands) == 3
    for cmd in commands:
        assert "[ -x /usr/bin/pkgcache ]" in cmd or "[ ! -x /usr/bin/pkgcache ]" in cmd
        assert cmd.endswith("|| true")


def test_snippet_parses_and_protocol_options_match_first_word(tmp_path) -> None:
    conf = tmp_path / "only.conf"
    conf.write_text(f'Dir::Etc::parts "{tmp_path}/none";\n')
    snippet = tmp_path / "snippet"
    snippet.write_text(snippet_text())
    env = {"APT_CONFIG": str(conf), "PATH": "/usr/bin:/bin"}
    dump = subprocess.run(["apt-config", "-c", str(snippet), "dump"], env=env,
                          capture_output=True, text=True, check=True).stdout
    pre = [ln for ln in dump.splitlines() if ln.startswith("DPkg::Pre-Install-Pkgs::")]
    assert len(pre) == 1
    first_word = pre[0].split('"')[1].split(" ")[0]
    assert first_word == "PKGCACHE_APT_HOOK=3"
    shell = subprocess.run(
        ["apt-config", "-c", str(snippet), "shell", "V", f"DPkg::Tools::Options::{first_word}::Version",
         "FD", f"DPkg::Tools::Options::{first_word}::InfoFD"],
        env=env, capture_output=True, text=True, check=True).stdout
    assert "V='3'" in shell and "FD='5'" in shell


def test_snippet_with_command_substitution() -> None:
    text = snippet_text("/opt/pk/bin/pkgcache")
    assert "/usr/bin/pkgcache" not in text and text.count("/opt/pk/bin/pkgcache") == 6
    for bad in ("relative", "/a b", "/a;b", "/a%3a", '/a"b'):
        with pytest.raises(ValueError):
            snippet_text(bad)


def test_apt_command_line_parsing_finds_simulations_and_words() -> None:
    from hooks.apt.invocation import AptInvocation, parse_args

    def inv(*args: str) -> AptInvocation:
        words, options = parse_args(list(args))
        return AptInvocation(1, "/usr/bin/apt-get", ["apt-get", *args], "/", words, options)

    assert inv("-qsy", "install", "jq").places_nothing
    assert inv("install", "--dry-run", "jq").places_nothing
    assert inv("--print-uris", "upgrade").places_nothing
    assert inv("-oAPT::Get::Simulate=yes", "install", "jq").places_nothing
    assert inv("--option", "apt::get::simulate=1", "install", "jq").places_nothing
    assert not inv("-o", "APT::Get::Simulate=false", "install", "jq").places_nothing
    assert not inv("-y", "-t", "bookworm-backports", "install", "jq").places_nothing
    assert not inv("-o", "Debug::s=1", "-c", "/x/-s.conf", "install", "jq").places_nothing
    # runs that download nothing or answer no: a deb placed would change what apt does
    assert inv("install", "--no-download", "jq").places_nothing
    assert inv("--assume-no", "full-upgrade").places_nothing
    assert inv("-o", "APT::Get::Download=false", "install", "jq").places_nothing
    assert not inv("-o", "APT::Get::Download=true", "install", "jq").places_nothing
    assert not inv("-o", "APT::Get::Assume-No=0", "install", "jq").places_nothing
    got = inv("-q", "-t", "bpo", "install", "--reinstall", "jq=1.6", "./x.deb", "--", "-s")
    assert got.words == ["install", "jq=1.6", "./x.deb", "-s"]
    assert got.command == "install" and not got.places_nothing
    assert inv("-c", "rel.conf", "install").config_files() == ["/rel.conf"]


# -- the post-update memo (hooks/apt/updatememo.py) ------------------------------------------------
def _memo_world(tmp_path, monkeypatch):
    from hooks.apt import updatememo

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(state))
    monkeypatch.setenv("APT_CONFIG", str(tmp_path / "apt.conf"))
    (tmp_path / "apt.conf").write_text('Dir "/";\n')
    lists = tmp_path / "lists"
    (lists / "partial").mkdir(parents=True)
    (lists / "h_d_InRelease").write_bytes(b"Date: Sat, 11 Jul 2026 10:16:37 UTC\nA\n")
    (lists / "h_d_Packages").write_bytes(b"Package: a\n")
    args = ["apt", "hook", "post-update"]

    def record(**kw):
        updatememo.write([str(tmp_path / "apt.conf")], [str(lists)], None, args, **kw)

    return updatememo, lists, args, record


def test_update_memo_is_fresh_only_while_nothing_it_read_changed(tmp_path, monkeypatch) -> None:
    import os
    import time

    memo, lists, args, record = _memo_world(tmp_path, monkeypatch)
    assert not memo.fresh(args)  # no full run recorded yet
    record(started=time.time())
    assert memo.fresh(args)
    (lists / "partial" / "x").write_bytes(b"apt's own")  # apt's partial dir: not read
    assert memo.fresh(args)
    assert not memo.fresh(["--config", "/other.yaml", *args])  # another cache
    monkeypatch.setenv("APT_CONFIG", "/elsewhere.conf")
    assert not memo.fresh(args)
    monkeypatch.setenv("APT_CONFIG", str(tmp_path / "apt.conf"))
    # a Release file with other bytes but the same inode, size and mtime (apt sets mtimes
    # from the server's whole-second Last-Modified): its digest tells
    rel = lists / "h_d_InRelease"
    st = rel.stat()
    rel.write_bytes(rel.read_bytes().replace(b"A", b"B"))
    os.utime(rel, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert rel.stat().st_ino == st.st_ino and rel.stat().st_size == st.st_size
    assert not memo.fresh(args)
    record(started=time.time())
    assert memo.fresh(args)
    (lists / "h_d_Packages").write_bytes(b"Package: b\n")  # an index replaced
    assert not memo.fresh(args)
    record(started=time.time() - memo.MAX_AGE - 1)  # a full run at least hourly
    assert not memo.fresh(args)


def test_update_memo_is_used_only_when_private(tmp_path, monkeypatch) -> None:
    import os
    import time

    memo, _lists, args, record = _memo_world(tmp_path, monkeypatch)
    record(started=time.time())
    path = tmp_path / "state" / memo.NAME
    assert memo.fresh(args)
    os.chmod(path, 0o644)
    assert not memo.fresh(args)
    os.chmod(path, 0o600)
    os.chmod(tmp_path / "state", 0o755)  # not a private state dir: no memo at all
    assert not memo.fresh(args)


def test_request_key_sees_every_index_no_release_file_lists(tmp_path: Path) -> None:
    """seed.request_key: an index a Release file lists counts by name and size (apt checked it
    against the Release file, whose bytes count); one no Release file lists (a flat repository
    made with dpkg-scanpackages, [trusted=yes]) and a deb named on the command line count by
    their bytes: a rebuilt deb of the same size changes the key (the review of aptfast)."""
    from types import SimpleNamespace

    from hooks.apt.aptenv import AptPaths
    from hooks.apt.seed import request_key

    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "h_debian_dists_a_InRelease").write_text("Release v1")
    (lists / "h_debian_dists_a_main_binary-amd64_Packages").write_text("SHA256: " + "1" * 64)
    (lists / "_srv_repo_._Packages").write_text("SHA256: " + "2" * 64)
    status = tmp_path / "status"
    status.write_text("")
    (tmp_path / "local.deb").write_bytes(b"deb v1")
    paths = AptPaths(archives=tmp_path, lists=lists, status=status, parts=tmp_path, watch=(),
                     policy="")
    cfg = SimpleNamespace(dump=lambda: "APT::Architecture \"amd64\";",
                          find_file=lambda name: str(tmp_path / "extended_states"))
    apt_pkg = SimpleNamespace(config=cfg)
    request = ("/usr/bin/apt-get", ["install", "-y", "./local.deb", "alpha"], str(tmp_path))

    def key() -> str:
        return request_key(request, apt_pkg, paths)

    first = key()
    assert key() == first
    (lists / "h_debian_dists_a_main_binary-amd64_Packages").write_text("SHA256: " + "3" * 64)
    assert key() == first  # listed by the InRelease: its bytes pin this one
    (lists / "h_debian_dists_a_InRelease").write_text("Release v2")
    second = key()
    assert second != first
    (lists / "_srv_repo_._Packages").write_text("SHA256: " + "4" * 64)  # same size
    third = key()
    assert third != second
    (tmp_path / "local.deb").write_bytes(b"deb v2")  # same size
    assert key() != third
