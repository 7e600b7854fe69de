"""Which ``400 URI Failure`` of apt's http method means "the origin cannot be reached": the
messages and FailReasons of apt 2.6 (methods/connect.cc, http.cc, basehttp.cc) for each way."""

from __future__ import annotations

import pytest

from hooks.apt.method import Message, no_retry, unreachable

U = "http://deb.example/debian/dists/bookworm/InRelease"
UNREACHABLE = [
    ("ConnectionRefused", "Could not connect to deb.example:80 (10.1.2.3). - connect (111: "
                          "Connection refused)"),
    ("", "Cannot initiate the connection to deb.example:80 (10.1.2.3). - connect (101: Network "
         "is unreachable)"),
    ("", "Could not connect to deb.example:80 (10.1.2.3). - connect (113: No route to host)"),
    ("", "Unable to connect to deb.example:80:"),  # an address already known bad
    ("ConnectionTimedOut", "Could not connect to deb.example:80 (10.1.2.3). - connect (110)"),
    ("Timeout", "Could not connect to deb.example:80 (10.1.2.3), connection timed out"),
    ("ResolveFailure", "Could not resolve 'deb.example'"),
    ("TmpResolveFailure", "Temporary failure resolving 'deb.example'"),
    ("", "Connection failed"),  # reset twice while reading headers
    ("", "Error reading from server. Remote end closed connection [IP: 10.1.2.3 80]"),
    ("", "Connection timed out [IP: 10.1.2.3 80]"),
    ("", "Could not handshake: Error in the pull function. [IP: 10.1.2.3 443]"),
    ("HttpError502", "502  Bad Gateway [IP: 127.0.0.1 3128]"),
    ("HttpError503", "503  Service Unavailable [IP: 127.0.0.1 3128]"),
    ("HttpError504", "504  Gateway Timeout [IP: 127.0.0.1 3128]"),
    ("", "Invalid response from proxy: HTTP/1.1 502 Bad Gateway  [IP: 127.0.0.1 3128]"),
    ("", "Reading from proxy failed - read (104: Connection reset by peer)"),
]
REACHED = [
    ("HttpError404", "404  Not Found [IP: 10.1.2.3 80]"),
    ("HttpError403", "403  Forbidden [IP: 10.1.2.3 80]"),
    ("HttpError500", "500  Internal Server Error [IP: 10.1.2.3 80]"),
    ("MaximumSizeExceeded", "File has unexpected size (10 != 9). Mirror sync in progress?"),
    ("", "Invalid response from proxy: HTTP/1.1 407 Proxy Authentication Required"),
]


def _fail(reason: str, text: str, transient: bool = True) -> Message:
    fields = [("URI", U), ("Message", text)]
    fields += [("FailReason", reason)] if reason else []
    fields += [("Transient-Failure", "true")] if transient else []
    return Message.build("400 URI Failure", fields)


@pytest.mark.parametrize(("reason", "text"), UNREACHABLE)
def test_every_way_of_not_reaching_the_origin(reason: str, text: str) -> None:
    assert unreachable(_fail(reason, text))


@pytest.mark.parametrize(("reason", "text"), REACHED)
def test_answers_of_a_reached_origin(reason: str, text: str) -> None:
    assert not unreachable(_fail(reason, text, transient=False))


def test_no_retry_keeps_apt_s_words() -> None:
    msg = no_retry(_fail("ConnectionRefused", UNREACHABLE[0][1]))
    assert msg.get("Transient-Failure") is None and msg.get("FailReason") is None
    assert (msg.get("URI"), msg.get("Message")) == (U, UNREACHABLE[0][1])
    kept = no_retry(_fail("HttpError502", "502  Bad Gateway"))
    assert kept.get("FailReason") == "HttpError502"  # apt does not retry those anyway
