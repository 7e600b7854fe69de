"""File-system primitives: atomic writes, placing files, directory safety, locks, the sweep policy."""

from .atomic import (
    TMP_PREFIX,
    atomic_symlink,
    atomic_write,
    create_exclusive,
    fsync_dir,
    open_regular,
    read_json,
    replace_checked,
    temp_name,
    unlink_quiet,
)
from .locks import acquire, file_lock, lock_path, named_lock
from .memo import memo_path, read_memo, write_memo
from .place import FALLBACK_ERRNOS, copy_fd, link_verified, materialize, place_temp, place_temp_fd
from .safety import (
    acl_grants_write,
    check_dir_safe,
    check_new_root,
    ensure_private_dir,
    is_system_dir,
    state_dir,
)
from .sweep import pid_alive, remove_tree, stale_entries, sweep, temp_owner_pid

__all__ = [
    "FALLBACK_ERRNOS", "TMP_PREFIX", "acl_grants_write", "acquire", "atomic_symlink", "atomic_write",
    "check_dir_safe", "check_new_root", "copy_fd", "create_exclusive", "ensure_private_dir",
    "file_lock", "fsync_dir", "is_system_dir", "link_verified", "lock_path", "materialize",
    "memo_path", "named_lock", "open_regular", "pid_alive", "place_temp", "place_temp_fd",
    "read_json", "read_memo", "remove_tree", "replace_checked",
    "stale_entries", "state_dir", "sweep", "temp_name", "temp_owner_pid", "unlink_quiet",
    "write_memo",
]
