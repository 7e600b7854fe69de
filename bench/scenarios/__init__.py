"""One module per benchmark scenario; each has a ``main()`` (``python -m bench.scenarios.X``)."""
