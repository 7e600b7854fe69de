"""The pre-install hook's shortcut (no seed while the method's front serves every deb), in-process:
silent for non-root users, a fault in it only means the seed runs, and it is taken only when
every source is http(s) and no deb placed by an earlier seed is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from hooks.apt import fleet, hook

apt_pkg = pytest.importorskip("apt_pkg")


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch):
    for var in ("APT_HOOK_INFO_FD", "PKGCACHE_HOOK_TIME_LIMIT"):
        monkeypatch.delenv(var, raising=False)
    yield
    hook._said.clear()


def _broken() -> None:
    raise RuntimeError("pointer unreadable")


def test_a_fault_in_the_shortcut_is_silent_for_a_non_root_user(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cache_core import stamps

    monkeypatch.setattr(stamps, "selected", _broken)
    monkeypatch.setattr(hook.os, "geteuid", lambda: 1000)
    asked: list[int] = []
    assert hook.run("pre-install", lambda: asked.append(1)) == 0  # type: ignore[arg-type,func-returns-value]
    out, err = capsys.readouterr()
    assert out == "" and err == "", err
    assert not asked  # stood aside: no cache opened


@pytest.mark.root
def test_a_fault_in_the_shortcut_runs_the_seed(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from cache_core import stamps

    monkeypatch.setattr(stamps, "selected", _broken)
    monkeypatch.setattr(hook, "_stand_aside", lambda: False)
    asked: list[int] = []
    assert hook.run("pre-install", lambda: asked.append(1)) == 0  # type: ignore[arg-type,func-returns-value]
    out, err = capsys.readouterr()
    assert out == "" and err == "", err
    assert asked == [1]  # the seed's cache was asked for (None: nothing to do)


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """apt's configuration naming sources files under tmp_path; the method's front on, the
    cache recorded without a remote, no earlier placement (an empty private state dir)."""
    apt_pkg.init_config()
    cfg = apt_pkg.config
    keys = ("Dir::Etc::sourcelist", "Dir::Etc::sourceparts", "Dir::Cache::archives")
    saved = {k: cfg.find(k) for k in keys}
    main = tmp_path / "sources.list"
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (tmp_path / "archives").mkdir()
    cfg.set(keys[0], str(main))
    cfg.set(keys[1], str(parts))
    cfg.set(keys[2], str(tmp_path / "archives"))
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(state))
    monkeypatch.setattr(fleet, "method_status", lambda: {"active": True})
    from cache_core import stamps

    monkeypatch.setattr(stamps, "selected", lambda: (str(tmp_path / "cache"), False))
    monkeypatch.setattr(stamps, "front_only", lambda: True)  # apt_front_only: true
    yield main, parts
    for k, v in saved.items():
        cfg.set(k, v)


def test_without_apt_front_only_the_seed_runs(sources, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default: the seed places debs before apt's download phase ("Need to get 0 B")."""
    from cache_core import stamps

    main, _parts = sources
    main.write_text("deb http://deb.example/debian bookworm main\n")
    assert hook._method_serves_alone() is True
    monkeypatch.setattr(stamps, "front_only", lambda: False)
    assert hook._method_serves_alone() is False


def test_all_http_sources_take_the_shortcut(sources) -> None:
    from hooks.apt.aptenv import source_uris

    main, parts = sources
    main.write_text("deb [signed-by=/k.gpg arch=amd64] http://deb.example/debian bookworm main\n"
                    "# deb ftp://old.example/debian bookworm main\n")
    (parts / "b.sources").write_text("Types: deb\nURIs: https://b.example/x\n  http://c.example/y\n"
                                     "Suites: s\nComponents: main\n\n"
                                     "Enabled: no\nTypes: deb\nURIs: ftp://off.example/\n")
    (parts / "c.disabled").write_text("deb file:/srv/repo ./\n")  # not read by apt either
    assert source_uris(apt_pkg.config) == ["http://deb.example/debian", "https://b.example/x",
                                           "http://c.example/y"]
    assert hook._method_serves_alone() is True


@pytest.mark.parametrize("line", ["deb tor+http://onion.example/debian bookworm main",
                                  "deb [trusted=yes] file:/srv/repo ./",
                                  "deb ftp://ftp.example/debian bookworm main",
                                  "deb mirror+http://m.example/list bookworm main"])
def test_a_source_the_front_does_not_serve_runs_the_seed(sources, line: str) -> None:
    main, parts = sources
    main.write_text("deb http://deb.example/debian bookworm main\n")
    (parts / "other.list").write_text(line + "\n")
    assert hook._method_serves_alone() is False


def test_a_deb822_source_the_front_does_not_serve_runs_the_seed(sources) -> None:
    main, parts = sources
    (parts / "d.sources").write_text("Types: deb\nURIs: http://ok.example/ cdrom:[Debian]/\n"
                                     "Suites: s\nComponents: main\n")
    assert hook._method_serves_alone() is False


def test_an_earlier_placement_runs_the_seed(sources, tmp_path: Path) -> None:
    from hooks.apt.aptenv import AptPaths
    from hooks.apt.seed import load_placed, save_placed

    main, _parts = sources
    main.write_text("deb http://deb.example/debian bookworm main\n")
    assert hook._method_serves_alone() is True
    paths = AptPaths.load(apt_pkg)
    deb = paths.archives / "a_1_all.deb"
    deb.write_bytes(b"a")
    st = deb.stat()
    save_placed(paths, {deb.name: ["0" * 64, st.st_ino, st.st_size, st.st_mtime_ns]})
    assert hook._method_serves_alone() is False  # its drop_stale may be needed
    assert load_placed(paths)
    deb.unlink()  # apt clean, or `apt` deleting debs after the install
    assert hook._method_serves_alone() is True
    assert load_placed(paths) == {}  # the record forgets it


@pytest.mark.parametrize(("serves", "seeded"), [("all", None), ("placed", True), ("", False)])
def test_the_pre_install_seed_places_nothing_while_the_front_serves(
        monkeypatch: pytest.MonkeyPatch, serves: str, seeded: bool | None) -> None:
    from hooks.apt import fastseed, method, seed

    calls: list[bool] = []

    def fake_seed(cache: object, specs: object, **kw: object) -> object:
        calls.append(bool(kw["plan_only"]))
        return seed.SeedReport()

    monkeypatch.setattr(method, "fold_front_counts", lambda cache: None)
    monkeypatch.setattr(fastseed, "fold_hits", lambda cache: None)
    monkeypatch.setattr(seed, "method_serves", lambda cache: serves)
    monkeypatch.setattr(seed, "seed", fake_seed)
    hook._dispatch("pre-install", object(), [])  # type: ignore[arg-type]
    assert calls == ([] if seeded is None else [seeded])
