"""The index schema as a list of migrations: entry n takes user_version n to n + 1.

A new column or table is a new entry appended here (never an edit of an old one); an index
with a user_version above len(MIGRATIONS) was written by a newer pkgcache and is not touched.
"""

from __future__ import annotations

import sqlite3

COUNTERS = ("hits", "misses", "bytes_served", "evictions", "corrupt", "stale", "puts", "bytes_stored")
TOTALS = ("total_size", "objects", "entries", "bucket_size")

_V1 = """
CREATE TABLE IF NOT EXISTS objects(
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, created REAL NOT NULL, last_used REAL NOT NULL);
CREATE INDEX IF NOT EXISTS objects_lru ON objects(last_used);
CREATE TABLE IF NOT EXISTS keys(
    key TEXT PRIMARY KEY, digest TEXT NOT NULL, kind TEXT NOT NULL, size INTEGER NOT NULL,
    created REAL NOT NULL, last_used REAL NOT NULL, hits INTEGER NOT NULL DEFAULT 0, meta TEXT);
CREATE INDEX IF NOT EXISTS keys_digest ON keys(digest);
CREATE TABLE IF NOT EXISTS buckets(
    bucket TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL,
    last_used REAL NOT NULL, PRIMARY KEY(bucket, name));
CREATE INDEX IF NOT EXISTS buckets_lru ON buckets(last_used);
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS objects_ins AFTER INSERT ON objects BEGIN
    UPDATE counters SET value = value + NEW.size WHERE name = 'total_size';
    UPDATE counters SET value = value + 1 WHERE name = 'objects'; END;
CREATE TRIGGER IF NOT EXISTS objects_del AFTER DELETE ON objects BEGIN
    UPDATE counters SET value = value - OLD.size WHERE name = 'total_size';
    UPDATE counters SET value = value - 1 WHERE name = 'objects'; END;
CREATE TRIGGER IF NOT EXISTS keys_ins AFTER INSERT ON keys BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'entries'; END;
CREATE TRIGGER IF NOT EXISTS keys_del AFTER DELETE ON keys BEGIN
    UPDATE counters SET value = value - 1 WHERE name = 'entries'; END;
CREATE TRIGGER IF NOT EXISTS buckets_ins AFTER INSERT ON buckets BEGIN
    UPDATE counters SET value = value + NEW.size WHERE name = 'bucket_size'; END;
CREATE TRIGGER IF NOT EXISTS buckets_upd AFTER UPDATE OF size ON buckets BEGIN
    UPDATE counters SET value = value - OLD.size + NEW.size WHERE name = 'bucket_size'; END;
CREATE TRIGGER IF NOT EXISTS buckets_del AFTER DELETE ON buckets BEGIN
    UPDATE counters SET value = value - OLD.size WHERE name = 'bucket_size'; END;
"""


def _v1(conn: sqlite3.Connection) -> None:
    for stmt in statements(_V1):
        conn.execute(stmt)
    for name in COUNTERS + TOTALS:
        conn.execute("INSERT OR IGNORE INTO counters(name, value) VALUES (?, 0)", (name,))


def statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (triggers contain ';')."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return out


def _v2(conn: sqlite3.Connection) -> None:
    """objects.private: an object stored private (a download behind credentials) never leaves
    this machine. Before v2 the only private objects were those of ``fetch-private:`` keys."""
    conn.execute("ALTER TABLE objects ADD COLUMN private INTEGER NOT NULL DEFAULT 0")
    conn.execute("UPDATE objects SET private = 1 WHERE digest IN "
                 "(SELECT digest FROM keys WHERE substr(key, 1, 14) = 'fetch-private:')")


MIGRATIONS = [_v1, _v2]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations this index lacks (caller holds a write transaction)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.OperationalError(
            f"index schema {version} is newer than this pkgcache's ({SCHEMA_VERSION}): a newer "
            "release wrote it; the cache is off until that release is installed again")
    for step in MIGRATIONS[version:]:
        step(conn)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
