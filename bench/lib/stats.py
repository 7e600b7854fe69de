"""Statistics for the benches: medians with min/max, timing a callable, ratios, formatting."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def stats(values: list[float | None]) -> dict[str, object]:
    """median/min/max of a list (None and NaN left out: failed runs), plus the values themselves."""
    vals = [v for v in values if v is not None and v == v]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "runs": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "runs": vals}


def timings(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds of fn() for each of repeat runs."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def timed(fn: Callable[[], object], repeat: int = 5) -> tuple[float, float, float]:
    """(median, min, max) seconds of fn() over repeat runs."""
    times = timings(fn, repeat)
    return statistics.median(times), min(times), max(times)


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of fn() over repeat runs."""
    return statistics.median(timings(fn, repeat))


def ratio(a: dict | None, b: dict | None) -> float | None:
    """a's median / b's median (None when either is missing or zero)."""
    if not a or not b or a.get("median") in (None, 0) or b.get("median") in (None, 0):
        return None
    return a["median"] / b["median"]


def fmt(v: float | None, unit: str = "") -> str:
    """A figure for a table: "-" for none, MB for bytes, thousands separated."""
    if v is None:
        return "-"
    if unit == "MB":
        return f"{v / 1e6:.2f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"


def latin(names: list[str] | tuple[str, ...], run: int) -> list[str]:
    """The order of names in run `run`: row `run` of a cyclic Latin square (each name takes each
    position once every len(names) runs, so no peer always runs first, last or after the same)."""
    k = run % len(names) if names else 0
    return [*names[k:], *names[:k]]


def paired(a: list[float | None], b: list[float | None]) -> list[float | None]:
    """Per-run ratios a[i] / b[i] of two scenarios timed in the same runs (None where either is
    missing or zero): the spread the ratio of medians hides."""
    return [x / y if x is not None and y and x == x and y == y else None
            for x, y in zip(a, b, strict=False)]


def fmt_runs(values: list[float | None]) -> str:
    """Per-run ratios for a table cell: '0.91 1.02 -'."""
    return " ".join("-" if v is None else f"{v:.2f}" for v in values) or "-"
