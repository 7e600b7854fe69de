"""Issue #22 item 3, as root with another user's find-links directory: root once installs with
``--find-links /home/<user>/wheels`` (the user's own beta 1.0, named like the index's); root's
other projects asking the index for ``beta==1.0`` never get the user's wheel, online or with the
index unreachable. Real pip, a real unprivileged account, the PEP 503 index on 127.0.0.1."""

from __future__ import annotations

import os

from cache_core import PackageCache
from hooks.pip.install import install
from hooks.pip.options import token
from tests.pip.conftest import cache, index, make_venv, packages, pip_isolation  # noqa: F401
from tests.support.pip import Index, installed_tag, py, same_name_other_bytes
from tests.support.user import User


def test_a_user_find_links_wheel_never_reaches_root_other_projects(
        user: User, cache: PackageCache, index: Index, make_venv) -> None:  # noqa: F811
    wheels = user.dir("wheels")
    evil = same_name_other_bytes(wheels, "beta", "1.0")
    for p in (evil, *wheels.rglob("*")):
        os.chown(p, user.uid, user.gid)
    assert token(str(wheels)).endswith(f"#user={user.uid}")  # recorded under that user
    # root installs once from the user's directory: the user's wheel
    v = make_venv()
    assert install(cache, ["--python", py(v), "--no-index", "--find-links", str(wheels),
                           "beta==1.0"]) == 0
    assert installed_tag(v, "beta") == "py2.py3-none-any"  # the user's
    # root's other projects: index unreachable, then online (pinned and not)
    index.stop()
    v = make_venv()
    install(cache, ["--python", py(v), "-i", index.url, "beta==1.0"])
    assert installed_tag(v, "beta") is None
    index.start()
    for req in ("beta==1.0", "beta", "alpha"):
        v = make_venv()
        assert install(cache, ["--python", py(v), "-i", index.url, req]) == 0
        assert installed_tag(v, "beta") == "py3-none-any", req
    # what root's request through the user's directory took is recorded under it alone
    from hooks.pip.trust import Trust

    groups = [g for _, g in Trust(cache.root).keys.values()]
    assert all(token(str(wheels)) not in g or g == [token(str(wheels))] for gs in groups
               for g in gs), groups
