#!/bin/sh
# The main job in one command (make demo). On a Debian 12 host, as root:
#   1. installs the build tooling, mmdebstrap and nginx on the host if missing (nothing else on
#      the host changes; nginx's own service is not used),
#   2. builds the pkgcache .deb from this checkout,
#   3. builds a throwaway Debian 12 root with mmdebstrap from the Debian archive,
#   4. installs the .deb into it, configures the fleet's store (a remote, below), and copies the
#      root as server 2 (same image, EMPTY cache),
#   5. starts a small fleet on this machine (bench/lib/netns.py): a store network namespace with
#      nginx WebDAV on a bridge, and one network namespace per server on that bridge with NO
#      default route; the servers reach the Debian archive and PyPI only through a byte-counting
#      relay on a Unix socket in the root namespace (scripts/countproxy.py, scripts/unixfwd.py),
#   6. server 1: provisions a real package set (apt-get install) and a real requirements set
#      (pkgcache pip install into a venv) cold, pushes its cache to the store, wipes the usual
#      caches (apt-get clean, packages purged, a fresh venv, pip's cache), provisions again (warm),
#   7. server 2 (empty cache): provisions the same sets through the fleet,
#   8. prints one before/after table (wall time, bytes from the internet, bytes over the LAN),
#      and removes the namespaces, processes and roots (also after a failure or Ctrl-C).
#
# Environment knobs:
#   DEMO_DIR      work directory (default /var/tmp/pkgcache-demo; the roots are rebuilt each run)
#   DEMO_APT      package set   (default: nginx postgresql-15 git curl; 28 debs with --no-install-recommends, ~67 MB)
#   DEMO_PIP      requirements  (default: a lock of requests PyYAML numpy rich Jinja2 click and every
#                 dependency, as `pip freeze` writes it: a full lock is served with no index request;
#                 a list that leaves dependencies open asks the index for its pages, as plain pip would)
#   DEMO_FRESH=1  rebuild the base root tarball even if a recent one exists
#   DEMO_KEEP=1   keep the roots (DEMO_DIR/root, DEMO_DIR/root2) afterwards for inspection
#   DEMO_RATE     pace the internet relay to this many bytes/s (default 0: as fast as the mirror)
#   DEMO_NETNS    namespace name prefix (default pkgcdemo; namespaces PREFIX-store, PREFIX-s1, -s2)
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/apt-lock.sh"  # apt_get: the host's apt-get, waiting for another apt's lock
DEMO_DIR=${DEMO_DIR:-/var/tmp/pkgcache-demo}
DEMO_APT=${DEMO_APT:-"nginx postgresql-15 git curl"}
DEMO_PIP=${DEMO_PIP:-"requests==2.34.2 PyYAML==6.0.3 numpy==2.4.6 rich==15.0.0 Jinja2==3.1.6 click==8.5.1
  MarkupSafe==3.0.4 certifi==2026.10.19.post1 charset-normalizer==3.5.3 idna==3.20 markdown-it-py==4.3.0
  mdurl==0.1.2 pygments==2.21.0 urllib3==2.8.0"}
BASE_PKGS="python3,python3-venv,python3-apt,python3-yaml,python3-packaging,ca-certificates"
ROOT1=$DEMO_DIR/root
ROOT2=$DEMO_DIR/root2
ROOT=$ROOT1
DEMO_RATE=${DEMO_RATE:-0}
NETNS=${DEMO_NETNS:-pkgcdemo}
LAB="python3 $REPO/bench/lib/netns.py --prefix $NETNS --work $DEMO_DIR"
NS=""
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it builds a chroot with mmdebstrap and runs apt-get in it)"
command -v apt-get >/dev/null 2>&1 || die "needs a Debian host (apt-get not found)"
if ! grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
	echo "demo: warning: written for Debian 12 (bookworm); trying anyway" >&2
fi
command -v ip >/dev/null 2>&1 || die "needs iproute2 (ip netns)"
mkdir -p "$DEMO_DIR"
chmod 0700 "$DEMO_DIR"

