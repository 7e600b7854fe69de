"""Issue 11 (apt): simulations and non-root runs untouched and silent; the seed follows apt's own
request (=version, -t, /release, --reinstall, order); a stale deb is never left for apt; a
bind-mounted cache costs no copies on update; `apt enable` names the running executable.
All with the real apt-get/dpkg against the local repository lab."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.apt import build_deb
from tests.support.cli import pip_installed, run_cli

ALPHA = "alpha_1.0-1_all.deb"
BETA = "beta_2%3a1.0-1_amd64.deb"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pkgcache_said(res: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in (res.stdout + res.stderr).splitlines() if "pkgcache" in ln]


def first_install(lab) -> None:
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)
    assert len(lab.cache().keys("deb:")) == 2
    lab.server.reset()


def payload(name: str, version: str, seed: int = 0, size: int = 20000) -> bytes:
    """The payload build_deb puts into a package (to check which bytes got installed)."""
    return random.Random(f"{name}-{version}-{seed}").randbytes(size)


def installed_payload(lab, name: str) -> bytes:
    return (lab.sb.root / "usr/share/pkgcache-test" / name / "payload.bin").read_bytes()


# -- 1. simulations and non-root: nothing done, nothing printed ------------------------------------
def as_nobody(lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(lab.sb.env(), HOME="/nonexistent")
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "apt-get", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_non_root_simulation_prints_nothing_from_pkgcache(open_lab) -> None:
    lab = open_lab
    first_install(lab)  # as root: the cache dir now exists, owned by root
    lab.reprovision()
    for d in (lab.sb.base, lab.sb.root):
        os.chmod(d, 0o755)
    for args in (["-s", "install", "alpha"], ["-s", "upgrade"], ["--simulate", "install", "gamma"]):
        res = as_nobody(lab, *args)
        assert res.returncode == 0, res.stderr
        assert pkgcache_said(res) == [], res.stderr
    assert lab.sb.debs_in_archives() == []


def test_print_uris_output_is_identical_with_and_without_pkgcache(lab) -> None:
    first_install(lab)
    lab.reprovision()
    args = ("--print-uris", "-qq", "install", "alpha")
    with_hooks = lab.sb.apt(*args, check=True)
    assert lab.sb.debs_in_archives() == []
    (lab.sb.parts / "05pkgcache").unlink()
    without = lab.sb.apt(*args, check=True)
    assert with_hooks.stdout == without.stdout
    assert ALPHA in with_hooks.stdout and BETA in with_hooks.stdout
    assert pkgcache_said(with_hooks) == []


def _print_uris(sb, args: tuple[str, ...], *, nobody: bool) -> str:
    cmd = ["apt-get", "--print-uris", "-qq", *args]
    if nobody:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    env = dict(sb.env(), HOME="/nonexistent") if nobody else sb.env()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert pkgcache_said(res) == [], res.stderr
    return res.stdout


def test_print_uris_after_update_is_identical_with_and_without_pkgcache(open_lab) -> None:
    """Issue 24: after an `apt-get update`, `--print-uris install/upgrade/dist-upgrade` list
    the same URIs with pkgcache (its cache holding every new deb) as on the same machine
    without pkgcache, for root and for a normal user: the update places nothing in archives."""
    from tests.support.apt import Sandbox

    lab = open_lab
    plain = Sandbox(lab.sb.base.parent / "plain", lab.server.base, lab.sb.base / "unused")
    for sb in (lab.sb, plain):
        sb.apt("update", check=True)
        sb.apt("install", "alpha", "gamma", check=True)
        sb.apt("clean", check=True)
    lab.repo.add("alpha", "1.1", depends="beta")
    lab.repo.add("gamma", "0.6", size=5000)
    lab.repo.add("delta", "1.0")
    lab.republish()
    # the cache already holds every new deb (another provisioning with the same cache)
    warm = Sandbox(lab.sb.base.parent / "warm", lab.server.base, lab.cache_dir)
    warm.install_snippet()
    warm.apt("update", check=True)
    warm.apt("install", "alpha", "gamma", "delta", check=True)
    assert {"alpha_1.1_all.deb", "gamma_0.6_all.deb", "delta_1.0_all.deb"} <= \
        {e.key[4:] for e in lab.cache().keys("deb:")}
    for sb in (lab.sb, plain):
        sb.apt("update", check=True)
        for d in (sb.base, sb.root):
            os.chmod(d, 0o755)
    assert lab.sb.debs_in_archives() == plain.debs_in_archives() == []
    for args in (("install", "delta"), ("upgrade",), ("dist-upgrade",)):
        for nobody in (False, True):
            ours = _print_uris(lab.sb, args, nobody=nobody)
            theirs = _print_uris(plain, args, nobody=nobody)
            assert ours == theirs, (args, nobody)
            assert ours.count("'http") >= 1, (args, ours)


@pytest.mark.parametrize("form", [["-s"], ["--dry-run"], ["--just-print"], ["-qsy"],
                                  ["-o", "APT::Get::Simulate=true"], ["-oAPT::Get::Simulate=1"],
                                  ["conf"]])
def test_simulation_leaves_archives_untouched(lab, form) -> None:
    first_install(lab)
    lab.reprovision()
    if form == ["conf"]:
        (lab.sb.parts / "99simulate").write_text('APT::Get::Simulate "true";\n')
        form = []
    res = lab.sb.apt(*form, "install", "alpha", check=True)
    assert "Inst alpha" in res.stdout
    assert pkgcache_said(res) == []
    assert lab.sb.debs_in_archives() == []
    assert lab.sb.installed("alpha") is None


@pytest.mark.parametrize("form", [["--no-download"], ["-o", "APT::Get::Download=false"]])
def test_a_run_that_downloads_nothing_gets_no_deb_placed(lab, form) -> None:
    """--no-download: plain apt cannot fetch alpha and fails; with pkgcache too (a placed deb
    would let it install what it would not fetch)."""
    first_install(lab)
    lab.reprovision()
    res = lab.sb.apt(*form, "-y", "install", "alpha")
    assert res.returncode == 100 and "Unable to fetch some archives" in res.stderr, res.stderr
    assert pkgcache_said(res) == []
    assert lab.sb.debs_in_archives() == []
    assert lab.sb.installed("alpha") is None


def test_a_hook_that_cannot_find_its_apt_places_nothing(lab) -> None:
    """No apt/apt-get among the pre-install hook's parents (a chroot without /proc): it cannot
    tell what apt will fetch, so it places nothing (before: every cached candidate)."""
    first_install(lab)
    lab.reprovision()
    res = lab.sb.pkgcache("apt", "hook", "pre-install")
    assert res.returncode == 0 and res.stdout == res.stderr == "", res
    assert lab.sb.debs_in_archives() == []


def test_hook_with_a_cache_owned_by_another_user_is_silent(lab, tmp_path) -> None:
    first_install(lab)
    lab.reprovision()
    os.chown(lab.cache_dir, 65534, 65534)  # a cache root may not use (it refuses it)
    res = lab.sb.apt("install", "alpha", check=True)
    assert pkgcache_said(res) == []
    assert lab.sb.installed("alpha") == "1.0-1"
    explicit = lab.sb.pkgcache("apt", "seed", "alpha")  # an explicit command says why, once
    assert explicit.returncode == 4
    assert explicit.stderr.count("\n") == 1 and "owned by uid 65534" in explicit.stderr


# -- 2. the seed follows apt's own request ---------------------------------------------------------
def two_versions(lab) -> None:
    """jq/libjq1 1.0 installed once (so cached), then 1.1 published beside 1.0 and purged."""
    for v in ("1.0",):
        lab.repo.debs["jq"] = build_deb(lab.repo.path, "jq", v, depends=f"libjq1 (= {v})")
        lab.repo.debs["libjq1"] = build_deb(lab.repo.path, "libjq1", v, arch="amd64")
    lab.republish()
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "jq", check=True)
    assert {e.key for e in lab.cache().keys("deb:")} == {"deb:jq_1.0_all.deb",
                                                         "deb:libjq1_1.0_amd64.deb"}
    build_deb(lab.repo.path, "jq", "1.1", depends="libjq1 (= 1.1)")
    build_deb(lab.repo.path, "libjq1", "1.1", arch="amd64")
    lab.republish()
    lab.sb.apt("update", check=True)
    lab.reprovision("jq", "libjq1")


def test_exact_versions_are_served(lab) -> None:
    two_versions(lab)
    res = lab.sb.apt("install", "jq=1.0", "libjq1=1.0", check=True)
    assert pkgcache_said(res) == []
    assert "Need to get 0 B" in res.stdout, res.stdout
    assert lab.server.deb_requests() == []
    assert lab.sb.installed("jq") == "1.0" and lab.sb.installed("libjq1") == "1.0"


@pytest.mark.parametrize("order", [["jq=1.0", "libjq1=1.0"], ["libjq1=1.0", "jq=1.0"]])
def test_explicit_seed_of_exact_versions_is_order_independent(lab, order) -> None:
    two_versions(lab)
    (lab.sb.parts / "05pkgcache").unlink()  # only the explicit step seeds
    res = lab.sb.pkgcache("apt", "seed", *order)
    assert res.returncode == 0, res.stderr
    assert "seeded 2 .deb(s)" in res.stdout and "0 not cached" in res.stdout, res.stdout
    res = lab.sb.apt("install", *order, check=True)
    assert "Need to get 0 B" in res.stdout, res.stdout
    assert lab.server.deb_requests() == []


def test_explicit_seed_reports_what_is_not_cached_and_unknown(lab) -> None:
    first_install(lab)
    lab.reprovision()
    res = lab.sb.pkgcache("apt", "seed", "alpha", "gamma")
    assert res.returncode == 0, res.stderr
    assert "seeded 2 .deb(s)" in res.stdout and "1 not cached" in res.stdout, res.stdout
    res = lab.sb.pkgcache("apt", "seed", "alpha=9.9")
    assert res.returncode == 1
    assert res.stderr.strip() == "pkgcache: apt: Version '9.9' for 'alpha' was not found"


def backports(lab) -> None:
    """A second suite `backports` (pinned to 100, like Debian's) with gamma 0.9."""
    bpo = lab.repo.path / "bpo"
    bpo.mkdir()
    build_deb(bpo, "gamma", "0.9", size=5000)
    run = lambda *a: subprocess.run(a, cwd=bpo, check=True, capture_output=True).stdout  # noqa: E731
    (bpo / "Packages").write_bytes(run("apt-ftparchive", "packages", "."))
    (bpo / "Release").write_bytes(run("apt-ftparchive", "-o",
                                      "APT::FTPArchive::Release::Suite=backports",
                                      "-o", "APT::FTPArchive::Release::Codename=bpo",
                                      "release", "."))
    with open(lab.sb.root / "etc/apt/sources.list", "a") as f:
        f.write(f"deb [trusted=yes] {lab.server.base}bpo ./\n")
    (lab.sb.root / "etc/apt/preferences.d/bpo").write_text(
        "Package: *\nPin: release a=backports\nPin-Priority: 100\n")


@pytest.mark.parametrize("form", [["-t", "backports", "gamma"], ["gamma/backports"]])
def test_target_release_is_served(lab, form) -> None:
    backports(lab)
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", *form, check=True)
    assert lab.sb.installed("gamma") == "0.9"
    lab.reprovision("gamma")
    res = lab.sb.apt("install", *form, check=True)
    assert "Need to get 0 B" in res.stdout, res.stdout
    assert lab.server.deb_requests() == []
    assert lab.sb.installed("gamma") == "0.9"


def test_request_replay_runs_no_install_hooks_twice(lab) -> None:
    first_install(lab)
    lab.reprovision()
    log = lab.sb.base / "other-hook.log"
    (lab.sb.parts / "60other").write_text(
        f'APT::Install::Pre-Invoke {{ "echo ran >> {log}"; }};\n')
    res = lab.sb.apt("install", "alpha", check=True)
    assert "Need to get 0 B" in res.stdout
    assert lab.status()["last_seed"]["followed_request"] is True
    assert log.read_text() == "ran\n"  # once: apt's own run, not the --print-uris replay


def test_reinstall_is_served(lab) -> None:
    first_install(lab)
    lab.sb.apt("clean", check=True)
    res = lab.sb.apt("install", "--reinstall", "alpha", "beta", check=True)
    assert "Need to get 0 B" in res.stdout, res.stdout
    assert lab.server.deb_requests() == []


def test_local_deb_on_another_filesystem_copies_only_its_dependencies(lab, mounts) -> None:
    mnt = mounts.tmpfs("cachefs", opts="")
    lab.cache_dir = lab.sb.cache_dir = mnt / "pkgcache"
    lab.sb.write_pkgcache_wrapper()
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", "gamma", check=True)
    assert len(lab.cache().keys("deb:")) == 3
    lab.reprovision("alpha", "beta", "gamma")
    local = build_deb(lab.sb.base, "delta", "1.0", depends="beta")  # in no repository
    res = lab.sb.apt("install", "./" + local.name, check=True, cwd=str(lab.sb.base))
    assert lab.server.deb_requests() == []
    assert lab.sb.installed("delta") == "1.0" and lab.sb.installed("beta") == "2:1.0-1"
    assert lab.sb.debs_in_archives() == [BETA], res.stdout  # alpha, gamma: not needed here


def test_archives_dir_given_with_o_on_the_command_line_is_served(lab) -> None:
    first_install(lab)
    lab.reprovision()
    custom = lab.sb.root / "custom-archives"
    (custom / "partial").mkdir(parents=True)
    res = lab.sb.apt("-o", f"Dir::Cache::archives={custom}/", "install", "alpha", check=True)
    assert "Need to get 0 B" in res.stdout, res.stdout
    assert lab.server.deb_requests() == []
    assert lab.sb.debs_in_archives() == []


# -- 3. a stale deb is never left for apt ----------------------------------------------------------
def test_same_version_rebuild_after_a_seed_installs_the_index_bytes(lab) -> None:
    first_install(lab)
    lab.reprovision()
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "--download-only", "alpha", check=True)  # the seed places them
    assert lab.sb.debs_in_archives() == [ALPHA, BETA]
    assert lab.server.deb_requests() == []
    old = sha(lab.repo.debs["alpha"])
    new_deb = lab.repo.add("alpha", "1.0-1", depends="beta", seed=1)  # same size, new bytes
    assert sha(new_deb) != old
    lab.republish()
    lab.sb.apt("update", check=True)
    lab.server.reset()
    res = lab.sb.apt("install", "alpha", check=True)
    assert lab.server.deb_requests() == ["/./alpha_1.0-1_all.deb"]
    assert installed_payload(lab, "alpha") == payload("alpha", "1.0-1", seed=1)
    assert sha(lab.sb.archives / ALPHA) == sha(new_deb)
    assert pkgcache_said(res) == []


