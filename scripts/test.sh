#!/bin/sh
# The test command: on a fresh Debian 12 machine as root, installs what the tests need
# (apt packages, a venv on /usr/bin/python3 with the system's python3-apt) and runs pytest.
# Extra arguments go to pytest, e.g.  ./scripts/test.sh tests/core -m "not network"
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: run as root (the tests drive real apt-get, dpkg and chroots)" >&2
    exit 2
fi
APT_PKGS="python3 python3-venv python3-apt python3-yaml python3-packaging python3-pip
          dpkg-dev apt-utils git ca-certificates"
EXTRA_APT=$(sed -e 's/#.*//' tests/requirements-apt.txt 2>/dev/null | tr -s ' \n' ' ' || true)
missing=""
for p in $APT_PKGS $EXTRA_APT; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "scripts/test.sh: installing:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import apt_pkg' 2>/dev/null; then
    rm -rf .venv
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check \
    pytest pytest-timeout hypothesis ruff $(sed -e 's/#.*//' tests/requirements-test.txt 2>/dev/null || true)
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
lint=0
.venv/bin/ruff check --quiet cache_core hooks tests bench || lint=$?
rc=0
.venv/bin/python -m pytest -p no:cacheprovider "$@" || rc=$?
if [ "$lint" != 0 ]; then
    echo "scripts/test.sh: ruff found problems (above)" >&2
    [ "$rc" != 0 ] || rc=1
fi
exit "$rc"
