"""End-to-end: the real apt-get/apt/dpkg against a local repo on 127.0.0.1, with the shipped
apt.conf.d snippet active in a sandbox root."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.support.apt import Sandbox

ALPHA = "alpha_1.0-1_all.deb"
BETA = "beta_2%3a1.0-1_amd64.deb"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pkgcache_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "pkgcache" in ln]


def assert_quiet(res) -> None:
    assert pkgcache_lines(res.stderr) == [], res.stderr
    assert "pkgcache" not in res.stdout, res.stdout


def first_install(lab) -> None:
    lab.sb.apt("update", check=True)
    res = lab.sb.apt("install", "alpha", check=True)
    assert_quiet(res)
    assert sorted(lab.server.deb_requests()) == ["/./alpha_1.0-1_all.deb", "/./beta_1.0-1_amd64.deb"]
    lab.server.reset()


def test_first_install_harvests_by_apt_archive_name(lab) -> None:
    first_install(lab)
    cache = lab.cache()
    keys = {e.key: e for e in cache.keys("deb:")}
    assert set(keys) == {"deb:" + ALPHA, "deb:" + BETA}
    # stored content is exactly what apt downloaded and verified
    assert keys["deb:" + ALPHA].digest == sha(lab.repo.debs["alpha"])
    assert keys["deb:" + BETA].digest == sha(lab.repo.debs["beta"])
    st = lab.status()
    assert st["active"] is True
    assert st["last_harvest"]["stored"] == 2
    assert st["cached_debs"] == 2


def test_second_install_after_clean_downloads_nothing(lab) -> None:
    first_install(lab)
    lab.reprovision()
    res = lab.sb.apt("install", "alpha", check=True)
    assert_quiet(res)
    assert lab.server.deb_requests() == []
    assert "Need to get 0 B" in res.stdout
    assert lab.sb.installed("alpha") == "1.0-1" and lab.sb.installed("beta") == "2:1.0-1"
    st = lab.status()
    assert st["last_seed"]["placed"] == 2
    assert (st["last_harvest"]["already"], st["last_harvest"]["stored"]) == (2, 0)


def test_docker_clean_wipe_on_update_then_zero_downloads(lab) -> None:
    lab.sb.install_docker_clean()
    first_install(lab)
    assert lab.sb.debs_in_archives() == []  # docker-clean wiped them after dpkg ...
    assert len(lab.cache().keys("deb:")) == 2  # ... but Pre-Install-Pkgs saw them first
    lab.sb.apt("purge", "alpha", "beta", check=True)
    res = lab.sb.apt("update", check=True)  # seeds, then docker-clean's Update::Post-Invoke wipes
    assert_quiet(res)
    assert lab.sb.debs_in_archives() == []
    lab.server.reset()
    res = lab.sb.apt("install", "alpha", check=True)
    assert_quiet(res)
    assert lab.server.deb_requests() == []
    assert "Need to get 0 B" in res.stdout
    assert lab.sb.installed("alpha") == "1.0-1"


def test_apt_binary_deletes_its_downloads_but_harvest_saw_them(lab) -> None:
    lab.sb.apt("update", check=True)
    res = lab.sb.apt("install", "-y", "alpha", binary="apt", check=True)
    assert pkgcache_lines(res.stderr) == []
    assert lab.sb.debs_in_archives() == []  # `apt` removed the debs it downloaded
    assert len(lab.cache().keys("deb:")) == 2
    lab.sb.apt("purge", "-y", "alpha", "beta", binary="apt", check=True)
    lab.server.reset()
    res = lab.sb.apt("install", "-y", "alpha", binary="apt", check=True)
    assert lab.server.deb_requests() == []
    assert "Need to get 0 B" in res.stdout


def test_repo_rebuilt_same_size_different_bytes_is_never_seeded(lab) -> None:
    first_install(lab)
    old = sha(lab.repo.debs["alpha"])
    size = lab.repo.debs["alpha"].stat().st_size
    new_deb = lab.repo.add("alpha", "1.0-1", depends="beta", seed=1)  # same version, new bytes
    assert new_deb.stat().st_size == size and sha(new_deb) != old
    lab.republish()
    lab.sb.apt("update", check=True)
    lab.reprovision()
    res = lab.sb.apt("install", "alpha", check=True)
    assert lab.server.deb_requests() == ["/./alpha_1.0-1_all.deb"]  # only the changed one
    assert sha(lab.sb.archives / ALPHA) == sha(new_deb)
    assert lab.sb.installed("alpha") == "1.0-1"
    assert lab.status()["last_seed"]["rejected"] == 1
    assert "Need to get 0 B" not in res.stdout


def test_corrupted_cached_object_same_size_is_never_seeded(lab) -> None:
    first_install(lab)
    lab.reprovision()
    entry = lab.cache().lookup("deb:" + ALPHA)
    obj = lab.cache().object_path(entry.digest)
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(obj, 0o644)
    obj.write_bytes(bytes(data))  # same size, wrong bytes
    res = lab.sb.apt("install", "alpha", check=True)
    assert lab.server.deb_requests() == ["/./alpha_1.0-1_all.deb"]
    assert sha(lab.sb.archives / ALPHA) == sha(lab.repo.debs["alpha"])
    assert lab.sb.installed("alpha") == "1.0-1"
    assert len(pkgcache_lines(res.stderr)) <= 1


def test_cache_on_another_filesystem_works_by_copy(lab, mounts) -> None:
    mnt = mounts.tmpfs("cachefs", opts="")
    cache_dir = mnt / "pkgcache"
    lab.cache_dir = cache_dir
    lab.sb.cache_dir = cache_dir
    lab.sb.write_pkgcache_wrapper()
    assert os.stat(mnt).st_dev != os.stat(lab.sb.archives).st_dev
    first_install(lab)
    entry = lab.cache().lookup("deb:" + ALPHA)
    assert entry is not None
    assert os.stat(lab.cache().object_path(entry.digest)).st_dev == os.stat(mnt).st_dev
    lab.sb.apt("install", "gamma", check=True)
    lab.sb.apt("purge", "gamma", check=True)
    lab.reprovision()
    # after `update` (which docker-clean may follow with a wipe) copies are not made, only planned
    lab.sb.apt("update", check=True)
    assert lab.sb.debs_in_archives() == []
    last = lab.status()["last_seed"]
    assert (last["trigger"], last["planned_only"], last["placed"]) == ("post-update", 3, 0)
    # every seed is a copy here, so `install NAMES` copies only what NAMES need
    res = lab.sb.apt("install", "gamma", check=True)
    assert_quiet(res)
    assert lab.server.deb_requests() == []
    assert lab.sb.debs_in_archives() == ["gamma_0.5_all.deb"]
    res = lab.sb.apt("install", "alpha", check=True)
    assert_quiet(res)
    assert lab.server.deb_requests() == []
    assert "Need to get 0 B" in res.stdout
    assert os.stat(lab.sb.archives / ALPHA).st_nlink == 1  # a copy, not a link


def test_same_filesystem_harvest_hardlinks(lab) -> None:
    first_install(lab)
    st = os.stat(lab.sb.archives / ALPHA)
    entry = lab.cache().lookup("deb:" + ALPHA)
    assert os.stat(lab.cache().object_path(entry.digest)).st_ino == st.st_ino


def test_seed_plan_is_memoised_while_indexes_are_unchanged(lab) -> None:
    first_install(lab)
    lab.reprovision()
    res = lab.sb.apt("install", "alpha", check=True)  # the pre-install hook follows apt's request
    assert "Need to get 0 B" in res.stdout
    last = lab.status()["last_seed"]
    assert (last["followed_request"], last["opened_index"], last["placed"]) == (True, False, 2)
    lab.reprovision()
    lab.sb.apt("update", check=True)  # the general plan after update: index opened once ...
    last = lab.status()["last_seed"]
    assert (last["trigger"], last["planned_only"], last["opened_index"]) == \
        ("post-update", 2, True)
    lab.reprovision()
    lab.sb.apt("update", check=True)  # nothing the hook reads changed: it ends at once
    assert lab.status()["last_seed"] == last  # (hooks/apt/updatememo.py)
    (lab.sb.root / "var/lib/pkgcache/apt-post-update.memo").unlink()  # e.g. an hour later
    lab.sb.apt("update", check=True)  # ... and the plan is memoised while the indexes are unchanged
    last = lab.status()["last_seed"]
    assert (last["trigger"], last["planned_only"], last["opened_index"]) == \
        ("post-update", 2, False)
    assert last["placed"] == 0 and lab.sb.debs_in_archives() == []  # update places nothing
    # a changed index invalidates the plan
    lab.repo.add("gamma", "0.6", size=5000)
    lab.republish()
    lab.reprovision()
    lab.sb.apt("update", check=True)
    assert lab.status()["last_seed"]["opened_index"] is True
    res = lab.sb.apt("install", "alpha", check=True)
    assert lab.server.deb_requests() == []


def test_config_section_with_credentials_is_never_stored_or_printed(lab) -> None:
    secret = "s3cr3t-pkgcache-token"
    conf = lab.sb.parts / "01proxy-secret"
    conf.write_text(f'Acquire::https::Proxy "http://user:{secret}@127.0.0.1:9/";\n')
    lab.sb.apt("update", check=True)
    res = lab.sb.apt("install", "alpha", check=True)
    assert secret not in res.stdout + res.stderr
    assert len(lab.cache().keys("deb:")) == 2
    for root, _dirs, files in os.walk(lab.cache_dir):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                assert secret.encode() not in p.read_bytes(), p


def test_python_apt_commit_is_harvested(lab) -> None:
    import subprocess

    from tests.support import PY

    lab.sb.apt("update", check=True)
    script = ("import apt\nc = apt.Cache()\nc['gamma'].mark_install()\n"
              "c.commit()\n")
    res = subprocess.run([PY, "-c", script], env=lab.sb.env(), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert lab.sb.installed("gamma") == "0.5"
    assert [e.key for e in lab.cache().keys("deb:")] == ["deb:gamma_0.5_all.deb"]


def test_removed_but_not_purged_pkgcache_keeps_apt_working(lab) -> None:
    lab.sb.pkgcache_bin.unlink()  # the snippet (a conffile) stays, the binary is gone
    lab.sb.apt("update", check=True)
    res = lab.sb.apt("install", "alpha", check=True)
    assert lab.sb.installed("alpha") == "1.0-1"
    assert res.stderr.strip() == ""
    assert "pkgcache" not in res.stdout


def test_many_packages_one_process_and_all_harvested(lab) -> None:
    names = [f"bulk{i}" for i in range(40)]
    for n in names:
        lab.repo.add(n, "1.0", size=300)
    lab.republish()
    # count hook processes: wrap the command
    log = lab.sb.base / "calls.log"
    wrapper = lab.sb.pkgcache_bin.read_text().split("\n", 1)[1]
    lab.sb.write_pkgcache_wrapper(f'echo "$*" >> "{log}"\n' + wrapper)
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", *names, check=True)
    calls = log.read_text().splitlines()
    assert calls.count("apt hook harvest") == 1
    assert len(lab.cache().keys("deb:bulk")) == 40


def test_seed_from_inside_an_apt_hook_does_not_deadlock(lab) -> None:
    first_install(lab)
    lab.reprovision()
    # apt holds archives/lock while DPkg::Pre-Invoke runs; a seed there must not wait for it.
    (lab.sb.parts / "50seed-in-hook").write_text(
        f'DPkg::Pre-Invoke {{ "{lab.sb.pkgcache_bin} -q apt seed --lock-timeout 600 '
        f'|| echo SEED-FAILED"; }};\n')
    (lab.sb.parts / "05pkgcache").unlink()
    res = lab.sb.apt("install", "gamma", check=True)
    assert "SEED-FAILED" not in res.stdout + res.stderr
    assert lab.server.deb_requests() == ["/./gamma_0.5_all.deb"]
    assert {ALPHA, BETA} <= set(lab.sb.debs_in_archives())  # the in-hook seed placed them
    assert lab.sb.installed("gamma") == "0.5"


def test_sandbox_helper_is_isolated_from_host_apt(lab: object) -> None:
    sb: Sandbox = lab.sb  # type: ignore[attr-defined]
    out = sb.apt("-qq", "list", "--installed", binary="apt").stdout
    assert out.strip() == ""  # nothing from the host's dpkg status


@pytest.mark.parametrize("specs", [["alpha"], []])
def test_explicit_seed_then_plain_apt_without_hooks(lab, specs) -> None:
    first_install(lab)
    lab.reprovision()
    (lab.sb.parts / "05pkgcache").unlink()  # hooks off: only the explicit step seeds
    res = lab.sb.pkgcache("apt", "seed", *specs)
    assert res.returncode == 0, res.stderr
    assert "seeded 2 .deb(s)" in res.stdout
    assert lab.sb.debs_in_archives() == [ALPHA, BETA]
    assert not any((lab.sb.archives / "partial").iterdir())
    res = lab.sb.apt("install", "alpha", check=True)
    assert lab.server.deb_requests() == []
    assert "Need to get 0 B" in res.stdout


def test_seed_unknown_package_exit_1(lab) -> None:
    lab.sb.apt("update", check=True)
    res = lab.sb.pkgcache("apt", "seed", "no-such-package")
    assert res.returncode == 1
    assert "no-such-package" in res.stderr


def test_seed_honours_dir_cache_archives(lab) -> None:
    first_install(lab)
    lab.reprovision()
    custom = lab.sb.root / "custom-archives"
    (custom / "partial").mkdir(parents=True)
    with open(lab.sb.apt_config, "a") as f:
        f.write(f'Dir::Cache::archives "{custom}/";\n')
    res = lab.sb.pkgcache("apt", "seed", "alpha")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in custom.glob("*.deb")) == [ALPHA, BETA]
    assert lab.sb.debs_in_archives() == []
    res = lab.sb.apt("install", "alpha", check=True)
    assert lab.server.deb_requests() == []


def test_seed_replaces_a_planted_symlink_without_following_it(lab, tmp_path) -> None:
    first_install(lab)
    lab.reprovision()
    victim = tmp_path / "victim"
    victim.write_bytes(b"x" * 10)
    (lab.sb.archives / ALPHA).symlink_to(victim)
    res = lab.sb.pkgcache("apt", "seed", "alpha")
    assert res.returncode == 0, res.stderr
    assert victim.read_bytes() == b"x" * 10
    assert not (lab.sb.archives / ALPHA).is_symlink()
    assert sha(lab.sb.archives / ALPHA) == sha(lab.repo.debs["alpha"])


def test_pre_install_hook_seeds_nothing_for_remove_and_only_upgrades_for_upgrade(lab) -> None:
    first_install(lab)
    lab.sb.apt("install", "gamma", check=True)
    lab.reprovision()  # purge alpha beta, clean: alpha and beta are cached, not installed
    lab.sb.apt("remove", "gamma", check=True)
    assert lab.sb.debs_in_archives() == []  # a remove needs no debs: nothing seeded
    lab.sb.apt("install", "gamma", check=True)
    lab.sb.apt("clean", check=True)
    lab.sb.apt("upgrade", check=True)
    assert lab.sb.debs_in_archives() == []  # alpha/beta are not installed: not upgrades
    lab.repo.add("gamma", "0.6", size=5000)
    lab.republish()
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "--download-only", "gamma", check=True)  # puts 0.6 into archives
    lab.sb.pkgcache("apt", "hook", "sweep")  # and into the cache
    lab.sb.apt("clean", check=True)
    lab.server.reset()
    res = lab.sb.apt("upgrade", check=True)
    assert lab.server.deb_requests() == []
    assert "Need to get 0 B" in res.stdout
    assert lab.sb.installed("gamma") == "0.6"
    assert lab.sb.debs_in_archives() == ["gamma_0.6_all.deb"]
