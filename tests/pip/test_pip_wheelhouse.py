"""Wheelhouse, uv backend, CLI wiring, and the pure parts (options, page, fingerprints)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from cache_core import PackageCache
from hooks.pip.install import install, wheelhouse
from hooks.pip.options import UsageError, parse
from hooks.pip.runner import uv_bin
from hooks.pip.store import Candidate, WheelStore
from hooks.pip.target import probe
from tests.support.cli import run_cli
from tests.support.pip import (
    Index,
    Packages,
    pins_all,
    pip_offline_hashed,
    py,
    sha256_of,
    venv_version,
)


def test_wheelhouse_serves_plain_pip_offline_with_hashes(cache: PackageCache, index: Index,
                                                         packages: Packages, make_venv,
                                                         tmp_path: Path,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    req = tmp_path / "req.txt"
    req.write_text("alpha\ndelta\n")
    wh = tmp_path / "wh"
    v = make_venv()
    assert wheelhouse(cache, ["--python", py(v), "-i", index.url, "-r", str(req),
                              "-d", str(wh)]) == 0, capfd.readouterr().err
    names = sorted(p.name for p in wh.iterdir())
    built = [n for n in names if n.startswith("delta-1.0-") and n.endswith(".whl")]
    assert "alpha-1.0-py3-none-any.whl" in names and "beta-1.0-py3-none-any.whl" in names
    assert "delta-1.0.tar.gz" in names and len(built) == 1 and "index.html" in names
    page = (wh / "index.html").read_text()
    for n in names:
        if n != "index.html":
            assert f'href="{n}#sha256={sha256_of(wh / n)}"' in page
    assert venv_version(v, "alpha") is None  # a wheelhouse installs nothing

    # Plain pip on "another machine": no cache, no index, hash-checking mode on the wheels.
    index.stop()
    hashed = tmp_path / "hashed.txt"
    hashed.write_text("".join(f"{n.split('-')[0]}=={n.split('-')[1]} "
                              f"--hash=sha256:{sha256_of(wh / n)}\n"
                              for n in names if n.endswith(".whl")))
    v2 = make_venv()
    out = pip_offline_hashed(v2, wh / "index.html", hashed)
    assert out.returncode == 0, out.stderr
    assert venv_version(v2, "delta") == "1.0" and venv_version(v2, "beta") == "1.0"

    # A second wheelhouse for the same request comes from the cache alone.
    before = len(index.requests)
    assert wheelhouse(cache, ["--python", py(v), "-i", index.url, "-r", str(req),
                              "-d", str(tmp_path / "wh2")]) == 0
    assert len(index.requests) == before


def test_wheelhouse_missing_package(cache: PackageCache, index: Index, make_venv, tmp_path: Path,
                                    capfd: pytest.CaptureFixture[str]) -> None:
    assert wheelhouse(cache, ["--python", py(make_venv()), "-i", index.url, "nosuchpkg",
                              "-d", str(tmp_path / "wh")]) == 1
    assert "nosuchpkg" in capfd.readouterr().err


@pytest.mark.skipif(uv_bin() is None, reason="uv is not installed")
def test_uv_backend_offline(cache: PackageCache, index: Index, make_venv,
                            capfd: pytest.CaptureFixture[str], pip_isolation: Path) -> None:
    v1 = make_venv()
    assert install(cache, ["--python", py(v1), "--installer", "uv", "-i", index.url,
                           "alpha", "delta"]) == 0, capfd.readouterr().err
    assert venv_version(v1, "alpha") == "1.0" and venv_version(v1, "delta") == "1.0"
    index.stop()
    before = len(index.requests)
    v2 = make_venv()
    assert install(cache, ["--python", py(v2), "--installer", "uv", "-i", index.url,
                           "alpha", "delta", "plat"]) == 1  # plat was never cached
    err = capfd.readouterr().err.strip().splitlines()
    assert err and "plat" in err[-1]
    assert install(cache, ["--python", py(v2), "--installer", "uv", "-i", index.url,
                           "alpha", "delta"]) == 0, capfd.readouterr().err
    assert len(index.requests) == before
    assert venv_version(v2, "beta") == "1.0" and venv_version(v2, "delta") == "1.0"
    assert pip_isolation.read_text().count("delta ") == 1
    # uv's own cache stays inside pkgcache's directory.
    assert any((Path(cache.root) / "pip-v1" / "tool-cache" / "uv").iterdir())


def test_cli_pip_install_passes_options_through(tmp_path: Path, index: Index, make_venv) -> None:
    v = make_venv()
    out = run_cli("pip", "install", "--python", py(v), "-i", index.url, "-q",
                  "alpha[extra]; python_version >= '3'", cache_dir=tmp_path / "c")
    assert out.returncode == 0, out.stderr
    assert venv_version(v, "alpha") == "1.0"
    assert out.stdout == ""
    help_out = run_cli("pip", "install", "--help", cache_dir=tmp_path / "c")
    assert help_out.returncode == 0 and "--installer" in help_out.stdout


def test_options_split() -> None:
    opts = parse(["-r", "r.txt", "--refresh", "--python=/x/py", "-i", "http://i/simple",
                  "--extra-index-url=http://e/", "-fhttp://f", "--no-index", "--installer", "uv",
                  "--pre", "-U", "pkg[x]>=1"])
    assert opts.refresh and opts.python == "/x/py" and opts.installer == "uv" and opts.no_index
    assert opts.offline_args() == ["-r", "r.txt", "--pre", "-U", "pkg[x]>=1"]
    assert opts.source_args() == ["-i", "http://i/simple", "--extra-index-url=http://e/",
                                  "--no-index"]
    assert parse(["--", "--refresh"]).pip_args == ["--", "--refresh"]
    with pytest.raises(UsageError):
        parse(["--installer", "conda"])
    with pytest.raises(UsageError):
        parse(["--refresh", "--offline"])


def test_page_escapes_and_carries_hashes(cache: PackageCache, tmp_path: Path,
                                         packages: Packages) -> None:
    cache.put("wheel:alpha-1.0-py3-none-any.whl", str(packages.alpha),
              meta={"filename": "alpha-1.0-py3-none-any.whl", "requires_python": ">=3.8,<4"})
    store = WheelStore(cache)
    target = probe(sys.executable)
    cands = store.candidates(target, pins_all(cache))
    assert [c.filename for c in cands] == ["alpha-1.0-py3-none-any.whl"]
    page = tmp_path / "p.html"
    store.write_page(page, cands)
    text = page.read_text()
    assert f"#sha256={sha256_of(packages.alpha)}" in text
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in text
    assert re.search(r'href="file:///[^"]+/alpha-1.0-py3-none-any.whl#', text)
    # The linked file is the cached object under its real name, nowhere outside the cache.
    assert cands[0].path.resolve().is_relative_to(Path(cache.root).resolve())


def test_built_wheels_only_for_their_fingerprint(cache: PackageCache, packages: Packages) -> None:
    target = probe(sys.executable)
    store = WheelStore(cache)
    sha = sha256_of(packages.delta)
    mine = store.built_key(sha, target)
    cache.put(f"built:{sha}:cp311-cp311-x86_64-musl1.2-alpine3.19", str(packages.beta),
              meta={"filename": "delta-1.0-cp311-cp311-linux_x86_64.whl"})
    assert store.candidates(target, pins_all(cache)) == []
    cache.put(mine, str(packages.alpha), meta={"filename": "delta-1.0-py3-none-any.whl"})
    got = store.candidates(target, pins_all(cache))
    assert len(got) == 1 and isinstance(got[0], Candidate) and got[0].entry.key == mine
    assert target.fingerprint.count("-") >= 4 and target.machine in target.fingerprint


def test_bad_file_names_never_reach_the_view(cache: PackageCache, packages: Packages) -> None:
    cache.put("wheel:../../evil-1.0-py3-none-any.whl", str(packages.alpha))
    cache.put("built:" + "0" * 64 + ":x", str(packages.alpha),
              meta={"filename": "../x-1.0-py3-none-any.whl"})
    store = WheelStore(cache)
    store.candidates(probe(sys.executable), pins_all(cache))
    files = [p for p in Path(cache.root).rglob("*") if "evil" in p.name or p.name.startswith("x-")]
    assert files == []


def test_links_never_pin_objects_against_eviction(cache: PackageCache,
                                                  packages: Packages) -> None:
    cache.put("wheel:alpha-1.0-py3-none-any.whl", str(packages.alpha))
    cache.put("wheel:beta-1.0-py3-none-any.whl", str(packages.beta))
    store = WheelStore(cache)
    target = probe(sys.executable)
    store.flat_dir(target, store.candidates(target, pins_all(cache)))
    objects = [cache.object_path(e.digest) for e in cache.keys("wheel:")]
    assert all(p.exists() for p in objects)
    cache.gc(max_size_bytes=1)  # the cap forces every object out
    assert not any(p.exists() for p in objects)  # the links kept nothing on disk
    assert store.prune_view() >= 2
    assert [p.name for p in Path(cache.root).rglob("*.whl")] == []
    assert store.candidates(target, pins_all(cache)) == []


def test_report_urls_never_name_a_path() -> None:
    from hooks.pip.store import parse_report

    def item(url: str, sha: str = "a" * 64) -> dict:
        return {"download_info": {"url": url, "archive_info": {"hashes": {"sha256": sha}}},
                "metadata": {"name": "x", "version": "1.0"}}

    arts = parse_report({"version": "1", "install": [
        item("http://i/files/..%2F..%2Fetc%2Fx-1.0-py3-none-any.whl"),
        item("http://i/files/x-1.0-py3-none-any.whl", sha="zz"),
        item("http://i/files/x-1.0-py3-none-any.whl"),
        {"download_info": {"url": "git+https://h/r", "vcs_info": {}}, "metadata": {"name": "x"}},
    ]})
    assert [a.cacheable for a in arts] == [False, False, True, False]
    assert arts[0].filename == "" and arts[2].filename == "x-1.0-py3-none-any.whl"
