"""Issue #22 item 3: provenance for pip, everywhere. A cached file is offered to a request only
if it came from one of that request's own sources (its indexes, its find-links), for the
offline fallback, pinned requests, ``--index-url`` and ``--find-links`` requests alike. Real pip
and uv against the PEP 503 index on 127.0.0.1 and a ``file://`` index."""

from __future__ import annotations

from pathlib import Path

import pytest

from cache_core import PackageCache
from hooks.pip import options
from hooks.pip.install import install, plain
from hooks.pip.options import parse
from hooks.pip.runner import uv_bin
from tests.support.pip import (
    Index,
    file_index,
    installed_tag,
    make_wheel,
    py,
    same_name_other_bytes,
    venv_version,
)


def test_a_find_links_file_is_never_offered_to_a_request_without_that_location(
        cache: PackageCache, index: Index, make_venv, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """``--find-links ./dist beta`` of a local beta 99.0; later ``beta`` without that location
    gets the index's beta online and fails offline, as plain pip does."""
    dist = tmp_path / "dist"
    dist.mkdir()
    make_wheel(dist, "beta", "99.0")
    make_wheel(dist, "gamma", "99.0")  # a project only ./dist has
    monkeypatch.chdir(tmp_path)
    v = make_venv()
    assert install(cache, ["--python", py(v), "-i", index.url, "--find-links", "./dist",
                           "beta", "gamma"]) == 0
    assert venv_version(v, "beta") == "99.0" and venv_version(v, "gamma") == "99.0"
    # online: the index's beta, as plain pip installs
    v = make_venv()
    assert install(cache, ["--python", py(v), "-i", index.url, "beta"]) == 0
    assert venv_version(v, "beta") == "1.0"
    index.stop()
    # offline and index unreachable: only the request's own sources; the cached 99.0 came from
    # ./dist, which this request does not read (the index's 1.0 is cached: that one is fine)
    for extra in (["--offline"], []):
        v = make_venv()
        assert install(cache, ["--python", py(v), *extra, "-i", index.url, "beta"]) == 0
        assert venv_version(v, "beta") == "1.0", extra
    # a project only ./dist has: offered to a request reading ./dist, to no other
    v = make_venv()
    assert install(cache, ["--python", py(v), "-i", index.url, "--find-links", "./dist",
                           "--offline", "gamma"]) == 0  # the same location: served
    capfd.readouterr()
    v = make_venv()
    assert install(cache, ["--python", py(v), "--offline", "-i", index.url, "gamma"]) != 0
    assert venv_version(v, "gamma") is None
    assert plain(py(make_venv()), parse(["-i", index.url, "gamma"])) != 0
    # the same with the default index (no -i): what the issue ran
    v = make_venv()
    assert install(cache, ["--python", py(v), "--offline", "gamma"]) != 0
    assert venv_version(v, "gamma") is None


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_index_url_gets_that_index_file_not_another_index_cached_file_of_that_name(
        installer: str, cache: PackageCache, index: Index, make_venv, tmp_path: Path) -> None:
    """``--index-url file:///idx/simple beta==1.0`` installs that index's file, not the cached
    wheel of the same name from the http index; and the other way round afterwards."""
    if installer == "uv" and uv_bin() is None:
        pytest.skip("uv is not installed")
    base = ["--installer", installer]
    v = make_venv()
    assert install(cache, ["--python", py(v), *base, "-i", index.url, "beta==1.0"]) == 0
    assert installed_tag(v, "beta") == "py3-none-any"
    other = same_name_other_bytes(tmp_path / "other", "beta", "1.0")
    idx = file_index(tmp_path / "idx", [other])
    v = make_venv()
    assert install(cache, ["--python", py(v), *base, "--index-url", idx, "beta==1.0"]) == 0
    assert installed_tag(v, "beta") == "py2.py3-none-any"
    # and the http index's request again gets the http index's file (online, then offline)
    v = make_venv()
    assert install(cache, ["--python", py(v), *base, "-i", index.url, "beta==1.0"]) == 0
    assert installed_tag(v, "beta") == "py3-none-any"
    index.stop()
    v = make_venv()
    assert install(cache, ["--python", py(v), *base, "--offline", "--index-url", idx,
                           "beta==1.0"]) in (0, 1)
    assert installed_tag(v, "beta") in (None, "py2.py3-none-any")


def test_sources_read_the_index_options_inside_requirement_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip's req_file.handle_option_line: a file's --index-url replaces every index (also the
    command line's extras), --extra-index-url and --find-links add one (a path relative to the
    file if it exists there), --no-index drops those so far; -c files first, nested in place."""
    monkeypatch.setenv("CORP", "https://pypi.corp")
    (tmp_path / "wh").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.txt").write_text("--extra-index-url=https://extra.corp/simple\n")
    req = tmp_path / "req.txt"
    req.write_text("# a lock\n-i ${CORP}/simple  # the corp index\n-r sub/inner.txt\n"
                   "--find-links wh\nbeta==1.0\n")
    base = ["-i", "https://a.example/simple", "--extra-index-url", "https://b.example/simple"]
    assert options.source_list([*base, "-r", str(req)]) == [
        ("index", "https://pypi.corp/simple"), ("index", "https://extra.corp/simple"),
        ("links", str(tmp_path / "wh"))]
    cons = tmp_path / "cons.txt"
    cons.write_text("--index https://c.example/simple\n")  # an optparse prefix
    assert options.source_list([*base, f"--requirement={req}", "-c", str(cons)])[:2] == [
        ("index", "https://pypi.corp/simple"), ("index", "https://extra.corp/simple")]
    assert options.source_list([*base, f"-c{cons}", "beta"]) == [
        ("index", "https://c.example/simple")]
    (tmp_path / "off.txt").write_text("-r req.txt\n--no-index\n")
    assert options.source_list([*base, "-r", str(tmp_path / "off.txt")]) == [
        ("links", str(tmp_path / "wh"))]
    assert options.source_list([*base, "beta"]) == [
        ("index", "https://a.example/simple"), ("index", "https://b.example/simple")]
    # line by line, as pip applies them: --no-index drops the indexes named so far only
    (tmp_path / "later.txt").write_text("--no-index\n--extra-index-url https://d.example/s\n")
    assert options.source_list([*base, "-r", str(tmp_path / "later.txt")]) == [
        ("index", "https://d.example/s")]


def test_a_file_from_an_index_named_in_a_requirements_file_is_not_served_for_another_index(
        cache: PackageCache, index: Index, make_venv, tmp_path: Path) -> None:
    """req.txt's ``--index-url`` sends pip to a second index: its beta is recorded as that
    index's, so a later ``-i <first index> beta==1.0`` (pinned: the cache first) gets the first
    index's beta, as plain pip does, and req.txt again gets the second index's."""
    files = tmp_path / "second-files"
    files.mkdir()
    second = Index(files)
    second.add(same_name_other_bytes(tmp_path / "other", "beta", "1.0"))
    second.start()
    try:
        req = tmp_path / "req.txt"
        req.write_text(f"--index-url {second.url}\nbeta==1.0\n")
        v = make_venv()
        assert install(cache, ["--python", py(v), "-i", index.url, "-r", str(req)]) == 0
        assert installed_tag(v, "beta") == "py2.py3-none-any"  # as plain pip: the file's index
        v = make_venv()
        assert install(cache, ["--python", py(v), "-i", index.url, "beta==1.0"]) == 0
        assert installed_tag(v, "beta") == "py3-none-any"
        v = make_venv()
        assert install(cache, ["--python", py(v), "-i", index.url, "-r", str(req)]) == 0
        assert installed_tag(v, "beta") == "py2.py3-none-any"
    finally:
        second.stop()
