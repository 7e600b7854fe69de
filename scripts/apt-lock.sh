# Sourced by the scripts that run the host's apt-get (test.sh, demo.sh, build-deb.sh):
#   apt_get ARGS...   apt-get ARGS, waiting up to $APT_LOCK_WAIT s (300) for another apt to
#                     finish (unattended-upgrades or cloud-init at first boot) instead of failing.
# DPkg::Lock::Timeout makes apt-get wait for dpkg's lock; `apt-get update` does not wait for the
# lists lock with it (apt 2.6, Debian 12), so update is retried while that lock is held.
APT_LOCK_WAIT=${APT_LOCK_WAIT:-300}

apt_get() {
	case " $* " in
	*" update "*) ;;
	*) apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT" "$@"; return ;;
	esac
	_apt_log=$(mktemp)
	_apt_waited=0
	until apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT" "$@" 2>"$_apt_log"; do
		if ! grep -q "Could not get lock" "$_apt_log" || [ "$_apt_waited" -ge "$APT_LOCK_WAIT" ]; then
			cat "$_apt_log" >&2
			rm -f "$_apt_log"
			return 100
		fi
		[ "$_apt_waited" != 0 ] || echo "apt-get update: waiting for another apt to release its lock (up to $APT_LOCK_WAIT s)" >&2
		sleep 2
		_apt_waited=$((_apt_waited + 2))
	done
	cat "$_apt_log" >&2
	rm -f "$_apt_log"
}
