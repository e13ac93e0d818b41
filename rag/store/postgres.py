"""PostgreSQL docstore: the same truth as `rag.store.docstore.Docstore`, in a server database that
API replicas on several hosts share (`RAG_DOCSTORE_URL=postgresql://…`).

The interface, ids and guarantees are the SQLite docstore's: every write is one transaction that
also bumps the generation (a row of its own table, so replicas can watch it with one cheap query);
chunk and sentence ids come from identity sequences, never reused, so a stale id points at nothing;
vectors are float32 bytes (`bytea`). A connection pool (psycopg_pool) serves every thread; a
connection found dead (the server restarted) is replaced, and while the server cannot be reached
every call raises `DocstoreUnavailable` (HTTP 503 + Retry-After), never a half-done write.

The schema is the service's own: `schema_migrations` records each version applied; opening the
docstore applies the missing ones under a transaction-scoped advisory lock, so replicas starting
together migrate once (`rag db upgrade` does the same on its own). Writer exclusion between
processes and hosts is a session advisory lock (`writer_lock`), held for the whole write.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time as clock
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from rag.errors import (
    ArticleNotFound,
    DocstoreUnavailable,
    IndexMismatch,
    SourceNotFound,
    WriterBusy,
)
from rag.store.docstore import Embedded, _holding_chunks
from rag.types import (
    Article,
    ArticlePage,
    ArticleSummary,
    Facets,
    Feedback,
    Filters,
    Passage,
    Source,
    SourceItem,
    Span,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

# Each migration is applied once, in order, in one transaction with its row in schema_migrations.
# Column names are SQLite's (quoted "end"), so that the two docstores read alike.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, """
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE generation (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),   -- a single row
    value bigint NOT NULL
);
INSERT INTO generation VALUES (true, 0);
CREATE TABLE articles (
    id text PRIMARY KEY,
    title text NOT NULL,
    text text NOT NULL,
    source text,
    url text,
    published_at timestamptz,
    category text,
    content_hash text NOT NULL,
    origin text NOT NULL,
    ingested_at timestamptz NOT NULL
);
CREATE INDEX articles_category ON articles(category);
CREATE INDEX articles_source ON articles(source);
CREATE INDEX articles_published ON articles(published_at);
CREATE TABLE chunks (
    rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- the BM25 id; never reused
    id text NOT NULL UNIQUE,                                 -- "{article_id}:{n}"
    article_id text NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    n integer NOT NULL,
    start integer NOT NULL,
    "end" integer NOT NULL,
    text text NOT NULL,
    text_hash text NOT NULL,
    vector bytea NOT NULL
);
CREATE INDEX chunks_article ON chunks(article_id);
CREATE INDEX chunks_text_hash ON chunks(text_hash);
CREATE TABLE sentences (
    rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- the FAISS / Qdrant id
    article_id text NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    start integer NOT NULL,
    "end" integer NOT NULL,
    text_hash text,
    vector bytea,
    UNIQUE (article_id, start)
);
CREATE INDEX sentences_text_hash ON sentences(text_hash);
"""),
    # The SQLite docstore's schema 3: the articles' author and where their date came from, the
    # sources `rag serve` polls with what each listed, and readers' feedback on answers.
    (2, """
ALTER TABLE articles ADD COLUMN author text, ADD COLUMN date_source text;
CREATE TABLE sources (
    id text PRIMARY KEY,
    url text NOT NULL UNIQUE,
    every_s integer NOT NULL,
    category text,
    added_at timestamptz NOT NULL,
    etag text,                          -- the source's validators, for conditional requests
    last_modified text,
    last_fetched_at timestamptz,
    last_new_article_at timestamptz,
    last_error text,                    -- NULL once a poll succeeds again
    last_error_at timestamptz,
    failures integer NOT NULL DEFAULT 0,
    next_poll_at timestamptz NOT NULL
);
CREATE INDEX sources_next_poll ON sources(next_poll_at);
CREATE TABLE source_items (
    source_id text NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    url text NOT NULL,
    signature text NOT NULL,
    etag text,
    last_modified text,
    article_id text,
    PRIMARY KEY (source_id, url)
);
CREATE TABLE feedback (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL,
    question text NOT NULL,
    answer text NOT NULL,
    citations json NOT NULL,            -- json, not jsonb: the citations come back as the API gave them
    backend text NOT NULL,
    verdict text NOT NULL CHECK (verdict IN ('up', 'down')),
    comment text,
    key text                            -- the API key's label, never the key
);
CREATE INDEX feedback_created ON feedback(created_at);
"""),
    # One story, one copy: each article's Article.text_key (filled in for stored articles by
    # _fill_text_keys, in the same transaction: the key is a Python hash of case-folded words).
    (3, """
