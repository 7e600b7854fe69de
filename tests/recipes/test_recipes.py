"""The recipes of docs/recipes.md (Dockerfile, Vagrant, cloud-init, Ansible), run as far as this machine
allows: a minbase Debian 12 root with docker-clean, the real .deb, the Debian archive and PyPI.

A cold Dockerfile build fills a cache once (module fixture); every recipe then runs in a fresh
root with a copy of that cache and must need 0 B from the archive for the server's packages,
with the pip step run without any network where the recipe allows it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cache_core import __version__
from tests.deb.debroot import build_deb

from .recipes import CACHE_TARGET, MinRoot, need_to_get, recipe_block, replay_dockerfile

pytestmark = [
    pytest.mark.network,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mmdebstrap"),
                       reason="builds Debian roots: needs root and mmdebstrap"),
]
DEB_NAME = f"pkgcache_{__version__}_all.deb"
# Hash-locked, as `pip-compile --generate-hashes` writes it: an image build starts from a fresh
# /var/lib/pkgcache, so offline only pins make a file from the cache mount trustworthy.
REQUIREMENTS = (b"six==1.16.0 "
                b"--hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One work dir per test run, shared by pytest-xdist's workers (the directory above each
    worker's basetemp), so the recipes below run on several workers from one build."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "recipes"
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(scope="module")
def warm(work: Path) -> tuple[Path, Path, Path]:
    """(the .deb, the Dockerfile's build context, a cache filled by one cold build of the
    recipes' Dockerfile), built once per run whichever worker comes first."""
    with open(work / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait for the one building
        return _build_once(work)


def _build_once(work: Path) -> tuple[Path, Path, Path]:
    deb, ctx, cache = work / "debbuild" / DEB_NAME, work / "context", work / "warm-cache"
    if (work / "ready").exists():
        return deb, ctx, cache
    for leftover in ("debbuild", "context", "cold-root", "warm-cache"):  # a failed earlier try
        shutil.rmtree(work / leftover, ignore_errors=True)
    built = build_deb(work / "debbuild")
    assert built == deb, f"docs/recipes.md names {DEB_NAME}; update them"
    ctx.mkdir()
    shutil.copy(deb, ctx / DEB_NAME)
    (ctx / "requirements.txt").write_bytes(REQUIREMENTS)
    root = MinRoot.create(work / "cold-root", cache)
    try:
        steps = replay_dockerfile(root, recipe_block("Dockerfile with a BuildKit cache mount",
                                                     "dockerfile"), ctx)
        # the cold build downloaded the server's packages
        assert any(need_to_get(s.output)[-1:] not in ([], ["0 B"]) for s in steps
                   if "nginx" in s.script)
    finally:
        root.remove()
    (work / "ready").touch()
    return deb, ctx, cache


@pytest.fixture(scope="module")
def deb(warm: tuple[Path, Path, Path]) -> Path:
    """The .deb built from this checkout, under the name the recipes use."""
    return warm[0]


@pytest.fixture(scope="module")
def context(warm: tuple[Path, Path, Path]) -> Path:
    """The Dockerfile's build context: the .deb and requirements.txt."""
    return warm[1]


@pytest.fixture(scope="module")
def warm_cache(warm: tuple[Path, Path, Path]) -> Path:
    """A cache filled by one cold build of the recipes' Dockerfile."""
    return warm[2]


@pytest.fixture
def fresh(tmp_path: Path, warm_cache: Path) -> Iterator[MinRoot]:
    """A fresh root with its own copy of the warm cache."""
    cache = tmp_path / "cache"
    shutil.copytree(warm_cache, cache, symlinks=True)
    root = MinRoot.create(tmp_path / "root", cache)
    try:
        yield root
    finally:
        root.remove()


def assert_served(output: str) -> None:
    got = need_to_get(output)
    assert got and got[-1] == "0 B", f"server packages not served from the cache: {got}\n" \
                                     f"{output[-3000:]}"


def test_dockerfile_recipe(fresh: MinRoot, context: Path) -> None:
    text = recipe_block("Dockerfile with a BuildKit cache mount", "dockerfile")
    steps = replay_dockerfile(fresh, text, context, offline_pip=True)
    (install,) = [s for s in steps if "nginx" in s.script]
    assert_served(install.output)
    assert "pkgcache: warning" not in "".join(s.output for s in steps)
    assert (fresh.path / "opt/app/bin/python").exists()
    assert not (fresh.path / "usr/bin/pkgcache").exists()      # purged at the end


def test_vagrant_recipe(fresh: MinRoot, deb: Path) -> None:
    ruby = recipe_block("Vagrant synced folder", "ruby")
    target = re.search(r'synced_folder .*?,\s*"([^"]+)"', ruby, re.S).group(1)
    assert target == CACHE_TARGET and 'owner: "root"' in ruby
    script = re.search(r"<<-SHELL\n(.*?)^\s*SHELL$", ruby, re.S | re.M).group(1)
    fresh.put("/vagrant/build/" + DEB_NAME, deb)
    fresh.put("/vagrant/requirements.txt", REQUIREMENTS)
    step = fresh.check(fresh.run(script, mount=target))
    assert_served(step.output)
    assert "pkgcache: warning" not in step.output
    assert (fresh.path / "opt/app/lib").is_dir()


def test_cloud_init_recipe(fresh: MinRoot, deb: Path) -> None:
    text = recipe_block("cloud-init", "yaml")
    assert text.startswith("#cloud-config\n")
    cfg = yaml.safe_load(text)
    (mount,) = cfg["mounts"]
    assert len(mount) == 6 and mount[1] == CACHE_TARGET
    for f in cfg.get("write_files", []):
        fresh.put(f["path"], f["content"].encode())
    fresh.put("/root/" + DEB_NAME, deb)
    outputs = []
    for entry in cfg["runcmd"]:
        assert entry[:2] == ["sh", "-c"], entry
        outputs.append(fresh.check(fresh.run(entry[2], mount=mount[1])).output)
    (install,) = [o for o, e in zip(outputs, cfg["runcmd"], strict=True) if "nginx" in e[2]]
    assert_served(install)
    assert (fresh.path / "opt/app/bin/python").exists()


def test_ansible_recipe(fresh: MinRoot, deb: Path) -> None:
    """The recipes' playbook, byte for byte (not rewrapped: a bare task list once passed here
    and failed for users with "not a valid attribute for a Play")."""
    playbook = recipe_block("Ansible", "yaml")
    fresh.put("/srv/pkgs/" + DEB_NAME, deb)
    fresh.put("/srv/app/requirements.txt", REQUIREMENTS)
    fresh.put("/srv/play.yml", playbook.encode())
    # The controller: ansible-core from PyPI, inside the root (python3-venv for its venv only).
    fresh.check(fresh.run("apt-get update -q && apt-get install -y -q --no-install-recommends "
                          "python3-venv && python3 -m venv /opt/ansible && "
                          "/opt/ansible/bin/pip install -q 'ansible-core>=2.15,<2.18'",
                          mount=None))
    # The minimal callback prints each module's result as JSON ("host | CHANGED => {...}").
    step = fresh.check(fresh.run("ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_STDOUT_CALLBACK=minimal "
                                 "/opt/ansible/bin/ansible-playbook -i localhost, -c local "
                                 "-e ansible_python_interpreter=/usr/bin/python3 /srv/play.yml"))
    results = [json.JSONDecoder().raw_decode(step.output, m.end())[0]
               for m in re.finditer(r"^localhost \| \w+ => (?=\{)", step.output, re.M)]
    (install,) = [r for r in results if "nginx" in r.get("stdout", "")
                  and "postgresql-client" in r.get("stdout", "")]
    assert_served(install["stdout"])
    assert (fresh.path / "opt/app/bin/python").exists()
    assert "pkgcache: warning" not in step.output
