#!/bin/sh
# The test command. As root on a fresh Debian 12 machine it installs what the tests need (apt
# packages, a venv on /usr/bin/python3 with the system's python3-apt, the PyPI test tools), then
# runs ruff, mypy and pytest on 4 workers (pytest-xdist). As another user it installs nothing and
# uses the existing .venv (the tests that need root are skipped).
#   ./scripts/test.sh                 the whole suite (up to ~25 min on 2 cores)
#   ./scripts/test.sh --fast          the fast tier only: in-process, no root/network (< 1 min)
#   ./scripts/test.sh tests/core -x   extra arguments go to pytest (-n 0: one process)
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)
say() { echo "scripts/test.sh: $*"; }
fast=0
if [ "${1:-}" = "--fast" ]; then
    fast=1
    shift
fi
. scripts/apt-lock.sh  # apt_get: waits for another apt (first boot) instead of failing at once

if [ "$(id -u)" = 0 ]; then
    APT_PKGS="python3 python3-venv python3-apt python3-yaml python3-packaging python3-pip
              dpkg-dev apt-utils git ca-certificates"
    EXTRA_APT=$(sed -e 's/#.*//' tests/requirements-apt.txt 2>/dev/null | tr -s ' \n' ' ' || true)
    missing=""
    for p in $APT_PKGS $EXTRA_APT; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        say "installing with apt-get (waits for apt's lock):$missing"
        apt_get update -qq
        # shellcheck disable=SC2086
        apt_get install -y -qq --no-install-recommends $missing >/dev/null
    fi
    if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import apt_pkg' 2>/dev/null; then
        say "creating .venv on /usr/bin/python3"
        rm -rf .venv
        /usr/bin/python3 -m venv --system-site-packages .venv
    fi
    # Only what is missing from the venv (pip's resolver alone costs ~10 s per run).
    # shellcheck disable=SC2046
    need=$(.venv/bin/python scripts/pip-missing.py pytest pytest-timeout pytest-xdist hypothesis ruff \
        mypy types-PyYAML $(sed -e 's/#.*//' tests/requirements-test.txt 2>/dev/null || true))
    if [ -n "$need" ]; then
        say "installing into .venv with pip: $need"
        # shellcheck disable=SC2086
        .venv/bin/python -m pip install -q --disable-pip-version-check $need
    fi
    if ! .venv/bin/python scripts/pip-missing.py --editable "$(pwd)" >/dev/null; then
        say "installing this checkout into .venv (pip install -e .)"
        .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
    fi
elif [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pytest' 2>/dev/null; then
    echo "scripts/test.sh: no .venv with pytest here; run ./scripts/test.sh once as root to make it" >&2
    exit 2
else
    say "not root: using the existing .venv, installing nothing; tests that need root are skipped"
fi

# mypy and pytest keep their caches out of the tree when it is not ours to write.
if [ -w . ]; then MYPY_CACHE=.mypy_cache; else MYPY_CACHE=${TMPDIR:-/tmp}/pkgcache-mypy-$(id -u); fi
say "ruff and mypy"
lint=0
.venv/bin/ruff check --quiet --no-cache cache_core hooks tests bench || lint=$?
.venv/bin/python -m mypy --cache-dir "$MYPY_CACHE" || lint=$?

# Parallel unless the caller chose (-n N / -p no:xdist); the tests mostly wait on child processes,
# so 4 workers on 2 cores cut the wall time. Groups keep a module's shared root on one worker.
par=""
if .venv/bin/python -c 'import xdist' 2>/dev/null; then
    case " $* " in
        *" -n "*|*" -n="*|*" --numprocesses"*|*"no:xdist"*|*" --pdb "*) ;;
        *) par="-n ${PKGCACHE_TEST_WORKERS:-4} --dist load" ;;
    esac
fi
rc=0
if [ "$fast" = 1 ]; then
    say "the fast tier (-m fast): under a minute"
    # shellcheck disable=SC2086
    .venv/bin/python -m pytest -p no:cacheprovider -m fast $par "$@" || rc=$?
else
    say "pytest ${par:+($par) }— the whole suite takes up to ~25 min on 2 cores (--fast: < 1 min)"
    # shellcheck disable=SC2086
    .venv/bin/python -m pytest -p no:cacheprovider $par "$@" || rc=$?
fi
if [ "$lint" != 0 ]; then
    echo "scripts/test.sh: ruff or mypy found problems (above)" >&2
    [ "$rc" != 0 ] || rc=1
fi
say "done in $(( $(date +%s) - start )) s (exit $rc)"
exit "$rc"
