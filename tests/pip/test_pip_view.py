"""The local index view's rules (unit level): which requests use it, how pip's arguments and
output are mapped, how pages are rewritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hooks.pip.view import View, usable


@pytest.fixture
def view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://env.example/simple/")
    v = View(["-i", "https://u:secret@idx.example/simple/", "alpha"], tmp_path)
    yield v
    v.close()


def test_pip_reads_every_index_through_the_view_and_its_lines_name_the_users(view: View) -> None:
    args = view.args(["-i", "https://u:secret@idx.example/simple/", "alpha", "--", "-i"])
    assert args == ["--extra-index-url", view.index(1), "--index-url", view.index(0), "alpha",
                    "--", "-i"]
    assert view.indexes == ["https://u:secret@idx.example/simple/", "https://env.example/simple/"]
    line = f"Looking in indexes: {view.index(0)}, {view.index(1)}\n"
    assert view.unview(line) == ("Looking in indexes: https://idx.example/simple/, "
                                 "https://env.example/simple/\n")  # no credentials
    assert "secret" not in view.unview(view.index(0))


def test_page_links_point_at_the_view_with_their_hash(view: View) -> None:
    html = (b'<a href="../../files/a-1.0-py3-none-any.whl#sha256=' + b"ab" * 32 +
            b'" data-requires-python="&gt;=3">a</a><a href="https://cdn.example/b-1.0.tar.gz">b</a>')
    out = view._rewrite(html, "text/html", "https://idx.example/simple/a/").decode()
    assert f'href="{view.prefix}f/0/a-1.0-py3-none-any.whl#sha256={"ab" * 32}"' in out
    assert f'href="{view.prefix}f/1/b-1.0.tar.gz"' in out and "&gt;=3" in out
    assert view.files == ["https://idx.example/files/a-1.0-py3-none-any.whl",
                          "https://cdn.example/b-1.0.tar.gz"]
    assert view.hashes == {0: "ab" * 32}
    assert view.upstream(f"{view.prefix}f/1/b-1.0.tar.gz#x") == "https://cdn.example/b-1.0.tar.gz"
    data = {"meta": {"api-version": "1.1"}, "files": [
        {"filename": "c-1.0-py3-none-any.whl", "url": "/f/c-1.0-py3-none-any.whl",
         "hashes": {"sha256": "cd" * 32}}]}
    out = json.loads(view._rewrite(json.dumps(data).encode(),
                                   "application/vnd.pypi.simple.v1+json",
                                   "https://idx.example/simple/c/"))
    assert out["files"][0]["url"] == f"{view.prefix}f/2/c-1.0-py3-none-any.whl"
    assert view.files[2] == "https://idx.example/f/c-1.0-py3-none-any.whl"
    assert view.hashes[2] == "cd" * 32


@pytest.mark.parametrize(("args", "ok"), [
    (["-i", "https://idx.example/simple/", "a"], True),
    (["-i", "file:///srv/simple/", "a"], False),            # urllib-free local index
    (["--no-index", "-f", "/wh", "a"], False),
    (["--trusted-host", "idx.example", "a"], False),
    (["--client-cert", "/c.pem", "a"], False),
    (["--extra-index-url=file:///x/", "a"], False),
    (["a", "--", "--no-index"], True),                      # after --: not an option
    (["--proxy", "http://p:3128", "a"], False),
    (["-i", "https://u:secret@idx.example/simple/", "a"], False),  # the view's URL is on
    (["--extra-index-url", "https://idx.example/simple/?token=s", "a"], False),  # argv: pip's own
])
def test_which_requests_use_the_view(args: list[str], ok: bool,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    assert usable(args) is ok


def test_the_view_answers_only_under_its_secret_path(view: View) -> None:
    import urllib.error
    import urllib.request

    port = view.prefix.split(":")[2].split("/")[0]
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/0/alpha/", timeout=5)
    assert exc.value.code == 404


def test_a_reader_of_the_views_url_cannot_choose_names_pages_or_hashes(view: View) -> None:
    """The view's URL is on pip's command line: another local user who reads it must not file
    a file's bytes under another file's name, reach pages of another host, or change the hash
    a file is checked against."""
    import urllib.error
    import urllib.request

    html = b'<a href="../../files/a-1.0-py3-none-any.whl#sha256=' + b"ab" * 32 + b'">a</a>'
    view._rewrite(html, "text/html", "https://idx.example/simple/a/")
    view._rewrite(b'<a href="../../files/a-1.0-py3-none-any.whl#sha256=' + b"ef" * 32 + b'">a</a>',
                  "text/html", "https://idx.example/simple/a/")
    assert view.hashes == {0: "ab" * 32}  # the first page that named the file decides
    for path in ("f/0/victim-2.0-py3-none-any.whl",        # file 0's bytes under another name
                 "0///evil.example/simple/x/",              # a page of another host
                 "0/../../other/simple/x/"):                # a page outside the index
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(view.prefix + path, timeout=5)
        assert exc.value.code == 404, path
    assert view.fetched == {}


class _Lease:
    """A page lease this run holds (counts its release)."""

    def __init__(self, released: list[str], url: str) -> None:
        self.released, self.url = released, url

    def __exit__(self, *exc: object) -> None:
        self.released.append(self.url)


def test_held_page_leases_share_one_publisher_and_close_releases_them_all(view: View) -> None:
    """Publishing a page can hang on a dead store: one publisher thread, and close() waits for
    it only until publish_wait, then releases every lease (others wait on them) all the same."""
    import threading
    import time

    released: list[str] = []
    gate = threading.Event()
    publishing: list[str] = []

    class Shared:
        def publish(self, url: str, accept: str) -> bool:
            publishing.append(threading.current_thread().name)
            gate.wait(5)  # a store that does not answer
            return True

    view.shared = Shared()  # type: ignore[assignment]
    view.publish_wait = 0.2
    before = threading.active_count()
    urls = [f"https://idx.example/simple/p{i}/" for i in range(5)]
    for u in urls:
        view._end_page_lease(_Lease(released, u), u, "a", publish=True)
    assert threading.active_count() <= before + 1  # one publisher, not one thread per page
    start = time.monotonic()
    view.close()
    assert time.monotonic() - start < 2
    assert sorted(released) == sorted(urls)  # every lease released, published or not
    gate.set()
    time.sleep(0.1)
    assert sorted(released) == sorted(urls) and len(set(publishing)) == 1


def test_a_page_read_under_a_lease_is_kept_by_the_publisher_not_the_reader(view: View) -> None:
    """The reader (pip, the fleet's look-up threads) gets the page at once; keeping it in the
    cache (a put and its fsync) is the publisher's, before it shares it and ends the lease."""
    import threading
    import time

    gate = threading.Event()
    saved: list[tuple[str, bytes, bool, bool]] = []
    published: list[str] = []
    released: list[str] = []

    class Shared:
        def save(self, url: str, accept: str, body: bytes, headers: object, held: object,
                 base: str | None = None, keep: bool = False) -> None:
            gate.wait(5)  # a slow disk
            saved.append((url, body, keep, threading.current_thread() is threading.main_thread()))

        def publish(self, url: str, accept: str) -> bool:
            published.append(url)
            return True

    class Resp:
        headers = {"Content-Type": "text/html"}

        def __enter__(self) -> Resp:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def read(self, n: int) -> bytes:
            return b"<a>page</a>"

        def geturl(self) -> str:
            return url

    url = "https://idx.example/simple/alpha/"
    view.shared = Shared()  # type: ignore[assignment]
    view._open = lambda *a: Resp()  # type: ignore[method-assign,assignment,return-value]
    start = time.monotonic()
    memo = view._fetch_page(url, "text/html", None, True)
    assert not isinstance(memo, int) and memo[1] == b"<a>page</a>"
    assert time.monotonic() - start < 2 and saved == []  # not waiting for the disk
    view._end_page_lease(_Lease(released, url), url, "text/html", publish=True)
    gate.set()
    view.close()
    assert saved == [(url, b"<a>page</a>", True, False)]  # kept, by the publisher thread
    assert published == [url] and released == [url]  # then shared, then the lease ended


class _Kept:
    """Pages kept here, fresh by the index's max-age and the fleet's window (Pages' part)."""

    def __init__(self, window: float) -> None:
        self.asked: list[tuple[str, str, bool]] = []
        self.window = window

    def held(self, url: str, accept: str, revalidate: bool = False):
        import time

        from hooks.pip.pages import Held

        self.asked.append((url, accept, revalidate))
        return Held("pippage:x", "0" * 64, b"<a>kept</a>", {
            "url": url, "accept": accept, "fetched": time.time(), "max_age": 600,
            "content_type": "text/html"}, [], True, self.window)

    def confirm(self, held: object) -> None:
        pass


def _fetches(view: View, monkeypatch: pytest.MonkeyPatch, window: float = 0.0
             ) -> list[tuple[str, str]]:
    got: list[tuple[str, str]] = []

    def fetch(url: str, accept: str, held: object, publish: bool):
        got.append((url, accept))
        memo = view._pages[(url, accept)] = ("text/html", b"<a>new</a>", url, b"<a>new</a>")
        return memo

    monkeypatch.setattr(view, "_fetch_page", fetch)
    view.shared = _Kept(window)  # type: ignore[assignment]
    return got


def test_refresh_asks_the_index_for_every_page(view: View, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    """--refresh: no kept page is used as fresh, not even within the fleet's window."""
    fetched = _fetches(view, monkeypatch, window=600.0)
    view.refresh = True
    url = "https://idx.example/simple/alpha/"
    assert view._read_page(url, "text/html")[1] == b"<a>new</a>"
    assert fetched == [(url, "text/html")]
    assert view.shared.asked == [(url, "text/html", True)]  # type: ignore[union-attr]


def test_a_page_used_by_max_age_is_revalidated_per_accept(view: View,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A page used within its max-age is asked again when an asker wants it revalidated, even
    after the same URL was read with another Accept (the set of such pages is by (url, accept))."""
    fetched = _fetches(view, monkeypatch)
    url = "https://idx.example/simple/alpha/"
    assert view._read_page(url, "a")[1] == b"<a>kept</a>"  # fresh by max-age
    assert view._read_page(url, "b", revalidate=True)[1] == b"<a>new</a>"
    assert view._read_page(url, "a", revalidate=True)[1] == b"<a>new</a>"
    assert fetched == [(url, "b"), (url, "a")]
