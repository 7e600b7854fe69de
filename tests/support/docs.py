"""The user docs (README.md and docs/*.md) as tests read them: code blocks by heading, headings'
anchors and relative links. Every block a test runs or reads is named in EXTRACTED, so the fast
tier (tests/recipes/test_docs.py) sees a block that moved or vanished before a system test does."""

from __future__ import annotations

import re

from tests.support import REPO

# (document, heading, fence language) of every block a test extracts with doc_block.
EXTRACTED = (
    ("docs/recipes.md", "Dockerfile with a BuildKit cache mount", "dockerfile"),
    ("docs/recipes.md", "Vagrant synced folder", "ruby"),
    ("docs/recipes.md", "cloud-init", "yaml"),
    ("docs/recipes.md", "Ansible", "yaml"),
    ("docs/fleet.md", "The fleet tier: a remote store", "yaml"),
    ("README.md", "A minimal configuration", "yaml"),
    ("docs/configuration.md", "Configuration", "yaml"),
)
_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def doc_text(doc: str) -> str:
    """The text of a document, a path relative to the repository."""
    return (REPO / doc).read_text()


def user_docs() -> list[str]:
    """README.md and every docs/*.md, relative to the repository."""
    return ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))]


def _prose(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    out, fence = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fence = not fence
        elif not fence:
            out.append((n, line))
    return out


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line number, level, title) of each heading outside code blocks."""
    return [(n, len(m.group(1)), m.group(2)) for n, line in _prose(text)
            if (m := _HEADING.match(line))]


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings (lower case, punctuation dropped, spaces to -,
    a repeated one suffixed -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for _, _, title in headings(text):
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link outside code blocks and inline code."""
    return [(n, m.group(1)) for n, line in _prose(text)
            for m in _LINK.finditer(re.sub(r"`[^`]*`", "", line))]


def doc_block(doc: str, heading: str, lang: str) -> str:
    """The first ```lang block in ``doc`` under the heading titled ``heading`` (any level),
    before the next heading of that level or higher; as printed. Name it in EXTRACTED first."""
    assert (doc, heading, lang) in EXTRACTED, f"add {(doc, heading, lang)} to EXTRACTED"
    text = doc_text(doc)
    found = [(n, level) for n, level, title in headings(text) if title == heading]
    assert len(found) == 1, f"{doc}: {len(found)} headings {heading!r}"
    start_line, level = found[0]
    end_line = next((n for n, lv, _ in headings(text) if n > start_line and lv <= level), None)
    lines = text.splitlines(keepends=True)
    start = sum(len(x) for x in lines[:start_line])
    end = len(text) if end_line is None else sum(len(x) for x in lines[:end_line - 1])
    m = re.compile(rf"^```{re.escape(lang)}\n(.*?)^```$", re.M | re.S).search(text, start, end)
    assert m, f"{doc}: no ```{lang} block under {heading!r}"
    return m.group(1)
