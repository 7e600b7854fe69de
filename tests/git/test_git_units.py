"""The git driver's rules on URLs and git's errors (no git run)."""

from __future__ import annotations

import pytest

from hooks.git.base import GitError, is_local, unreachable
from hooks.git.fleet import shareable


@pytest.mark.parametrize("url,local", [
    ("/srv/repo.git", True), ("./repo", True), ("../lib.git", True), ("repo", True),
    ("file:///srv/repo.git", True), ("FILE:///srv/repo.git", True),
    ("https://host/repo.git", False), ("git://host/repo", False),
    ("ssh://git@host/repo.git", False), ("git@host:org/repo.git", False),
    ("host:repo.git", False), ("./a:b", True)])
def test_is_local_follows_gits_rule(url: str, local: bool) -> None:
    assert is_local(url) is local


@pytest.mark.parametrize("url,shared", [
    ("https://host/org/repo.git", True), ("http://127.0.0.1:8080/proj", True),
    ("git://host/repo", True),
    ("https://user:token@host/org/private.git", False),   # credentials: never leaves the machine
    ("https://host/repo.git?private_token=abc", False),
    ("ssh://git@host/repo.git", False), ("git@host:org/repo.git", False),
    ("/srv/repo.git", False), ("file:///srv/repo.git", False)])  # another repository elsewhere
def test_only_repositories_anyone_can_fetch_are_shared(url: str, shared: bool) -> None:
    assert shareable(url) is shared


@pytest.mark.parametrize("stderr,down", [
    ("fatal: unable to access 'http://h/r/': Failed to connect to h port 80: Connection refused",
     True),
    ("fatal: unable to access 'https://h/r/': Could not resolve host: h", True),
    ("ssh: connect to host h port 22: Connection timed out\nfatal: Could not read from remote "
     "repository.", True),
    ("fatal: unable to access 'https://h/r/': The requested URL returned error: 503", True),
    ("fatal: repository 'http://h/r/' not found", False),
    ("fatal: unable to access 'https://h/r/': The requested URL returned error: 403", False),
    ("git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.",
     False),
    ("fatal: could not read Username for 'https://h': terminal prompts disabled", False),
    ("error: RPC failed; HTTP 404 curl 22 The requested URL returned error: 404", False),
    ("error: RPC failed; curl 56 Recv failure: Connection reset by peer\nfatal: early EOF",
     True),
    ("error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502", True)])
def test_unreachable_is_only_a_server_that_cannot_be_reached(stderr: str, down: bool) -> None:
    assert unreachable(GitError(stderr.splitlines()[-1], detail=stderr)) is down