def test_a_stale_deb_named_in_the_install_is_removed_before_apt_uses_it(lab) -> None:
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "gamma", check=True)  # something cached, so the hook has work
    old_alpha = lab.repo.debs["alpha"].read_bytes()
    new_deb = lab.repo.add("alpha", "1.0-1", depends="beta", seed=1)
    assert len(old_alpha) == new_deb.stat().st_size
    lab.republish()
    lab.sb.apt("update", check=True)
    (lab.sb.archives / ALPHA).write_bytes(old_alpha)  # e.g. left by an older download
    lab.server.reset()
    lab.sb.apt("install", "alpha", check=True)
    assert "/./alpha_1.0-1_all.deb" in lab.server.deb_requests()
    assert installed_payload(lab, "alpha") == payload("alpha", "1.0-1", seed=1)


# -- 4. bind-mounted cache: EXDEV at link time ------------------------------------------------------
def test_bind_mounted_cache_costs_no_copies_on_update(lab, mounts) -> None:
    mnt = mounts.bind("cachebind")
    lab.cache_dir = lab.sb.cache_dir = mnt / "pkgcache"
    lab.sb.write_pkgcache_wrapper()
    assert os.stat(mnt).st_dev == os.stat(lab.sb.archives).st_dev  # same fs, another mount
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", "gamma", check=True)
    lab.reprovision("alpha", "beta", "gamma")
    lab.sb.apt("update", check=True)
    assert lab.sb.debs_in_archives() == []
    last = lab.status()["last_seed"]
    assert (last["trigger"], last["placed"], last["planned_only"]) == ("post-update", 0, 3)
    res = lab.sb.apt("install", "gamma", check=True)
    assert "Need to get 0 B" in res.stdout
    assert lab.sb.debs_in_archives() == ["gamma_0.5_all.deb"]  # one copy, for this install
    assert pkgcache_said(res) == []


