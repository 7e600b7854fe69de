"""pip runs again without the view when the index answered the view with an error pip might
handle itself (here a 503 that is gone a moment later): what the first attempt printed is not
printed twice. Real pip, a PEP 503 index on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from cache_core import PackageCache
from hooks.pip.install import install
from tests.support.http import HttpServer, IndexApp
from tests.support.pip import Packages, py, venv_version


class _OnceUnavailable(IndexApp):
    """An index whose pages in ``fail_once`` answer 503 the first time they are asked."""

    fail_once: set[str] = set()

    def serve(self, h, hit) -> None:  # type: ignore[no-untyped-def]
        if hit.path in self.fail_once:
            self.fail_once.discard(hit.path)
            self.log.append(hit.path)
            hit.status = 503
            return h.send_error(503)
        return super().serve(h, hit)


def test_pips_output_is_shown_once_when_it_runs_again_without_the_view(
        cache: PackageCache, packages: Packages, make_venv, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    files = tmp_path / "files"
    files.mkdir()
    for p in (packages.alpha, packages.beta):
        (files / p.name).write_bytes(p.read_bytes())
    log: list[str] = []
    app = _OnceUnavailable(files, {}, log)
    app.fail_once = {"/simple/beta/"}  # alpha is collected, then its dependency's page fails
    server = HttpServer(app).start()
    try:
        url = f"http://127.0.0.1:{server.port}/simple/"
        v = make_venv()
        capfd.readouterr()
        assert install(cache, ["--python", py(v), "-i", url, "alpha"]) == 0
        out = capfd.readouterr().out
    finally:
        server.stop()
    assert venv_version(v, "beta") == "1.0"
    assert log.count("/simple/beta/") == 2, log  # the 503 (the view's), then pip's own
    lines = out.splitlines()
    assert lines.count(f"Looking in indexes: {url}") == 1, out
    assert sum(ln.startswith("Collecting alpha") for ln in lines) == 1, out
    assert sum(ln.startswith("Collecting beta") for ln in lines) == 1, out
