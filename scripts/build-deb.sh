#!/bin/sh
# Build the pkgcache .deb from a clean copy of this tree into build/.
#   scripts/build-deb.sh [OUTDIR]      (default: build/ in the repo)
# Installs the build dependencies with apt-get when they are missing (root only).
# Prints the path of the built .deb as its last line.
set -eu

# Debian's own python3 and tools only (a pyenv/venv python3 on PATH breaks pybuild).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT 2>/dev/null || true

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/apt-lock.sh"  # apt_get: waits for another apt's lock
OUT=${1:-$REPO/build}
SRC=$OUT/src

need_tools() {
	command -v dpkg-buildpackage >/dev/null 2>&1 || return 0
	(cd "$REPO" && dpkg-checkbuilddeps >/dev/null 2>&1) || return 0
	return 1
}

mkdir -p "$OUT"
if need_tools; then
	if [ "$(id -u)" != 0 ]; then
		echo "build-deb: build dependencies missing; run as root or: apt-get build-dep ./" >&2
		exit 1
	fi
	echo "build-deb: installing build dependencies with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	{ apt_get update -q &&
	  apt_get install -y -q --no-install-recommends dpkg-dev fakeroot &&
	  (cd "$REPO" && apt_get build-dep -y -q ./); } >"$OUT/apt.log" 2>&1 || {
		tail -n 20 "$OUT/apt.log" >&2
		echo "build-deb: installing the build dependencies failed (log: $OUT/apt.log)" >&2
		exit 1
	}
fi

# A clean copy: never leave debian/.debhelper, debian/pkgcache, ... in the work tree.
rm -rf "$SRC"
mkdir -p "$SRC"
if [ -d "$REPO/.git" ] && command -v git >/dev/null 2>&1; then
	(cd "$REPO" && git ls-files -z -c -o --exclude-standard -- . \
		':(exclude)build' ':(exclude).venv' ':(exclude,glob)**/__pycache__/**' \
		| tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$SRC"
else
	(cd "$REPO" && tar --exclude=./build --exclude=./.venv --exclude=./.git \
		--exclude='__pycache__' --exclude='*.pyc' -cf - .) | tar -xf - -C "$SRC"
fi

VERSION=$(cd "$SRC" && dpkg-parsechangelog -S Version)
rm -f "$OUT"/pkgcache_"$VERSION"_*
(cd "$SRC" && dpkg-buildpackage -us -uc -b) >"$OUT/build.log" 2>&1 || {
	tail -n 40 "$OUT/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed (full log: $OUT/build.log)" >&2
	exit 1
}
DEB=$OUT/pkgcache_${VERSION}_all.deb
[ -f "$DEB" ] || { echo "build-deb: $DEB was not produced" >&2; exit 1; }
echo "$DEB"
