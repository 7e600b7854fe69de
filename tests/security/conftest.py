"""Fixtures for the security tests; the helpers live in seclab.py (a unique module name, so the
tests can import them whatever other conftest.py pytest loaded first)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from seclab import (  # noqa: F401 - fixtures and the collection hook, re-exported
    fetch_server,
    lab,
    public_dir,
    pytest_collection_modifyitems,
    user,
)
