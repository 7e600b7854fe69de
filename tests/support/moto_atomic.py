"""moto's S3 server with its PutObject made atomic, as real S3's is: run as
``python -m tests.support.moto_atomic -H 127.0.0.1 -p PORT``.

moto 5 checks ``If-None-Match: *`` and then writes, in separate steps (s3/responses.py
``put_object``), on a threaded server, so two conditional PUTs of one key that arrive together
can both succeed. On S3 exactly one does. Shared sets and leases rest on that, so the tests' S3
serializes PutObject (CI stop 31: 8 writers at once lost one version of a shared set).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from moto.s3.responses import S3Response
from moto.server import main

_LOCK = threading.Lock()
_put_object = S3Response.put_object


def _atomic_put_object(self: Any) -> Any:
    """PutObject, one at a time (a check and its write never interleave with another PUT)."""
    with _LOCK:
        return _put_object(self)


S3Response.put_object = _atomic_put_object  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