ALTER TABLE articles ADD COLUMN text_key text;
CREATE INDEX articles_text_key ON articles(text_key);
"""),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

# Advisory lock keys (any two bigints the application owns): schema migrations, and the writer.
_MIGRATION_LOCK = 0x7261_6700_0001
_WRITER_LOCK = 0x7261_6700_0002


def redacted(url: str) -> str:
    """The URL without its password, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=netloc[0].split(":", 1)[0] + ":***@" + netloc[1]))


class PostgresDocstore:
    """The docstore in PostgreSQL. Thread-safe: each call borrows a pooled connection."""

    def __init__(self, url: str, pool_size: int = 10, connect_timeout_s: float = 2.0) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self.name = redacted(url)
        self._psycopg = psycopg
        self._pool: ConnectionPool = ConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, timeout=connect_timeout_s,
            # A pooled connection is checked before use: after a server restart the dead ones are
            # replaced instead of failing the request that drew them.
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(connect_timeout_s))},
            reconnect_timeout=365 * 24 * 3600,  # keep trying while the server is down; calls get 503
            name="rag-docstore",
        )
        self._pool.open(wait=False)
        self._writer: psycopg.Connection | None = None  # the connection holding the writer lock
        self._writer_thread: int | None = None  # and the thread that took it
        self._writer_guard = threading.Lock()
        try:
            self.applied = self.upgrade()  # the migrations this opening applied
        except BaseException:
            self.close()
            raise

    # -- connections ---------------------------------------------------------------------------
    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        """A pooled connection (autocommit: each statement is its own transaction unless inside
        `_transaction`/`_snapshot`); an unreachable server becomes DocstoreUnavailable."""
        conn, pooled = self._borrow()
        try:
            yield conn
        except self._psycopg.OperationalError as error:
            raise self._unavailable(error) from error
        finally:
            if pooled:
                self._pool.putconn(conn)  # rolled back if need be; discarded if broken
            else:
                conn.close()

    def _borrow(self) -> tuple[psycopg.Connection, bool]:
        """(a connection, whether it is the pool's). When the pool has none to give, it may be
        waiting out its reconnection back-off (doubled after each failure: tens of seconds after
        a long outage) while the server is back already: a connection of our own finds out at
        once, so recovery does not wait for the pool."""
        from psycopg_pool import PoolTimeout

        try:
            return self._pool.getconn(), True
        except PoolTimeout:
            pass
        except self._psycopg.OperationalError as error:
            raise self._unavailable(error) from error
        try:
            return self._psycopg.connect(self.url, autocommit=True, connect_timeout=2), False
        except self._psycopg.OperationalError as error:
            raise self._unavailable(error) from error

    def _unavailable(self, error: BaseException) -> DocstoreUnavailable:
        return DocstoreUnavailable(f"the docstore at {self.name} cannot be reached: {_first_line(error)}")

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        """A write transaction. The thread holding the writer lock writes on the lock's own
        connection: if that session died (a server restart), the lock died with it and so does
        the write, instead of going on beside a writer that has taken the lock since."""
        if self._writer is not None and self._writer_thread == threading.get_ident():
            try:
                with self._writer.transaction():
                    yield self._writer
            except self._psycopg.OperationalError as error:
                raise DocstoreUnavailable(f"the docstore at {self.name} was lost during a write (and the writer "
                                          f"lock with it): {_first_line(error)}") from error
            return
        with self._conn() as conn, conn.transaction():
            yield conn

    @contextmanager
    def _snapshot(self) -> Iterator[psycopg.Connection]:
        """A read transaction: several queries see one consistent state."""
        with self._conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._conn() as conn:
            return conn.execute(sql, params).fetchall()

    def upgrade(self) -> list[int]:
        """Apply the migrations this database lacks (each in its own transaction, under an
        advisory lock so that replicas starting at once do it once); the versions applied."""
        applied: list[int] = []
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                         "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            have = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            if have and max(have) > SCHEMA_VERSION:
                raise IndexMismatch(f"the docstore at {self.name} is at schema version {max(have)}, newer "
                                    f"than this service's {SCHEMA_VERSION}; upgrade the service")
            for version, ddl in MIGRATIONS:
                if version not in have:
                    with conn.transaction():  # a savepoint: one migration, whole or not at all
                        conn.execute(ddl)
                        if version == 3:
                            _fill_text_keys(conn)
                        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                    applied.append(version)
        if applied:
            log.info("docstore %s migrated to schema %s", self.name, applied[-1])
        return applied

    def schema_version(self) -> int:
        return int(self._all("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0])

    # -- writer exclusion ----------------------------------------------------------------------
    def try_writer_lock(self) -> bool:
        """Take the writer lock (a session advisory lock on a connection of its own, held until
        `release_writer_lock`); False if another session holds it."""
        with self._writer_guard:
            if self._writer is not None:
                return False
            try:
                conn = self._psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            except self._psycopg.OperationalError as error:
                raise self._unavailable(error) from error
            try:
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", (_WRITER_LOCK,)).fetchone()[0]
            except self._psycopg.OperationalError as error:
                conn.close()
                raise self._unavailable(error) from error
            if not got:
                conn.close()
                return False
            self._writer, self._writer_thread = conn, threading.get_ident()
            return True

    def release_writer_lock(self) -> None:
        with self._writer_guard:
            conn, self._writer, self._writer_thread = self._writer, None, None
        if conn is not None:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_WRITER_LOCK,))
            except self._psycopg.Error:
                pass  # the session is gone, and its lock with it
            finally:
                conn.close()

    @contextmanager
    def writer_lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the writer lock for the block; WriterBusy if it is not free within `timeout`."""
        deadline = None if timeout is None else clock.monotonic() + timeout
        while not self.try_writer_lock():
            if deadline is not None and clock.monotonic() > deadline:
                raise WriterBusy("another process (an ingest run, the writer replica?) is writing to the "
                                 "docstore; retry shortly")
            clock.sleep(0.05)
        try:
            yield
        finally:
            self.release_writer_lock()

    # -- meta ----------------------------------------------------------------------------------
    def generation(self) -> int:
        return int(self._all("SELECT value FROM generation")[0][0])

    def bind_model(self, model: str, dimension: int) -> None:
        """Record the embedding model on first use; refuse a docstore embedded by another model."""
        with self._transaction() as conn:
            conn.execute("LOCK TABLE meta IN SHARE ROW EXCLUSIVE MODE")  # two first users: one records
            rows = dict(conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('embedding_model', 'dimension')").fetchall())
            if not rows:
                conn.execute("INSERT INTO meta VALUES ('embedding_model', %s), ('dimension', %s)",
                             (model, str(dimension)))
                return
        if rows.get("embedding_model") != model or int(rows.get("dimension", -1)) != dimension:
            raise IndexMismatch(
                f"the docstore at {self.name} was built with embedding model "
                f"{rows.get('embedding_model')!r} ({rows.get('dimension')} dimensions), but this service "
                f"embeds with {model!r} ({dimension} dimensions); use another database or re-ingest "
                f"the articles into a fresh one"
            )

    def latest_published(self) -> datetime | None:
        """The newest article date stored (an asking date at or after it filters nothing out)."""
        rows = self._all("SELECT max(published_at) FROM articles")
        return _utc(rows[0][0]) if rows and rows[0][0] else None

    def has_dated_between(self, start: datetime | None, end: datetime | None) -> bool:
        """Whether an article is dated in [start, end) (None: unbounded)."""
        where, params = ["published_at IS NOT NULL"], []
        if start is not None:
            where.append("published_at >= %s")
            params.append(start)
        if end is not None:
            where.append("published_at < %s")
            params.append(end)
        return bool(self._all(f"SELECT 1 FROM articles WHERE {' AND '.join(where)} LIMIT 1", params))

    def model(self) -> tuple[str, int] | None:
        rows = dict(self._all("SELECT key, value FROM meta WHERE key IN ('embedding_model', 'dimension')"))
        return (rows["embedding_model"], int(rows["dimension"])) if len(rows) == 2 else None

    # -- reads ---------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        with self._snapshot() as conn:
            articles = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
            chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return articles, chunks

    def mentioning(self, term: str, filters: Filters, limit: int = 20) -> list[tuple[str, str, str]]:
        """(id, title, text) of up to `limit` articles inside `filters` whose title or text holds
        `term`, case aside (a scan: for refusals, not for every question)."""
        where, params = _filter_sql(filters)
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", term) + "%"
        where += (" AND " if where else " WHERE ") + "(a.title ILIKE %s OR a.text ILIKE %s)"
        return [tuple(r) for r in self._all("SELECT a.id, a.title, a.text FROM articles a" + where + " LIMIT %s",
                                            [*params, pattern, pattern, limit])]

    def holders(self, text_keys: Sequence[str]) -> dict[str, str]:
        """text key → id of the stored article with it (the first id, should several hold it)."""
        return dict(self._all('SELECT text_key, min(id COLLATE "C") FROM articles WHERE text_key = ANY(%s) '
                              "GROUP BY text_key", (sorted(set(text_keys)),)))

    def content_hashes(self, article_ids: Sequence[str]) -> dict[str, str]:
        return dict(self._all("SELECT id, content_hash FROM articles WHERE id = ANY(%s)", (list(article_ids),)))

    def cached_vectors(self, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors already computed for sentence texts with these hashes (the embedding cache)."""
        rows = self._all("SELECT DISTINCT ON (text_hash) text_hash, vector FROM sentences "
                         "WHERE text_hash = ANY(%s) AND vector IS NOT NULL", (sorted(set(text_hashes)),))
        return {h: np.frombuffer(blob, dtype=np.float32) for h, blob in rows}

    def sentences_without_vectors(self, limit: int) -> list[tuple[int, str]]:
        return [(r, t) for r, t in self._all(
            'SELECT s.rowid, substr(a.text, s.start + 1, s."end" - s.start) FROM sentences s '
            "JOIN articles a ON a.id = s.article_id WHERE s.vector IS NULL ORDER BY s.rowid LIMIT %s", (limit,))]

    def set_sentence_vectors(self, rows: Sequence[tuple[int, str, np.ndarray]]) -> int:
        with self._transaction() as conn:
            with conn.cursor() as cur:
                cur.executemany("UPDATE sentences SET text_hash=%s, vector=%s WHERE rowid=%s",
                                [(h, _blob(v), r) for r, h, v in rows])
            return _bump(conn)

    def get_article(self, article_id: str) -> Article:
        rows = self._all(f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id=%s", (article_id,))
        if not rows:
            raise ArticleNotFound(article_id)
        return _article(rows[0])

    def list_articles(self, filters: Filters, query: str | None = None, limit: int = 50,
                      offset: int = 0) -> ArticlePage:
        """Articles passing the filters whose title or id holds `query` (any case), newest first
        (undated last, then by title), without their text: one page and the total, read together."""
        where, params = _filter_sql(filters)
        if query and query.strip():
            # ILIKE is case-blind for every letter (SQLite's LIKE only for ASCII ones); the
            # wildcards in the query are escaped.
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", query.strip()) + "%"
            where += (" AND " if where else " WHERE ") + "(a.title ILIKE %s OR a.id ILIKE %s)"
            params += [pattern, pattern]
        with self._snapshot() as conn:
            total = conn.execute("SELECT count(*) FROM articles a" + where, params).fetchone()[0]
            rows = conn.execute(
                "SELECT a.id, a.title, a.source, a.url, a.published_at, a.category, a.ingested_at FROM articles a"
                + where + " ORDER BY a.published_at IS NULL, a.published_at DESC, a.title COLLATE \"C\", "
                "a.id COLLATE \"C\" LIMIT %s OFFSET %s", [*params, limit, offset]).fetchall()
        return ArticlePage(total, offset, tuple(
            ArticleSummary(id=r[0], title=r[1], source=r[2], url=r[3], published_at=_utc(r[4]), category=r[5],
                           ingested_at=_utc(r[6])) for r in rows))

    def facets(self) -> Facets:
        """Categories and sources with their article counts (most first), and the span of dates."""
        with self._snapshot() as conn:
            categories = tuple(conn.execute(
                "SELECT category, count(*) AS n FROM articles WHERE category IS NOT NULL "
                'GROUP BY category ORDER BY n DESC, category COLLATE "C"').fetchall())
            sources = tuple(conn.execute(
                "SELECT source, count(*) AS n FROM articles WHERE source IS NOT NULL "
                'GROUP BY source ORDER BY n DESC, source COLLATE "C"').fetchall())
            first, last, articles, dated = conn.execute(
                "SELECT min(published_at), max(published_at), count(*), count(published_at) FROM articles"
            ).fetchone()
        return Facets(categories, sources, _utc(first), _utc(last), articles, articles - dated)

    def feedback(self, since: datetime | None = None) -> list[Feedback]:
        """Stored feedback, oldest first; only that given at or after `since` if it is set."""
        sql = "SELECT id, created_at, question, answer, citations, backend, verdict, comment, key FROM feedback"
        params: list[datetime] = []
        if since is not None:
            sql += " WHERE created_at >= %s"
            params.append(since if since.tzinfo else since.replace(tzinfo=UTC))
        return [Feedback(id=r[0], created_at=_utc(r[1]), question=r[2], answer=r[3], citations=tuple(r[4]),
                         backend=r[5], verdict=r[6], comment=r[7], key=r[8])
                for r in self._all(sql + " ORDER BY id", params)]

    def rowids(self) -> np.ndarray:
        return np.array([r[0] for r in self._all("SELECT rowid FROM chunks ORDER BY rowid")], dtype=np.int64)

    def sentence_rowids(self) -> np.ndarray:
        return np.array([r[0] for r in self._all(
            "SELECT rowid FROM sentences WHERE vector IS NOT NULL ORDER BY rowid")], dtype=np.int64)

    def sentence_metadata(self, rowids: Sequence[int]) -> dict[int, dict[str, str | None]]:
        rows = self._all(
            "SELECT s.rowid, a.id, a.category, a.source, a.published_at FROM sentences s "
            "JOIN articles a ON a.id = s.article_id WHERE s.rowid = ANY(%s)", (_ints(rowids),))
        return {rowid: {"article_id": article_id, "category": category, "source": source,
                        "published_at": _iso(published_at)}
                for rowid, article_id, category, source, published_at in rows}

    def sentence_chunks(self, sentences: np.ndarray | None = None) -> dict[int, tuple[int, ...]]:
        """Sentence rowid → rowids of the chunks holding it, for every embedded sentence or only
        for `sentences` (the same sweep per article as the SQLite docstore)."""
        query = ('SELECT 0, s.rowid, s.article_id, s.start, s."end" FROM sentences s WHERE s.vector IS NOT NULL{} '
                 'UNION ALL SELECT 1, c.rowid, c.article_id, c.start, c."end" FROM chunks c{}')
        if sentences is None:
            rows = self._all(query.format("", ""))
        else:
            ids = _ints(sentences)
            rows = self._all(query.format(
                " AND s.rowid = ANY(%s)",
                " WHERE c.article_id IN (SELECT article_id FROM sentences WHERE rowid = ANY(%s))"), (ids, ids))
        spans: dict[str, tuple[list, list]] = {}
        for is_chunk, rowid, article_id, start, end in rows:
            spans.setdefault(article_id, ([], []))[is_chunk].append((start, end, rowid))
        out: dict[int, tuple[int, ...]] = {}
        for sentence_rows, chunk_rows in spans.values():
            out.update(_holding_chunks(sentence_rows, chunk_rows))
        return out

    def chunk_articles(self, chunks: np.ndarray | None = None) -> dict[int, str]:
        if chunks is None:
            return dict(self._all("SELECT rowid, article_id FROM chunks"))
        return dict(self._all("SELECT rowid, article_id FROM chunks WHERE rowid = ANY(%s)", (_ints(chunks),)))

    def integrity_problems(self) -> list[str]:
        """Articles without chunks, and chunk ids that are not `{article_id}:{n}` for n = 0, 1, …
        (PostgreSQL checks its own pages: checksums, WAL)."""
        with self._snapshot() as conn:
            bare = conn.execute("SELECT count(*) FROM articles a WHERE NOT EXISTS "
                                "(SELECT 1 FROM chunks c WHERE c.article_id = a.id)").fetchone()[0]
            misnamed = conn.execute("SELECT count(*) FROM chunks WHERE id != article_id || ':' || n").fetchone()[0]
            gapped = conn.execute("SELECT count(*) FROM (SELECT article_id FROM chunks GROUP BY article_id "
                                  "HAVING min(n) != 0 OR max(n) != count(*) - 1) g").fetchone()[0]
        problems = []
        if bare:
            problems.append(f"{bare} articles have no chunks")
        if misnamed:
            problems.append(f"{misnamed} chunks have an id other than article_id:n")
        if gapped:
            problems.append(f"{gapped} articles have chunks numbered with gaps or repeats")
        return problems

    def chunk_ids_of(self, article_id: str) -> list[str]:
        return [r[0] for r in self._all("SELECT id FROM chunks WHERE article_id=%s ORDER BY n", (article_id,))]

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self._all("SELECT rowid, vector FROM sentences WHERE vector IS NOT NULL ORDER BY rowid")
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return (np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1))

    def vectors_for(self, rowids: np.ndarray) -> np.ndarray:
        found, vectors = self.sentence_vectors(rowids)
        return vectors if len(found) else np.zeros((0, 0), dtype=np.float32)

    def sentence_vectors(self, rowids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rowids found, their vectors) in the order asked; rowids without a vector are left out."""
        asked = _ints(rowids)
        rows = dict(self._all("SELECT rowid, vector FROM sentences WHERE rowid = ANY(%s) AND vector IS NOT NULL",
                              (asked,)))
        found = [i for i in asked if i in rows]
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        vectors = np.frombuffer(b"".join(rows[i] for i in found), dtype=np.float32).reshape(len(found), -1)
        return np.array(found, dtype=np.int64), vectors

    def rowids_and_texts(self) -> tuple[np.ndarray, list[str]]:
        rows = self._all("SELECT c.rowid, a.title || E'\\n' || c.text FROM chunks c "
                         "JOIN articles a ON a.id = c.article_id ORDER BY c.rowid")
        return np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows]

    def article_ids_matching(self, filters: Filters) -> list[str]:
        """Ids of the articles that pass the filters: a filtered search selects their rows from its
        snapshot (`Indexes.rowids_of`), far cheaper than reading every matching row's id here."""
        where, params = _filter_sql(filters)
        sql = "SELECT a.id FROM articles a" + where
        return [r[0] for r in self._all(sql, params)]

    def sentence_rowids_matching(self, filters: Filters) -> np.ndarray:
        where, params = _filter_sql(filters)
        rows = self._all("SELECT s.rowid FROM sentences s JOIN articles a ON a.id = s.article_id" + where, params)
        return np.array([r[0] for r in rows], dtype=np.int64)

    def chunk_vectors_matching(self, filters: Filters) -> tuple[np.ndarray, list[str], np.ndarray]:
        where, params = _filter_sql(filters)
        rows = self._all("SELECT c.rowid, c.article_id, c.vector FROM chunks c JOIN articles a ON a.id = c.article_id"
                         + where + " ORDER BY c.rowid", params)
        if not rows:
            return np.zeros(0, dtype=np.int64), [], np.zeros((0, 0), dtype=np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        return ids, [r[1] for r in rows], vectors

    def articles_with_sentences(self, article_ids: Sequence[str]) -> list[tuple[Article, list[Span]]]:
        """Articles (in the order asked; ids no longer present are skipped) with their sentence
        spans in text order, read in one transaction."""
        ids = list(article_ids)
        with self._snapshot() as conn:
            articles = {row[0]: _article(row) for row in conn.execute(
                f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id = ANY(%s)", (ids,))}
            spans: dict[str, list[Span]] = {}
            for article_id, start, end in conn.execute(
                    'SELECT article_id, start, "end" FROM sentences WHERE article_id = ANY(%s) '
                    "ORDER BY article_id, start", (list(articles),)):
                spans.setdefault(article_id, []).append(Span(start, end))
        return [(articles[i], spans.get(i, [])) for i in ids if i in articles]

    def hydrate(self, rowids: Sequence[int]) -> dict[int, Passage]:
        """Chunks by rowid as passages (score 0) with article metadata and sentences, read in one
        transaction; rowids that no longer exist are absent."""
        if not rowids:
            return {}
        with self._snapshot() as conn:
            rows = conn.execute(
                'SELECT c.rowid, c.id, c.article_id, a.title, c.text, c.start, c."end", a.source, a.url, '
                "a.published_at, a.category FROM chunks c JOIN articles a ON a.id = c.article_id "
                "WHERE c.rowid = ANY(%s)", (_ints(rowids),)).fetchall()
            sentences: dict[int, list[Span]] = {r[0]: [] for r in rows}
            for chunk, start, end in conn.execute(
                    'SELECT c.rowid, s.start, s."end" FROM chunks c JOIN sentences s ON s.article_id = c.article_id '
                    'AND s.start >= c.start AND s."end" <= c."end" WHERE c.rowid = ANY(%s) ORDER BY c.rowid, s.start',
                    (list(sentences),)):
                sentences[chunk].append(Span(start, end))
        return {
            r[0]: Passage(
                chunk_id=r[1], article_id=r[2], title=r[3], text=r[4], start=r[5], end=r[6],
                sentences=tuple(sentences[r[0]]), score=0.0, source=r[7], url=r[8],
                published_at=_utc(r[9]), category=r[10],
            )
            for r in rows
        }

    # -- writes --------------------------------------------------------------------------------
    def put(self, items: Iterable[Embedded]) -> int:
        """Insert or replace articles with their chunks and sentences in one transaction; a
        replaced article loses all its old chunks and sentences."""
        now = datetime.now(UTC)
        with self._transaction() as conn, conn.cursor() as cur:
            for item in items:
                article = item.article
                cur.execute("DELETE FROM articles WHERE id=%s", (article.id,))  # cascades
                cur.execute(
                    "INSERT INTO articles (id, title, text, source, url, published_at, category, content_hash, "
                    "origin, ingested_at, author, date_source, text_key) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (article.id, article.title, article.text, article.source, article.url,
                     article.published_at, article.category, article.content_hash, article.origin, now,
                     article.author, article.date_source, article.text_key))
                cur.executemany(
                    'INSERT INTO chunks (id, article_id, n, start, "end", text, text_hash, vector) '
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                    [(c.id, article.id, c.n, c.start, c.end, c.text, h, _blob(v))
                     for c, h, v in zip(item.chunks, item.chunk_hashes, item.chunk_vectors, strict=True)])
                cur.executemany(
                    'INSERT INTO sentences (article_id, start, "end", text_hash, vector) VALUES (%s,%s,%s,%s,%s)',
                    [(article.id, s.start, s.end, h, _blob(v))
                     for s, h, v in zip(item.sentences, item.sentence_hashes, item.sentence_vectors, strict=True)])
            return _bump(conn)

    def delete(self, article_id: str) -> int:
        with self._transaction() as conn:
            if conn.execute("DELETE FROM articles WHERE id=%s", (article_id,)).rowcount == 0:
                raise ArticleNotFound(article_id)
            return _bump(conn)

    def add_feedback(self, feedback: Feedback) -> Feedback:
        """Store a verdict on an answer; returns it with its id and time. The generation does not
        move: nothing derived reads feedback."""
        now = datetime.now(UTC)
        with self._transaction() as conn:
            stored_id = conn.execute(
                "INSERT INTO feedback (created_at, question, answer, citations, backend, verdict, comment, key) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id",
                (now, feedback.question, feedback.answer, json.dumps(list(feedback.citations), ensure_ascii=False),
                 feedback.backend, feedback.verdict, feedback.comment, feedback.key)).fetchone()[0]
        return dataclasses.replace(feedback, id=stored_id, created_at=now)

    # -- polled sources (not indexed: their writes leave the generation alone) -----------------------
    def add_source(self, source: Source) -> Source:
        """Store a source; one already there under that URL keeps its state and history and takes
        the new interval and category."""
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO sources (id, url, every_s, category, added_at, next_poll_at) VALUES (%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (url) DO UPDATE SET every_s=excluded.every_s, category=excluded.category "
                f"RETURNING {_SOURCE_COLUMNS}",
                (source.id, source.url, source.every_s, source.category, source.added_at,
                 source.next_poll_at)).fetchone()
        return _source(row)

    def sources(self) -> list[Source]:
        return [_source(row) for row in self._all(
            f'SELECT {_SOURCE_COLUMNS} FROM sources ORDER BY added_at, id COLLATE "C"')]

    def source(self, source_id: str) -> Source:
        rows = self._all(f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE id=%s", (source_id,))
        if not rows:
            raise SourceNotFound(source_id)
        return _source(rows[0])

    def remove_source(self, source_id: str) -> None:
        """Forget a source and what it listed (its articles stay: delete them one by one)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM source_items WHERE source_id=%s", (source_id,))
            if conn.execute("DELETE FROM sources WHERE id=%s", (source_id,)).rowcount == 0:
                raise SourceNotFound(source_id)

    def due_sources(self, now: datetime) -> list[Source]:
        return [_source(row) for row in self._all(
            f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE next_poll_at <= %s ORDER BY next_poll_at", (now,))]

    def record_poll(self, source: Source) -> None:
        """Save how a poll went (validators, times, error, failures, next poll) for a source still
        there (one removed meanwhile stays removed)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE sources SET etag=%s, last_modified=%s, last_fetched_at=%s, last_new_article_at=%s, "
                "last_error=%s, last_error_at=%s, failures=%s, next_poll_at=%s WHERE id=%s",
                (source.etag, source.last_modified, source.last_fetched_at, source.last_new_article_at,
                 source.last_error, source.last_error_at, source.failures, source.next_poll_at, source.id))

    def source_items(self, source_id: str) -> dict[str, SourceItem]:
        return {row[0]: SourceItem(*row) for row in self._all(
            "SELECT url, signature, etag, last_modified, article_id FROM source_items WHERE source_id=%s",
            (source_id,))}

    def put_source_items(self, source_id: str, items: Sequence[SourceItem]) -> None:
        """Remember items as seen, after their articles are committed: a crash in between only
        means fetching them again, and the unchanged articles are skipped then."""
        with self._transaction() as conn:
            # The source's row locked: a removal waits for these items instead of racing them.
            if conn.execute("SELECT 1 FROM sources WHERE id=%s FOR SHARE", (source_id,)).fetchone() is None:
                return  # removed while it was being polled
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO source_items (source_id, url, signature, etag, last_modified, article_id) "
                    "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (source_id, url) DO UPDATE SET "
                    "signature=excluded.signature, etag=excluded.etag, last_modified=excluded.last_modified, "
                    "article_id=excluded.article_id",
                    [(source_id, i.url, i.signature, i.etag, i.last_modified, i.article_id) for i in items])

    def close(self) -> None:
        self.release_writer_lock()
        self._pool.close()


_ARTICLE_COLUMNS = "id, title, text, source, url, published_at, category, origin, author, date_source"


def _fill_text_keys(conn: psycopg.Connection) -> None:
    rows = conn.execute("SELECT id, title, text FROM articles").fetchall()
    with conn.cursor() as cur:
        cur.executemany("UPDATE articles SET text_key=%s WHERE id=%s",
                        [(Article(i, title, text).text_key, i) for i, title, text in rows])


def _article(row: tuple) -> Article:
    return Article(id=row[0], title=row[1], text=row[2], source=row[3], url=row[4], published_at=_utc(row[5]),
                   category=row[6], origin=row[7], author=row[8], date_source=row[9] or "none")


_SOURCE_COLUMNS = ("id, url, every_s, category, added_at, etag, last_modified, last_fetched_at, last_new_article_at, "
                   "last_error, last_error_at, failures, next_poll_at")


def _source(row: tuple) -> Source:
    return Source(id=row[0], url=row[1], every_s=row[2], category=row[3], added_at=_utc(row[4]), etag=row[5],
                  last_modified=row[6], last_fetched_at=_utc(row[7]), last_new_article_at=_utc(row[8]),
                  last_error=row[9], last_error_at=_utc(row[10]), failures=row[11], next_poll_at=_utc(row[12]))


def _utc(value: datetime | None) -> datetime | None:
    """A timestamptz as the SQLite docstore reads its ISO strings back: in UTC."""
    return value.astimezone(UTC) if value else None


def _bump(conn: psycopg.Connection) -> int:
    # The row lock this takes also orders concurrent writers' commits.
    return int(conn.execute("UPDATE generation SET value = value + 1 RETURNING value").fetchone()[0])


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def _ints(ids: Iterable[int] | np.ndarray) -> list[int]:
    return [int(i) for i in ids]


def _iso(value: datetime | None) -> str | None:
    """As the SQLite docstore stores it: ISO 8601 in UTC (Qdrant payloads compare these)."""
    return value.astimezone(UTC).isoformat() if value else None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _filter_sql(filters: Filters) -> tuple[str, list]:
    """The SQLite docstore's filters, with timestamps: undated articles fail a date range (since,
    until) but pass a question's window and its asking date, which they are not known to be outside."""
    where: list[str] = []
    params: list = []
    if filters.category:
        where.append("a.category = %s")
        params.append(filters.category)
    if filters.source:
        where.append("a.source = %s")
        params.append(filters.source)
    if filters.since:
        where.append("a.published_at >= %s")
        params.append(datetime.combine(filters.since, time.min, UTC))
    if filters.until and filters.until < date.max:
        where.append("a.published_at < %s")
        params.append(datetime.combine(filters.until + timedelta(days=1), time.min, UTC))
    if filters.window_start or filters.window_end:  # an undated article is not known to be outside it
        inside = []
        if filters.window_start:
            inside.append("a.published_at >= %s")
            params.append(filters.window_start)
        if filters.window_end:
            inside.append("a.published_at < %s")
            params.append(filters.window_end)
        where.append(f"(a.published_at IS NULL OR ({' AND '.join(inside)}))")
    if filters.as_of:  # nothing dated after the asking date; an undated article is not after it
        where.append("(a.published_at IS NULL OR a.published_at <= %s)")
        params.append(filters.as_of)
    return (" WHERE " + " AND ".join(where)) if where else "", params
