"""Members that miss the same pip files at about the same moment download each once (#23).

Real pip through ``pkgcache pip install`` (the CLI, one process per member), each member with
its own cache, config and state dir, a shared ``file://`` store (leases by ``O_EXCL``), and a
slow PEP 503 index on 127.0.0.1 that logs every request. Members never start in lockstep: the
last two here start while the first is still downloading, after it has finished a small file
(its lease already released) and while it holds the lease of a large one.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.support.cli import popen_cli
from tests.support.pip import Index, _write_wheel, make_wheel, py, sha256_of, venv_version

pytestmark = pytest.mark.slow


def _big_wheel(out: Path, name: str, size: int) -> Path:
    """A wheel with an incompressible payload (a slow index takes a while to send it)."""
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": b'VERSION = "1.0"\n',
        f"{name}/blob.bin": os.urandom(size),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    return _write_wheel(out / f"{name}-1.0-py3-none-any.whl", info, files)


def _member(tmp_path: Path, shared: Path, name: str, venv: Path, index: Index
            ) -> subprocess.Popen[str]:
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({"performance": {"cache": {
        "directory": str(tmp_path / name),
        "remote": [{"url": f"file://{shared}", "mode": "rw", "trust": "unsigned"}]}}}))
    return popen_cli("--config", str(cfg), "pip", "install", "--python", py(venv), "-q",
                     "-i", index.url, "small", "big",
                     env={"PKGCACHE_STATE_DIR": str(tmp_path / f"state-{name}"),
                          "PKGCACHE_REMOTE_UPLOAD": "manual"},
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_three_members_starting_apart_download_each_file_once(tmp_path: Path, make_venv) -> None:
    """m1 downloads small (done, lease released) and starts on big; m2 and m3 start then: they
    take small from the store and wait for m1's big. The origin serves each file once (on the
    old code small was served three times: a lease taken after its holder released meant a
    second download)."""
    files = tmp_path / "slow-files"
    files.mkdir()
    index = Index(files, chunk_delay=0.05)
    small = index.add(make_wheel(tmp_path, "small", "1.0"))
    big = index.add(_big_wheel(tmp_path, "big", 800_000))  # ~49 pieces: ~2.5 s
    index.start()
    shared = tmp_path / "shared"
    shared.mkdir()
    venvs = [make_venv() for _ in range(3)]
    procs = []
    try:
        procs.append(_member(tmp_path, shared, "m1", venvs[0], index))
        end = time.monotonic() + 120
        while f"/files/{big.name}" not in index.requests:  # m1 is done with small
            assert time.monotonic() < end and procs[0].poll() is None, index.requests
            time.sleep(0.02)
        procs += [_member(tmp_path, shared, n, v, index) for n, v in (("m2", venvs[1]),
                                                                       ("m3", venvs[2]))]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        index.stop()
    served = Counter(r for r in index.requests if r.startswith("/files/"))
    assert served == Counter({f"/files/{small.name}": 1, f"/files/{big.name}": 1}), served
    for v in venvs:
        assert venv_version(v, "small") == "1.0" and venv_version(v, "big") == "1.0"
    assert (shared / "cas" / sha256_of(big)).is_file()
