"""pip's own network settings (``--proxy``, ``proxy=`` in pip.conf, $PIP_PROXY; the same for
``--cert``, ``--client-cert``, ``--trusted-host``): pkgcache's reachability probe cannot speak for
an index pip reaches that way, so pip goes online and only a network error of pip's own sends
the run to the cache. Real pip, the PEP 503 index on 127.0.0.1 reachable only through a proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from cache_core import PackageCache
from hooks.pip.install import install, plain
from hooks.pip.options import own_network, parse
from tests.support.pip import Index, make_wheel, py, venv_version
from tests.support.proxy import ProxyServer
from tests.support.remote import free_port


@pytest.mark.parametrize("how", ["cli", "env", "config"])
def test_an_index_only_pips_proxy_reaches_gets_the_version_plain_pip_installs(
        how: str, cache: PackageCache, index: Index, make_venv, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    for var in ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    dead = free_port()  # the address pip is given: nothing listens there, only the proxy knows
    proxy = ProxyServer(routes={("127.0.0.1", dead): ("127.0.0.1", index.port)})
    try:
        net: list[str] = []
        if how == "cli":
            net = ["--proxy", proxy.url]
        elif how == "env":
            monkeypatch.setenv("PIP_PROXY", proxy.url)
        else:
            conf = tmp_path / "pip.conf"
            conf.write_text(f"[global]\nproxy = {proxy.url}\n")
            monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
        args = [*net, "-i", f"http://127.0.0.1:{dead}/simple/", "beta"]
        v = make_venv()
        assert install(cache, ["--python", py(v), *args]) == 0
        assert venv_version(v, "beta") == "1.0"
        newer = tmp_path / "newer"
        newer.mkdir()
        index.add(make_wheel(newer, "beta", "2.0"))
        v = make_venv()
        assert plain(py(v), parse(args)) == 0
        assert venv_version(v, "beta") == "2.0"
        capfd.readouterr()
        v = make_venv()
        assert install(cache, ["--python", py(v), *args]) == 0  # not the cached 1.0
        assert venv_version(v, "beta") == "2.0"
        assert "pkgcache" not in capfd.readouterr().err
        assert proxy.count() > 0
    finally:
        proxy.stop()
    # the proxy gone: pip finds the cached 2.0 (the cache's tree is its last index); a project
    # the cache lacks fails with pip's own network error named, as the index is unreachable
    v = make_venv()
    assert install(cache, ["--python", py(v), *args]) == 0
    assert venv_version(v, "beta") == "2.0"
    capfd.readouterr()
    assert install(cache, ["--python", py(v), *args[:-1], "alpha"]) == 1
    err = capfd.readouterr().err
    assert err.startswith("pkgcache: pip: alpha: not in the cache, and the index "
                          f"http://127.0.0.1:{dead}/simple/ is unreachable (pip: "), err
    assert err.count("\n") == 1, err


@pytest.mark.parametrize("option", ["--cert", "--client-cert", "--trusted-host", "--proxy"])
def test_each_network_setting_is_seen_in_every_place_pip_reads_it(
        option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert own_network(["-i", "https://pypi.corp/simple", "beta"]) is None
    assert own_network([option, "x", "beta"]) == option
    assert own_network([f"{option}=x", "beta"]) == option
    assert own_network([option[:-1], "x", "beta"]) is not None  # an optparse prefix
    assert own_network(["beta", "--", option, "x"]) is None
    name = option[2:]
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[install]\n{name} = x\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    assert own_network(["beta"]) is not None
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_" + name.upper().replace("-", "_"), "x")
    # $PIP_CERT is the one pkgcache's own client reads as well (hooks.pip.build.pip_cafile)
    assert (own_network(["beta"]) is None) == (option == "--cert")
