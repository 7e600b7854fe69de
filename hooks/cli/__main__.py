"""``python -m hooks.cli``: the same as the ``pkgcache`` command."""

import sys

from hooks.cli.app import main

sys.exit(main())
