"""pkgcache's benchmarks (speed targets live here, not in timed tests).

Run from the checkout's root as modules, so that ``cache_core``, ``hooks``, ``tests.support`` and
``bench.lib`` import without path tricks::

    sudo .venv/bin/python -m bench.run [--quick] [--only core,apt,pip,remote,apt-fleet]
    .venv/bin/python -m bench.scenarios.core --size-mb 128

``bench/run.py`` also runs as a script (``python bench/run.py``). Layout: ``run.py`` (the one
command: runs the scenarios, prints one table, writes JSON and a chart), ``scenarios/`` (one
module per measured thing, each runnable on its own), ``lib/`` (apt-cacher-ng and the counting
relay, statistics, the report and chart, shared setup).
"""
