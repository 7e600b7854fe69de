"""Which requirements this interpreter lacks (for scripts/test.sh, so a run installs only those).

    pip-missing.py REQ...           prints the requirements not installed or not satisfied
    pip-missing.py --editable DIR   exit 0 if pkgcache is installed editable from DIR, else 1
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement


def missing(reqs: list[str]) -> list[str]:
    """The requirements (as given) with no installed distribution satisfying them."""
    out = []
    for line in reqs:
        req = Requirement(line)
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            out.append(line)
            continue
        if not req.specifier.contains(have, prereleases=True):
            out.append(line)
    return out


def editable_from(directory: str) -> bool:
    """True if the pkgcache distribution is an editable install of directory."""
    try:
        text = metadata.distribution("pkgcache").read_text("direct_url.json") or "{}"
    except metadata.PackageNotFoundError:
        return False
    info = json.loads(text)
    return (info.get("dir_info", {}).get("editable") is True
            and info.get("url") == Path(directory).resolve().as_uri())


def main(argv: list[str]) -> int:
    """Print what is missing (or check the editable install); see the module docstring."""
    if argv[:1] == ["--editable"]:
        return 0 if editable_from(argv[1]) else 1
    print(" ".join(missing(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