# Everything this run starts is stopped on exit, also after a failure or Ctrl-C: the relay (by
# pid), the fleet's namespaces and every process in them (netns.py down), the roots.
relay_pid=""
cleanup() {
	rc=$?
	trap - EXIT INT TERM
	[ -z "$relay_pid" ] || kill "$relay_pid" 2>/dev/null || true
	$LAB down 2>/dev/null || true
	if [ "${DEMO_KEEP:-0}" != 1 ]; then
		rm -rf "$ROOT1" "$ROOT2"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
$LAB down  # a run killed with -9 may have left its namespaces behind

# --- 1. host tooling --------------------------------------------------------------------
need=""
command -v mmdebstrap >/dev/null 2>&1 || need="mmdebstrap"
[ -x /usr/sbin/nginx ] || need="$need nginx-light"
if [ -n "$need" ]; then
	say "installing$(printf ' %s' $need) on the host"
	DEBIAN_FRONTEND=noninteractive apt_get update -q >/dev/null
	# nginx's postinst may start the stock site on port 80 where invoke-rc.d allows it; the demo
	# never uses that daemon (its store runs from its own config inside a namespace).
	DEBIAN_FRONTEND=noninteractive apt_get install -y -q --no-install-recommends $need >/dev/null
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
# $PROXY (host:port), when set, becomes http_proxy/https_proxy inside (the store on the LAN is
# in no_proxy, as on a real network); $NS, when set, is the
# network namespace it runs in; $ROOT is the root.
inroot() {
	${NS:+ip netns exec "$NS"} unshare --mount --pid --fork --mount-proc="$ROOT/proc" /bin/sh -c '
		mount -t devpts -o newinstance,ptmxmode=0666 devpts "$0/dev/pts" 2>/dev/null || true
		exec chroot "$0" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive PKGCACHE_REMOTE_UPLOAD=manual \
			${2:+http_proxy=http://$2 https_proxy=http://$2 no_proxy=10.77.0.1} /bin/sh -ec "$1"' "$ROOT" "$1" "${PROXY:-}"
}

# Trust the same extra CAs as the host (a site or proxy CA); a no-op on a stock host.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
	cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
	inroot "update-ca-certificates >/dev/null 2>&1"
fi

# --- 4. install the .deb; the fleet's configuration; server 2 -----------------------------------
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

# The fleet's store is nginx WebDAV at STORE_URL (inside the store namespace). Server 1 writes
# (mode rw, records signed with the fleet key); server 2 only reads and trusts that key.
STORE_URL=http://10.77.0.1:8080/store
say "fleet configuration: remote $STORE_URL (server 1 rw + signing key, server 2 ro)"
inroot "mkdir -p -m 0700 /etc/pkgcache && rm -f /etc/pkgcache/fleet.key &&
	pkgcache remote keygen demo-fleet --secret-file /etc/pkgcache/fleet.key >/etc/pkgcache/fleet.pub"
PUB=$(cat "$ROOT/etc/pkgcache/fleet.pub")
CONF=etc/vps-configurator/config.yaml
# server 2: the same image, an EMPTY cache and state, no secret key
rm -rf "$ROOT2"
cp -a "$ROOT1" "$ROOT2"
rm -rf "$ROOT2/var/cache/vps-configurator" "$ROOT2/var/lib/pkgcache" "$ROOT2/etc/pkgcache/fleet.key"
printf '    remote:\n      - url: %s\n        mode: rw\n        signing_key_file: /etc/pkgcache/fleet.key\n        trusted_public_keys: ["%s"]\n' \
	"$STORE_URL" "$PUB" >>"$ROOT1/$CONF"
printf '    remote:\n      - url: %s\n        mode: ro\n        trusted_public_keys: ["%s"]\n' \
	"$STORE_URL" "$PUB" >>"$ROOT2/$CONF"

# --- 5. the fleet on this machine ---------------------------------------------------------------
say "the fleet: store namespace $NETNS-store (nginx WebDAV $STORE_URL), servers $NETNS-s1 and $NETNS-s2 (no default route)"
RELAY=$DEMO_DIR/relay.sock
rm -rf "$DEMO_DIR/store"
$LAB --servers 2 --relay "$RELAY" --nginx "$DEMO_DIR/store" up >/dev/null

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
ROWS=$DEMO_DIR/rows.txt
: >"$ROWS"

# on SERVER: select server 1 or 2 (its root and namespace) for inroot/measure.
on() {
	SERVER=$1
	NS=$NETNS-s$1
	if [ "$1" = 1 ]; then ROOT=$ROOT1; else ROOT=$ROOT2; fi
}

# measure ROUND STEP SCRIPT: run SCRIPT in the current server, its only way to the internet the
# counting relay (a fresh one per step), and append one table row: wall time, bytes from the
# internet (counted by the relay), bytes over the LAN (the server's interface counters).
measure() {
	rm -f "$RELAY" "$DEMO_DIR/relay.count"
	python3 "$REPO/scripts/countproxy.py" --unix "$RELAY" --rate "$DEMO_RATE" \
		--count-file "$DEMO_DIR/relay.count" &
	relay_pid=$!
	i=0
	while [ ! -S "$RELAY" ]; do
		i=$((i + 1)); [ "$i" -lt 100 ] || die "the counting relay did not start"; sleep 0.1
	done
	h0=$(stat_field hits); s0=$(stat_field bytes_served)
	l0=$($LAB lan-bytes --server "$SERVER"); t0=$(now)
	if ! PROXY=127.0.0.1:3128 inroot "$3" >"$DEMO_DIR/s$SERVER-$1-$2.log" 2>&1; then
		tail -n 30 "$DEMO_DIR/s$SERVER-$1-$2.log" >&2
		die "$2 failed on server $SERVER, round $1 (log: $DEMO_DIR/s$SERVER-$1-$2.log)"
	fi
	t1=$(now)
	l1=$($LAB lan-bytes --server "$SERVER")
	sleep 0.2  # let the relay's threads account the last bytes
	kill "$relay_pid"; wait "$relay_pid" 2>/dev/null || true
	relay_pid=""
	got=$(cat "$DEMO_DIR/relay.count" 2>/dev/null || echo 0)
	h1=$(stat_field hits); s1=$(stat_field bytes_served)
	need=$(sed -n 's/^Need to get \([^ ]* [^ /]*\).*/\1/p' "$DEMO_DIR/s$SERVER-$1-$2.log" | head -n 1)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f s", b - a }')
	printf '%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$SERVER" "$1" "$2" "$secs" "$(human "$got")" \
		"$(human $((l1 - l0)))" "${need:--}" "$((h1 - h0))" "$(human $((s1 - s0)))" >>"$ROWS"
}

APT_STEP="apt-get install -y --no-install-recommends $DEMO_APT"
PIP_STEP="python3 -m venv /opt/app && pkgcache pip install --python /opt/app -r /root/requirements.txt"
PUSH_STEP="pkgcache remote push"
# Packages known to dpkg (installed or with config left), to purge back to the base set.
PKGLIST="dpkg-query -W -f='\${db:Status-Abbrev} \${Package}\\n' | awk '\$1 != \"un\" { print \$2 }' | sort"
on 1
inroot "$PKGLIST >/root/base-packages"
WIPE="$PKGLIST >/root/now-packages
comm -13 /root/base-packages /root/now-packages | xargs -r apt-get purge -y >/dev/null
apt-get clean; rm -rf /opt/app /root/.cache/pip"

provision() { # ROUND: the apt and pip steps on the current server
	say "server $SERVER, round '$1': apt-get install $DEMO_APT"
	measure "$1" apt "$APT_STEP"
	if [ "$PIP_READY" = 1 ]; then
		say "server $SERVER, round '$1': pkgcache pip install -r requirements.txt ($(echo $DEMO_PIP | wc -w) pinned requirements)"
		measure "$1" pip "$PIP_STEP"
		inroot "/opt/app/bin/python -c 'import requests, yaml, numpy, rich, jinja2, click'" \
			|| die "the venv of server $SERVER, round $1 cannot import the requirements"
	fi
}

# --- 6. server 1: provision, push to the store, wipe, provision again ----------------------------
provision cold
say "server 1: pkgcache remote push (uploads what it cached to the fleet's store)"
measure cold push "$PUSH_STEP"
say "wiping the usual caches: apt-get purge + apt-get clean, fresh venv, pip cache"
inroot "$WIPE"
inroot 'ls /var/cache/apt/archives/*.deb >/dev/null 2>&1 && exit 1 || true'
provision warm

# --- 7. server 2: an empty server through the fleet ----------------------------------------------
on 2
provision fleet
# the result must be the same as server 1's: dpkg -l and pip freeze
RESULT="dpkg-query -W -f='\${Package} \${Version}\\n' | sort; [ ! -x /opt/app/bin/pip ] || /opt/app/bin/pip freeze"
inroot "$RESULT" >"$DEMO_DIR/s2-result"
on 1
inroot "$RESULT" >"$DEMO_DIR/s1-result"

# --- 8. the table --------------------------------------------------------------------------
say "before/after (cold = empty cache; warm = after apt-get clean and a fresh venv; fleet = an empty server 2 with the store)"
{
	echo "server|round|step|time|from internet|over LAN|apt: need to get|cache hits|served from cache"
	cat "$ROWS"
} | column -t -s '|' 2>/dev/null || { echo "server|round|step|time|internet|LAN|apt need|hits|served"; cat "$ROWS"; }
[ "$PIP_READY" = 1 ] || echo "(pip rows skipped: 'pkgcache pip install' is not in this build)"
echo
echo "from internet = bytes the step received from the Debian archive / PyPI (counted by the relay"
echo "that is the servers' only way out); over LAN = bytes in + out on the server's link to the"
echo "store; cache hits / served = pkgcache's own counters (pkgcache stats). Logs: $DEMO_DIR/*.log"
echo
on 2
inroot "pkgcache stats"

# --- 9. verdict -----------------------------------------------------------------------------
fail=""
warm_need=$(awk -F'|' '$1 == 1 && $2 == "warm" && $3 == "apt" { print $7 }' "$ROWS")
[ "$warm_need" = "0 B" ] || fail="the warm apt-get install on server 1 still needed $warm_need from the network"
fleet_need=$(awk -F'|' '$1 == 2 && $3 == "apt" { print $7 }' "$ROWS")
[ "$fleet_need" = "0 B" ] || fail="${fail:+$fail; }server 2's apt-get install needed $fleet_need from the network"
cmp -s "$DEMO_DIR/s1-result" "$DEMO_DIR/s2-result" ||
	fail="${fail:+$fail; }servers 1 and 2 differ in dpkg -l or pip freeze ($DEMO_DIR/s[12]-result)"
if [ -n "$fail" ]; then
	echo "demo: FAILED: $fail" >&2
	exit 1
fi
echo
echo "demo: OK: after apt-get clean server 1's second apt-get install needed 0 B from the network;"
echo "      the empty server 2 needed 0 B of debs from the internet (all from the fleet's store)"
[ "${DEMO_KEEP:-0}" != 1 ] || echo "roots kept: $ROOT1 $ROOT2"
