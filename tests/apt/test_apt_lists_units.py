"""Units of hooks/apt/lists.py: reading a Release file and the offline fallback's freshness rule."""

from __future__ import annotations

from hooks.apt.lists import fallback_refusal, meta_base, parse_release

RELEASE = b"""-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Origin: Debian
Date: Sat, 11 Jul 2026 10:16:37 UTC
Valid-Until: Sat, 18 Jul 2026 10:16:37 UTC
MD5Sum:
 f230d61720e789abf5df55d6026230c6 50060337 main/binary-amd64/Packages
SHA256:
 515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f 50060337 main/binary-amd64/Packages
 9E0B5AABB2465B3D2E7A7FE27F9913846277833F7A2826E7767ACCCFF5B588C5  8790396 main/binary-amd64/Packages.xz
-----BEGIN PGP SIGNATURE-----

 0000000000000000000000000000000000000000000000000000000000000000 1 evil/Packages
-----END PGP SIGNATURE-----
"""
DATE = 1783764997.0  # Sat, 11 Jul 2026 10:16:37 UTC
DAY = 86400.0


def test_parse_release_reads_date_valid_until_and_sha256_only() -> None:
    rel = parse_release(RELEASE)
    assert rel.date == DATE and rel.valid_until == DATE + 7 * DAY
    assert rel.entries == {
        "main/binary-amd64/Packages":
            ("515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f", 50060337),
        "main/binary-amd64/Packages.xz":
            ("9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5", 8790396)}


def test_meta_base_is_apts_meta_index_uri() -> None:
    assert meta_base("http://h/debian/", "bookworm") == "http://h/debian/dists/bookworm/"
    assert meta_base("http://h:1", "./") == "http://h:1/./"
    assert meta_base("http://h/", "/") == "http://h/"


def test_fallback_refusal() -> None:
    key = "http://h/debian/dists/bookworm/InRelease"
    fresh = {"confirmed": DATE + 30 * DAY}
    now = DATE + 31 * DAY
    ok = fallback_refusal(RELEASE, key, fresh, {"newest": {key: DATE}}, 7 * DAY, now)
    assert ok is None  # months-old Date:, confirmed by an origin a day ago: served
    older = fallback_refusal(RELEASE, key, fresh, {"newest": {key: DATE + 1}}, 7 * DAY, now)
    assert older == "older than the one this machine has seen"
    stale = fallback_refusal(RELEASE, key, {"confirmed": DATE}, {}, 7 * DAY, now)
    assert stale == "last confirmed 31 days ago"
    # no confirmation in the record: Date: counts
    assert fallback_refusal(RELEASE, key, None, {}, 7 * DAY, DATE + DAY) is None
    assert fallback_refusal(RELEASE, key, {"confirmed": True}, {}, 7 * DAY, now) is not None
    gpg = key[:-9] + "Release.gpg"
    assert fallback_refusal(b"sig", gpg, None, {}, 7 * DAY, now) == "no date"
    assert fallback_refusal(b"sig", gpg, fresh, {}, 7 * DAY, now) is None
    assert fallback_refusal(RELEASE, key, fresh, {}, 0.0, now) is not None  # 0: no fallback
