#!/bin/sh
# The main job in one command (make demo). On a Debian 12 host, as root:
#   1. installs the build tooling and mmdebstrap on the host (nothing else on the host changes),
#   2. builds the pkgcache .deb from this checkout,
#   3. builds a throwaway Debian 12 root with mmdebstrap from the Debian archive,
#   4. installs the .deb into it,
#   5. provisions a real package set (apt-get install) and a real requirements set
#      (pkgcache pip install into a venv),
#   6. wipes the usual caches (apt-get clean, packages purged, a fresh venv, pip's cache),
#   7. provisions again, and prints a before/after table.
#
# Environment knobs:
#   DEMO_DIR      work directory (default /var/tmp/pkgcache-demo; the root is rebuilt each run)
#   DEMO_APT      package set   (default: nginx postgresql-15 git curl; 42 debs with --no-install-recommends, ~77 MB)
#   DEMO_PIP      requirements  (default: requests PyYAML numpy rich Jinja2 click, pinned)
#   DEMO_FRESH=1  rebuild the base root tarball even if a recent one exists
#   DEMO_KEEP=1   keep the root (DEMO_DIR/root) afterwards for inspection
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=${DEMO_DIR:-/var/tmp/pkgcache-demo}
DEMO_APT=${DEMO_APT:-"nginx postgresql-15 git curl"}
DEMO_PIP=${DEMO_PIP:-"requests==2.34.2 PyYAML==6.0.3 numpy==2.4.6 rich==15.0.0 Jinja2==3.1.6 click==8.5.1"}
BASE_PKGS="python3,python3-venv,python3-apt,python3-yaml,python3-packaging,ca-certificates"
ROOT=$DEMO_DIR/root
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it builds a chroot with mmdebstrap and runs apt-get in it)"
command -v apt-get >/dev/null 2>&1 || die "needs a Debian host (apt-get not found)"
if ! grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
	echo "demo: warning: written for Debian 12 (bookworm); trying anyway" >&2
fi
mkdir -p "$DEMO_DIR"
chmod 0700 "$DEMO_DIR"

# --- 1. host tooling --------------------------------------------------------------------
if ! command -v mmdebstrap >/dev/null 2>&1; then
	say "installing mmdebstrap on the host"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >/dev/null
fi

# --- 2. the .deb ----------------------------------------------------------------------------
say "building the .deb (scripts/build-deb.sh)"
DEB=$(sh "$REPO/scripts/build-deb.sh" "$DEMO_DIR/build" | tail -n 1)
echo "built $DEB"

# --- 3. a throwaway Debian 12 root ----------------------------------------------------------
BASE=$DEMO_DIR/bookworm-base.tar
if [ "${DEMO_FRESH:-0}" = 1 ] || [ -z "$(find "$BASE" -mmin -1440 2>/dev/null)" ]; then
	say "mmdebstrap: building a minimal Debian 12 root from the Debian archive"
	t0=$(date +%s)
	rm -rf "$DEMO_DIR/base-tmp.tar"
	mmdebstrap --quiet --mode=root --variant=apt --include="$BASE_PKGS" bookworm "$DEMO_DIR/base-tmp.tar"
	mv "$DEMO_DIR/base-tmp.tar" "$BASE"
	echo "base root built in $(( $(date +%s) - t0 )) s"
else
	say "reusing the base root tarball from the last 24 h ($BASE; DEMO_FRESH=1 rebuilds it)"
fi
rm -rf "$ROOT"
mkdir -m 0755 "$ROOT"
tar -C "$ROOT" -xf "$BASE"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# The root shares the host's network: never let a postinst start nginx/postgres in it.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"

# Run a shell script inside the root. /proc and /dev/pts are mounted in a private mount
# namespace that dies with the command: nothing stays mounted on the host.
# $PROXY (host:port), when set, becomes http_proxy/https_proxy inside.
inroot() {
	unshare --mount --pid --fork --mount-proc="$ROOT/proc" /bin/sh -c '
		mount -t devpts -o newinstance,ptmxmode=0666 devpts "$0/dev/pts" 2>/dev/null || true
		exec chroot "$0" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
			${2:+http_proxy=http://$2 https_proxy=http://$2} /bin/sh -ec "$1"' "$ROOT" "$1" "${PROXY:-}"
}

# Trust the same extra CAs as the host (a site or proxy CA); a no-op on a stock host.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
	cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
	inroot "update-ca-certificates >/dev/null 2>&1"
fi

# --- 4. install the .deb ----------------------------------------------------------------------
say "installing $(basename "$DEB") into the root"
cp "$DEB" "$ROOT/tmp/"
inroot "apt-get update -q >/dev/null && apt-get install -y -q /tmp/$(basename "$DEB") >/dev/null && rm /tmp/*.deb"
inroot "pkgcache --version; pkgcache apt status"
echo "$DEMO_PIP" | tr ' ' '\n' >"$ROOT/root/requirements.txt"

PIP_READY=1
if ! inroot "pkgcache pip install --help >/dev/null 2>&1"; then
	PIP_READY=0
	echo "demo: 'pkgcache pip install' is not available in this build: the pip rows are skipped" >&2
fi

# --- helpers for measuring ------------------------------------------------------------------
now() { date +%s.%N; }
stat_field() { # a field of `pkgcache stats --json` inside the root
	inroot "pkgcache stats --json" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}
human() { # bytes -> short human form
	awk -v b="$1" 'BEGIN { split("B kB MB GB", u, " "); i = 1
		while (b >= 1000 && i < 4) { b /= 1000; i++ }
		printf (i == 1 ? "%d %s" : "%.1f %s"), b, u[i] }'
}
ppid=""
trap '[ -z "$ppid" ] || kill "$ppid" 2>/dev/null || true' EXIT
ROWS=$DEMO_DIR/rows.txt
: >"$ROWS"

