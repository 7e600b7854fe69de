"""The scripts a new user runs first (scripts/test.sh, demo.sh, build-deb.sh): they wait for
another apt's lock (first boot runs unattended-upgrades) instead of failing at once."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import REPO

HOST_APT_SCRIPTS = ("scripts/test.sh", "scripts/demo.sh", "scripts/build-deb.sh")


def unquoted(text: str) -> str:
    """The shell text outside quotes and comments (a script's own commands, not the ones it
    passes to a chroot as strings)."""
    out, quote, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t\n"):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


@pytest.mark.parametrize("script", HOST_APT_SCRIPTS)
def test_scripts_run_the_hosts_apt_get_only_through_apt_get_wait(script: str) -> None:
    text = (REPO / script).read_text()
    assert re.search(r"^\s*\. .*scripts/apt-lock\.sh", text, re.M), "does not source apt-lock.sh"
    bare = re.findall(r"\bapt-get\s+(?:-\S+\s+)*(?:update|install|build-dep|upgrade)\b", unquoted(text))
    assert bare == [], f"{script}: apt-get without apt_get (fails at once on a held lock): {bare}"


def _sandbox(tmp_path: Path) -> list[str]:
    """apt-get options for an empty sandbox (own lists dir and lock, no sources, no network)."""
    for d in ("lists/partial", "cache/archives/partial", "parts"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "sources.list").write_text("")
    return ["-o", f"Dir::State::Lists={tmp_path}/lists", "-o", f"Dir::Cache={tmp_path}/cache",
            "-o", f"Dir::Etc::SourceList={tmp_path}/sources.list",
            "-o", f"Dir::Etc::SourceParts={tmp_path}/parts", "-q"]


HOLD = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o640)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\nsys.stdin.read()\n")


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_apt_get_update_waits_for_another_apt_holding_the_lists_lock(tmp_path: Path) -> None:
    """Plain `apt-get -o DPkg::Lock::Timeout=N update` fails at once (exit 100) while another
    apt holds the lists lock; apt_get waits for it and then succeeds."""
    opts = _sandbox(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "lists/lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        plain = subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=30", *opts, "update"],
                               capture_output=True, text=True, timeout=60)
        assert plain.returncode == 100 and "Could not get lock" in plain.stderr
        start = time.monotonic()
        waiting = subprocess.Popen(["sh", "-c", '. scripts/apt-lock.sh && APT_LOCK_WAIT=60 apt_get "$@"',
                                    "sh", *opts, "update"], cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert waiting.poll() is None, waiting.communicate()  # still waiting, not failed
    finally:
        holder.communicate("", timeout=30)  # releases the lock
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert time.monotonic() - start >= 3 and "waiting for another apt" in err