# -- 5. `apt enable` names the running executable; `apt status` checks it --------------------------
@pytest.mark.slow
def test_apt_enable_from_a_pip_install_gives_working_hooks(lab, tmp_path) -> None:
    exe = pip_installed(tmp_path)
    venv = exe.parent.parent
    (lab.sb.parts / "05pkgcache").unlink()
    cfg = lab.sb.base / "pkgcache.yaml"
    cfg.write_text(f"performance:\n  cache:\n    enabled: true\n    directory: {lab.cache_dir}\n")
    env = lab.sb.env()
    res = subprocess.run([str(exe), "apt", "enable", "--method-dir", str(tmp_path / "methods")],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert f"[ -x {exe} ] && {exe} apt hook harvest" in (lab.sb.parts / "05pkgcache").read_text()
    st = json.loads(subprocess.run([str(exe), "apt", "status", "--json"], env=env,
                                   capture_output=True, text=True).stdout)
    assert (st["active"], st["command"], st["command_ok"]) == (True, str(exe), True)
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)
    assert len(lab.cache().keys("deb:")) == 2  # the hooks ran
    exe.chmod(0o644)  # the snippet's command is no longer executable: status says so
    out = subprocess.run([str(venv / "bin/python"), "-m", "hooks.cli", "apt", "status"], env=env,
                         capture_output=True, text=True, cwd=tmp_path).stdout
    assert "hooks        NOT active" in out and "not executable" in out, out


def test_apt_enable_refuses_without_a_stable_executable(lab) -> None:
    (lab.sb.parts / "05pkgcache").unlink()
    res = run_cli("apt", "enable", base=lab.sb.env(), cwd=REPO)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "--command" in res.stderr
    assert not (lab.sb.parts / "05pkgcache").exists()


def test_status_checks_the_snippet_command(lab) -> None:
    assert lab.status()["active"] is True
    lab.sb.pkgcache_bin.rename(lab.sb.pkgcache_bin.with_name("pkgcache.moved"))
    res = subprocess.run([str(lab.sb.pkgcache_bin.with_name("pkgcache.moved")), "apt", "status",
                          "--json"], env=lab.sb.env(), capture_output=True, text=True)
    st = json.loads(res.stdout)
    assert (st["active"], st["command_ok"]) == (False, False)
    assert st["hooks"] == {k: True for k in st["hooks"]}