# measure ROUND STEP SCRIPT: run SCRIPT in the root through a byte-counting proxy on 127.0.0.1
# (scripts/countproxy.py) and append one table row.
measure() {
	rm -f "$DEMO_DIR/proxy.port" "$DEMO_DIR/proxy.count"
	python3 "$REPO/scripts/countproxy.py" --port-file "$DEMO_DIR/proxy.port" \
		--count-file "$DEMO_DIR/proxy.count" &
	ppid=$!
	i=0
	while [ ! -s "$DEMO_DIR/proxy.port" ]; do
		i=$((i + 1)); [ "$i" -lt 100 ] || die "the counting proxy did not start"; sleep 0.1
	done
	h0=$(stat_field hits); s0=$(stat_field bytes_served); t0=$(now)
	if ! PROXY=127.0.0.1:$(cat "$DEMO_DIR/proxy.port") inroot "$3" >"$DEMO_DIR/$1-$2.log" 2>&1; then
		kill "$ppid" 2>/dev/null || true
		tail -n 30 "$DEMO_DIR/$1-$2.log" >&2
		die "$2 failed in round $1 (log: $DEMO_DIR/$1-$2.log)"
	fi
	t1=$(now)
	kill "$ppid"; wait "$ppid" 2>/dev/null || true
	ppid=""
	got=$(cat "$DEMO_DIR/proxy.count" 2>/dev/null || echo 0)
	h1=$(stat_field hits); s1=$(stat_field bytes_served)
	need=$(sed -n 's/^Need to get \([^ ]* [^ /]*\).*/\1/p' "$DEMO_DIR/$1-$2.log" | head -n 1)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f s", b - a }')
	printf '%s|%s|%s|%s|%s|%s|%s\n' "$1" "$2" "$secs" "$(human "$got")" \
		"${need:--}" "$((h1 - h0))" "$(human $((s1 - s0)))" >>"$ROWS"
}

APT_STEP="apt-get install -y --no-install-recommends $DEMO_APT"
PIP_STEP="python3 -m venv /opt/app && pkgcache pip install --python /opt/app -r /root/requirements.txt"
# Packages known to dpkg (installed or with config left), to purge back to the base set.
PKGLIST="dpkg-query -W -f='\${db:Status-Abbrev} \${Package}\\n' | awk '\$1 != \"un\" { print \$2 }' | sort"
inroot "$PKGLIST >/root/base-packages"
WIPE="$PKGLIST >/root/now-packages
comm -13 /root/base-packages /root/now-packages | xargs -r apt-get purge -y >/dev/null
apt-get clean; rm -rf /opt/app /root/.cache/pip"

# --- 5. provision, wipe, provision again -----------------------------------------------------
for round in cold warm; do
	say "round '$round': apt-get install $DEMO_APT"
	measure "$round" apt "$APT_STEP"
	if [ "$PIP_READY" = 1 ]; then
		say "round '$round': pkgcache pip install -r requirements.txt ($DEMO_PIP)"
		measure "$round" pip "$PIP_STEP"
		inroot "/opt/app/bin/python -c 'import requests, yaml, numpy, rich, jinja2, click'" \
			|| die "the venv of round $round cannot import the requirements"
	fi
	if [ "$round" = cold ]; then
		say "wiping the usual caches: apt-get purge + apt-get clean, fresh venv, pip cache"
		inroot "$WIPE"
		inroot 'ls /var/cache/apt/archives/*.deb >/dev/null 2>&1 && exit 1 || true'
	fi
done

# --- 6. the table --------------------------------------------------------------------------
say "before/after (cold = empty pkgcache; warm = after apt-get clean and a fresh venv)"
{
	echo "round|step|time|downloaded|apt: need to get|cache hits|served from cache"
	cat "$ROWS"
} | column -t -s '|' 2>/dev/null || { echo "round|step|time|downloaded|apt need|hits|served"; cat "$ROWS"; }
[ "$PIP_READY" = 1 ] || echo "(pip rows skipped: 'pkgcache pip install' is not in this build)"
echo
echo "downloaded = bytes the step received from the network (counted by a proxy on 127.0.0.1);"
echo "cache hits / served = pkgcache's own counters (pkgcache stats). Logs: $DEMO_DIR/*.log"
echo
inroot "pkgcache stats"

# --- 7. verdict -----------------------------------------------------------------------------
warm_need=$(awk -F'|' '$1 == "warm" && $2 == "apt" { print $5 }' "$ROWS")
if [ "${DEMO_KEEP:-0}" != 1 ]; then
	rm -rf "$ROOT"
else
	echo "root kept: $ROOT"
fi
if [ "$warm_need" != "0 B" ]; then
	echo "demo: FAILED: the warm apt-get install still needed $warm_need from the network" >&2
	exit 1
fi
echo
echo "demo: OK: after apt-get clean the second apt-get install needed 0 B from the network"
