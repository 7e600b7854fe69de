"""pip's config files as the driver and the memo see them: pip's whole order, the venv's too."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hooks.pip import memo, options


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k in ("PIP_CONFIG_FILE", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", f"{tmp_path}/xdg1:{tmp_path}/xdg2")
    monkeypatch.setattr(options, "_target", [], raising=False)
    return tmp_path


def test_pip_order(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = home / "home"
    assert options.pip_config_files(str(home / "venv")) == [
        f"{home}/xdg1/pip/pip.conf", f"{home}/xdg2/pip/pip.conf", "/etc/pip.conf",
        f"{h}/.pip/pip.conf", f"{h}/.config/pip/pip.conf", f"{home}/venv/pip.conf"]
    env = home / "env.conf"
    env.write_text("")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(env))  # present: no user files, env file last
    assert options.pip_config_files(None)[-2:] == ["/etc/pip.conf", str(env)]
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    assert options.pip_config_files(str(home / "venv")) == []


def test_venv_and_xdg_config_name_the_index(home: Path) -> None:
    venv = home / "venv"
    (venv / "bin").mkdir(parents=True)
    (home / "xdg2" / "pip").mkdir(parents=True)
    (home / "xdg2" / "pip" / "pip.conf").write_text(
        "[global]\nindex-url = http://127.0.0.1:9/xdg/\nextra-index-url = http://127.0.0.1:9/x/\n")
    assert options.index_url([]) == "http://127.0.0.1:9/xdg/"
    assert options.extra_index_urls() == ["http://127.0.0.1:9/x/"]
    (venv / "pip.conf").write_text("[global]\nindex-url = http://127.0.0.1:9/venv/\n")
    options.set_target(str(venv / "bin" / "python"))  # (the driver names its target)
    assert options.index_url([]) == "http://127.0.0.1:9/venv/"


def test_memo_stamps_the_venv_config(home: Path) -> None:
    venv = home / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    cache = SimpleNamespace(config=None)
    store = SimpleNamespace(subdir=lambda name: home / name)
    target = SimpleNamespace(python=str(venv / "bin" / "python"))
    files = memo._config_files(cache, store, target)  # type: ignore[arg-type]
    assert "{venv}/pip.conf" in files  # (fast.py reads it in the venv of the run it serves)
    assert f"{home}/xdg1/pip/pip.conf" in files


def test_an_options_value_is_not_a_requirement(tmp_path: Path) -> None:
    """``-i URL`` and ``-c FILE`` name no project (the fleet looked up a project "http")."""
    req = tmp_path / "req.txt"
    req.write_text("alpha==1.0\n")
    cons = tmp_path / "cons.txt"
    cons.write_text("beta<2\n")
    args = ["-i", "http://127.0.0.1:1/simple/", "-c", str(cons), "--timeout", "5",
            "-r", str(req), "gamma"]
    assert options.request_lines(args) == ["alpha==1.0", "gamma"]
    assert options.requirement_hashes(args) == ([], ["alpha", "gamma"])
