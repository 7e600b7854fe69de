#!/usr/bin/env python3
"""Chart for bench/run.py: latest.json -> PNG (needs matplotlib; bench-only dependency).

    python bench/lib/plot.py latest.json latest.png   (a plain script: only matplotlib)
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def bars(ax, labels: list[str], stats: list[dict], title: str, unit: str) -> None:  # type: ignore[no-untyped-def]
    """Median bars with min-max error bars."""
    med = [s["median"] for s in stats]
    lo = [s["median"] - s["min"] for s in stats]
    hi = [s["max"] - s["median"] for s in stats]
    ax.barh(labels, med, xerr=[lo, hi], capsize=3, color="#4c72b0")
    for i, m in enumerate(med):
        ax.text(m, i, f" {m:.2f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(unit)


def main() -> int:
    """Render argv[1] (latest.json) into argv[2] (PNG)."""
    res = json.load(open(sys.argv[1]))
    panels = [k for k in ("apt", "pip", "core") if "scenarios" in res.get(k, {}) or
              "metrics" in res.get(k, {})]  # a failed section has only its error
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
    for ax, k in zip(axes[:, 0], panels, strict=True):
        if k == "apt":
            a = res["apt"]
            keys = [s for s in "AHSBN" if a["scenarios"].get(s, {}).get("wall", {}).get("n")]
            bars(ax, [f"{s} {a['labels'][s]}" for s in keys],
                 [a["scenarios"][s]["wall"] for s in keys],
                 f"apt-get install, {a['packages']} packages (median, min-max; orange: before "
                 "dpkg's first unpack)", "seconds")
            ax.barh(range(len(keys)), [a["scenarios"][s]["pre_dpkg"]["median"] for s in keys],
                    color="#dd8452", height=0.4)
        elif k == "pip":
            p = res["pip"]["scenarios"]
            keys = [s for s in ("pip-cold", "pip-warm", "wheelhouse", "pkgcache-online",
                                "pkgcache-pip", "pkgcache-uv", "uv-offline") if p.get(s, {}).get(
                                    "wall", {}).get("n")]
            bars(ax, keys, [p[s]["wall"] for s in keys],
                 f"pip install, {res['pip']['distributions']} distributions", "seconds")
        else:
            m = res["core"]["metrics"]
            keys = [("raw_sha256_mb_s", "hashlib.file_digest sha256"), ("verified_get_mb_s", "verified get"),
                    ("raw_copy_mb_s", "raw copyfile"), ("put_mb_s", "put (hash+copy+fsync)")]
            bars(ax, [lab for _, lab in keys], [m[key] for key, _ in keys],
                 f"cache core, {res['core']['size_mb']} MB file", "MB/s")
    fig.suptitle(f"pkgcache bench {res['started']} ({res['machine']['nproc']} CPUs, "
                 f"{res['machine']['ram_gib']} GiB)", fontsize=10)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=80)
    return 0


if __name__ == "__main__":
    sys.exit(main())
