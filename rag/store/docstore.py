"""SQLite docstore: the source of truth for articles, chunks, sentences and their vectors.

Every write is one transaction that also bumps `generation`, so a crash leaves either the old or
the new state, and the derived indexes (FAISS, BM25) can always be rebuilt from here. Chunk and
sentence rowids are AUTOINCREMENT, never reused: a stale id can only point at nothing, never at a
newer row. Vectors live here too so that rebuilding FAISS never needs the embedding model.

Each sentence is embedded once, on its own; FAISS holds the sentence vectors (a chunk scores its
best sentence), the answerer reads them instead of embedding at question time, and a chunk's
vector is the token-weighted mean of its sentences' (briefings group articles by it).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np

from rag.errors import ArticleNotFound, IndexMismatch, SourceNotFound
from rag.types import (
    Article,
    ArticlePage,
    ArticleSummary,
    Chunk,
    Facets,
    Feedback,
    Filters,
    Passage,
    Source,
    SourceItem,
    Span,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    source TEXT,
    url TEXT,
    published_at TEXT,          -- ISO 8601, UTC, so that string order is time order
    category TEXT,
    content_hash TEXT NOT NULL,
    origin TEXT NOT NULL,
    ingested_at TEXT NOT NULL,
    author TEXT,
    -- date_source: where published_at came from: record, meta, url, dateline (rag.ingest.dates),
    -- feed, sitemap (rag.ingest.fetch), or none. text_key: Article.text_key (one story, one copy,
    -- whatever its id).
    date_source TEXT NOT NULL DEFAULT 'none',
    text_key TEXT
);
CREATE INDEX IF NOT EXISTS articles_text_key ON articles(text_key);
CREATE INDEX IF NOT EXISTS articles_category ON articles(category);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE INDEX IF NOT EXISTS articles_published ON articles(published_at);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,   -- the FAISS / BM25 id
    id TEXT NOT NULL UNIQUE,                   -- "{article_id}:{n}", stable across rebuilds
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    text_hash TEXT NOT NULL,                   -- sha256 of the text
    vector BLOB NOT NULL                       -- float32, L2-normalised: the length-weighted
                                               -- mean of its sentences' vectors
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE INDEX IF NOT EXISTS chunks_text_hash ON chunks(text_hash);
CREATE TABLE IF NOT EXISTS sentences (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,   -- the FAISS id: dense search is by sentence
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text_hash TEXT,                            -- embedding cache key
    vector BLOB,                               -- float32, L2-normalised; NULL only in a docstore
                                               -- migrated from schema 1, until the next ingest
    UNIQUE (article_id, start)
);
CREATE INDEX IF NOT EXISTS sentences_text_hash ON sentences(text_hash);
CREATE TABLE IF NOT EXISTS sources (           -- feeds, sitemaps and pages polled by `rag serve`
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    every_s INTEGER NOT NULL,
    category TEXT,
    added_at TEXT NOT NULL,
    etag TEXT,                                 -- the source's validators, for conditional requests
    last_modified TEXT,
    last_fetched_at TEXT,                      -- last answer from the source (200 or 304)
    last_new_article_at TEXT,
    last_error TEXT,                           -- NULL once a poll succeeds again
    last_error_at TEXT,
    failures INTEGER NOT NULL DEFAULT 0,       -- polls failed in a row: the backoff's exponent
    next_poll_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS source_items (      -- what each source's feed listed, once its article is stored
    source_id TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    url TEXT NOT NULL,                         -- the item's link as the feed gives it
    signature TEXT NOT NULL,                   -- the entry's dates as the feed gives them: a change
                                               -- means the page is fetched again
    etag TEXT,
    last_modified TEXT,
    article_id TEXT,
    PRIMARY KEY (source_id, url)
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,                  -- ISO 8601, UTC
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,                   -- JSON list, as the API returned them
    backend TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('up', 'down')),
    comment TEXT,
    key TEXT                                   -- the API key's label, never the key
);
CREATE INDEX IF NOT EXISTS feedback_created ON feedback(created_at);
"""

# Schema 1 kept sentences as bare spans (no vectors, no rowid): the table is rebuilt around them,
# keeping every span, and their vectors are filled in by the next writer (`Indexer.backfill`).
_MIGRATE_1_TO_2 = """
ALTER TABLE sentences RENAME TO sentences_v1;
CREATE TABLE sentences (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text_hash TEXT,
    vector BLOB,
    UNIQUE (article_id, start)
);
INSERT INTO sentences (article_id, start, end) SELECT article_id, start, end FROM sentences_v1 ORDER BY article_id, start;
DROP TABLE sentences_v1;
UPDATE meta SET value = '2' WHERE key = 'schema_version';
"""

# Schema 3 adds the articles' author and where their date came from, the polled sources (created
# by _SCHEMA, which runs after this), and readers' feedback on answers. One transaction: a crash
# leaves schema 2 or schema 3. Before it, a date could only come from a record's `published_at` or,
# for an .html/.htm file, from the page's date metadata: that is what is filled in.
_ARTICLE_COLUMNS_OF_3 = {"author": "TEXT", "date_source": "TEXT NOT NULL DEFAULT 'none'"}
_MIGRATE_2_TO_3 = """
UPDATE articles SET date_source = CASE WHEN lower(origin) LIKE '%.htm' OR lower(origin) LIKE '%.html' THEN 'meta' ELSE 'record' END WHERE published_at IS NOT NULL AND (date_source IS NULL OR date_source = 'none');
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    backend TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('up', 'down')),
    comment TEXT,
    key TEXT
);
CREATE INDEX IF NOT EXISTS feedback_created ON feedback(created_at);
UPDATE meta SET value = '3' WHERE key = 'schema_version';
"""


@dataclass(frozen=True)
class Embedded:
    """An article ready to store: its chunks and its sentences (each once, in text order), with
    the text hash and vector of each."""

    article: Article
    chunks: Sequence[Chunk]
    chunk_hashes: Sequence[str]
    chunk_vectors: np.ndarray
    sentences: Sequence[Span]
    sentence_hashes: Sequence[str]
    sentence_vectors: np.ndarray


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


_ARTICLE_COLUMNS = "id, title, text, source, url, published_at, category, origin, author, date_source"


_SOURCE_COLUMNS = ("id, url, every_s, category, added_at, etag, last_modified, last_fetched_at, last_new_article_at, "
                   "last_error, last_error_at, failures, next_poll_at")


def _source(row: Sequence) -> Source:
    return Source(id=row[0], url=row[1], every_s=row[2], category=row[3], added_at=_parse_iso(row[4]), etag=row[5],
                  last_modified=row[6], last_fetched_at=_parse_iso(row[7]), last_new_article_at=_parse_iso(row[8]),
                  last_error=row[9], last_error_at=_parse_iso(row[10]), failures=row[11],
                  next_poll_at=_parse_iso(row[12]))


def _article(row: Sequence) -> Article:
    """An `articles` row read as `_ARTICLE_COLUMNS` → Article."""
    return Article(id=row[0], title=row[1], text=row[2], source=row[3], url=row[4],
                   published_at=_parse_iso(row[5]), category=row[6], origin=row[7], author=row[8],
                   date_source=row[9])


class Docstore:
    """The SQLite file. Thread-safe: each thread gets its own connection (WAL lets readers run
    beside one writer, in this process or another)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._migrate()
        self._db().executescript(_SCHEMA)  # executescript commits on its own: not in a transaction
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # -- connections ---------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives power loss
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several queries see one consistent state."""
        db = self._db()
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    def _migrate(self) -> None:
        db = self._db()
        columns = {row[1] for row in db.execute("PRAGMA table_info(sentences)")}
        if columns and "vector" not in columns:
            with self._transaction() as db:
                for statement in filter(str.strip, _MIGRATE_1_TO_2.split(";")):
                    db.execute(statement)
            log.info("docstore %s migrated to schema 2: sentence vectors are filled in by the next ingest",
                     self.path)
        version = self._schema_version()
        if version == 2:
            with self._transaction() as db:
                have = {row[1] for row in db.execute("PRAGMA table_info(articles)")}
                for column, kind in _ARTICLE_COLUMNS_OF_3.items():
                    if column not in have:
                        db.execute(f"ALTER TABLE articles ADD COLUMN {column} {kind}")
                for statement in filter(str.strip, _MIGRATE_2_TO_3.split(";")):
                    db.execute(statement)
            log.info("docstore %s migrated to schema 3: articles have an author and a date source; "
                     "sources and feedback tables", self.path)
            version = 3
        if version == 3:
            with self._transaction() as db:
                if "text_key" not in {row[1] for row in db.execute("PRAGMA table_info(articles)")}:
                    db.execute("ALTER TABLE articles ADD COLUMN text_key TEXT")
                rows = db.execute("SELECT id, title, text FROM articles").fetchall()
                db.executemany("UPDATE articles SET text_key=? WHERE id=?",
                               [(Article(i, title, text).text_key, i) for i, title, text in rows])
                db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
            log.info("docstore %s migrated to schema 4: text keys of %d articles", self.path, len(rows))
        elif version is not None and version > SCHEMA_VERSION:
            raise IndexMismatch(f"the docstore {self.path} has schema {version}, newer than this version "
                                f"of rag reads ({SCHEMA_VERSION}); upgrade rag")

    def _schema_version(self) -> int | None:
        """The recorded schema version; None for a new file (no meta table yet)."""
        db = self._db()
        if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is None:
            return None
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else None

    # -- meta ----------------------------------------------------------------------------------
    def generation(self) -> int:
        return int(self._db().execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    def bind_model(self, model: str, dimension: int) -> None:
        """Record the embedding model on first use; refuse a docstore embedded by another model."""
        with self._transaction() as db:
            rows = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('embedding_model', 'dimension')"))
            if not rows:
                db.execute("INSERT INTO meta VALUES ('embedding_model', ?), ('dimension', ?)", (model, str(dimension)))
                return
        if rows.get("embedding_model") != model or int(rows.get("dimension", -1)) != dimension:
            raise IndexMismatch(
                f"the index at {self.path.parent} was built with embedding model "
                f"{rows.get('embedding_model')!r} ({rows.get('dimension')} dimensions), but this service "
                f"embeds with {model!r} ({dimension} dimensions); use another RAG_INDEX_DIR or re-ingest "
                f"the articles into a fresh one"
            )

    # -- reads ---------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        with self._snapshot() as db:
            articles = db.execute("SELECT count(*) FROM articles").fetchone()[0]
            chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return articles, chunks

    def mentioning(self, term: str, filters: Filters, limit: int = 20) -> list[tuple[str, str, str]]:
        """(id, title, text) of up to `limit` articles inside `filters` whose title or text holds
        `term`, case aside (SQLite's LIKE, a scan: for refusals, not for every question)."""
        where, params = _filter_sql(filters)
        pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clause = (where + " AND " if where else "WHERE ") + "(a.title LIKE ? ESCAPE '\\' OR a.text LIKE ? ESCAPE '\\')"
        return self._db().execute(f"SELECT a.id, a.title, a.text FROM articles a {clause} LIMIT ?",
                                  [*params, pattern, pattern, limit]).fetchall()

    def holders(self, text_keys: Sequence[str]) -> dict[str, str]:
        """text key → id of the stored article with it (the first id, should several hold it)."""
        out: dict[str, str] = {}
        db = self._db()
        for batch in _batches(sorted(set(text_keys)), 500):
            marks = ",".join("?" * len(batch))
            for key, article_id in db.execute(
                    f"SELECT text_key, min(id) FROM articles WHERE text_key IN ({marks}) GROUP BY text_key", batch):
                out[key] = article_id
        return out

    def content_hashes(self, article_ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        db = self._db()
        for batch in _batches(article_ids, 500):
            marks = ",".join("?" * len(batch))
            out.update(db.execute(f"SELECT id, content_hash FROM articles WHERE id IN ({marks})", batch))
        return out

    def cached_vectors(self, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors already computed for sentence texts with these hashes (the embedding cache:
        the same text always has the same vector, whichever article it is in)."""
        out: dict[str, np.ndarray] = {}
        db = self._db()
        for batch in _batches(sorted(set(text_hashes)), 500):
            marks = ",".join("?" * len(batch))
            for text_hash, blob in db.execute(
                f"SELECT text_hash, vector FROM sentences WHERE text_hash IN ({marks}) AND vector IS NOT NULL",
                batch,
            ):
                out[text_hash] = np.frombuffer(blob, dtype=np.float32)
        return out

    def sentences_without_vectors(self, limit: int) -> list[tuple[int, str]]:
        """(rowid, text) of up to `limit` sentences that have no vector yet (schema-1 migrants)."""
        return self._db().execute(
            "SELECT s.rowid, substr(a.text, s.start + 1, s.end - s.start) FROM sentences s "
            "JOIN articles a ON a.id = s.article_id WHERE s.vector IS NULL ORDER BY s.rowid LIMIT ?", (limit,),
        ).fetchall()

    def set_sentence_vectors(self, rows: Sequence[tuple[int, str, np.ndarray]]) -> int:
        """Store (rowid, text hash, vector) of sentences; the generation moves, so the dense index
        is brought up to date."""
        with self._transaction() as db:
            db.executemany("UPDATE sentences SET text_hash=?, vector=? WHERE rowid=?",
                           [(h, np.ascontiguousarray(v, dtype=np.float32).tobytes(), r) for r, h, v in rows])
            return self._bump(db)

    def get_article(self, article_id: str) -> Article:
        row = self._db().execute(f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id=?", (article_id,)).fetchone()
        if row is None:
            raise ArticleNotFound(article_id)
        return _article(row)

    def list_articles(self, filters: Filters, query: str | None = None, limit: int = 50,
                      offset: int = 0) -> ArticlePage:
        """Articles passing the filters whose title or id holds `query` (any case), newest first
        (undated last, then by title), without their text: one page and the total, read together."""
        where, params = _filter_sql(filters)
        if query and query.strip():
            # LIKE is case-blind for ASCII letters only; the wildcards in the query are escaped.
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", query.strip()) + "%"
            where += (" AND " if where else " WHERE ") + "(a.title LIKE ? ESCAPE '\\' OR a.id LIKE ? ESCAPE '\\')"
            params += [pattern, pattern]
        with self._snapshot() as db:
            total = db.execute("SELECT count(*) FROM articles a" + where, params).fetchone()[0]
            rows = db.execute(
                "SELECT a.id, a.title, a.source, a.url, a.published_at, a.category, a.ingested_at FROM articles a"
                + where + " ORDER BY a.published_at IS NULL, a.published_at DESC, a.title, a.id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return ArticlePage(total, offset, tuple(
            ArticleSummary(id=r[0], title=r[1], source=r[2], url=r[3], published_at=_parse_iso(r[4]),
                           category=r[5], ingested_at=datetime.fromisoformat(r[6])) for r in rows))

    def facets(self) -> Facets:
        """Categories and sources with their article counts (most first), and the span of dates."""
        with self._snapshot() as db:
            categories = tuple(db.execute(
                "SELECT category, count(*) AS n FROM articles WHERE category IS NOT NULL "
                "GROUP BY category ORDER BY n DESC, category"))
            sources = tuple(db.execute(
                "SELECT source, count(*) AS n FROM articles WHERE source IS NOT NULL "
                "GROUP BY source ORDER BY n DESC, source"))
            first, last, articles, dated = db.execute(
                "SELECT min(published_at), max(published_at), count(*), count(published_at) FROM articles"
            ).fetchone()
        return Facets(categories, sources, _parse_iso(first), _parse_iso(last), articles, articles - dated)

    def feedback(self, since: datetime | None = None) -> list[Feedback]:
        """Stored feedback, oldest first; only that given at or after `since` if it is set."""
        sql = "SELECT id, created_at, question, answer, citations, backend, verdict, comment, key FROM feedback"
        params: list[str] = []
        if since is not None:
            sql += " WHERE created_at >= ?"
            params.append(_iso(since if since.tzinfo else since.replace(tzinfo=UTC)))
        return [Feedback(id=r[0], created_at=datetime.fromisoformat(r[1]), question=r[2], answer=r[3],
                         citations=tuple(json.loads(r[4])), backend=r[5], verdict=r[6], comment=r[7], key=r[8])
                for r in self._db().execute(sql + " ORDER BY id", params)]

    def latest_published(self) -> datetime | None:
        """The newest article date stored (an asking date at or after it filters nothing out)."""
        row = self._db().execute("SELECT max(published_at) FROM articles").fetchone()
        return _parse_iso(row[0]) if row and row[0] else None

    def has_dated_between(self, start: datetime | None, end: datetime | None) -> bool:
        """Whether an article is dated in [start, end) (None: unbounded)."""
        where, params = ["published_at IS NOT NULL"], []
        if start is not None:
            where.append("published_at >= ?")
            params.append(_iso(start))
        if end is not None:
            where.append("published_at < ?")
            params.append(_iso(end))
        return self._db().execute(f"SELECT 1 FROM articles WHERE {' AND '.join(where)} LIMIT 1",
                                  params).fetchone() is not None

    def model(self) -> tuple[str, int] | None:
        """The (embedding model, dimension) the docstore was built with, if any."""
        rows = dict(self._db().execute("SELECT key, value FROM meta WHERE key IN ('embedding_model', 'dimension')"))
        return (rows["embedding_model"], int(rows["dimension"])) if len(rows) == 2 else None

    def rowids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self._db().execute("SELECT rowid FROM chunks ORDER BY rowid")),
                           dtype=np.int64)

    def sentence_rowids(self) -> np.ndarray:
        """Rowids of the sentences that have a vector: the ids the dense index must hold."""
        return np.fromiter((r[0] for r in self._db().execute(
            "SELECT rowid FROM sentences WHERE vector IS NOT NULL ORDER BY rowid")), dtype=np.int64)

    def sentence_metadata(self, rowids: Sequence[int]) -> dict[int, dict[str, str | None]]:
        """Sentence rowid → its article's id and the fields filters read (a Qdrant payload);
        rowids no longer present are absent."""
        out: dict[int, dict[str, str | None]] = {}
        db = self._db()
        for batch in _batches([int(i) for i in rowids], 500):
            marks = ",".join("?" * len(batch))
            for rowid, article_id, category, source, published_at in db.execute(
                "SELECT s.rowid, a.id, a.category, a.source, a.published_at FROM sentences s "
                f"JOIN articles a ON a.id = s.article_id WHERE s.rowid IN ({marks})", batch,
            ):
                out[rowid] = {"article_id": article_id, "category": category, "source": source,
                              "published_at": published_at}
        return out

    def sentence_chunks(self, sentences: np.ndarray | None = None) -> dict[int, tuple[int, ...]]:
        """Sentence rowid → rowids of the chunks holding it (two where chunks overlap), for every
        embedded sentence or only for `sentences`."""
        # Joining on the offsets in SQL compared each sentence with every chunk of its article:
        # quadratic in one long article (4 minutes for a 4.8 MB one). Instead one statement reads
        # the sentences and their articles' chunks, and a sweep per article finds each sentence's
        # chunks among those starting at or before it.
        query = ("SELECT 0, s.rowid, s.article_id, s.start, s.end FROM sentences s WHERE s.vector IS NOT NULL{} "
                 "UNION ALL SELECT 1, c.rowid, c.article_id, c.start, c.end FROM chunks c{}")
        db = self._db()
        if sentences is None:
            statements = [(query.format("", ""), [])]
        else:
            statements = []
            for batch in _batches([int(i) for i in sentences], 500):
                marks = ",".join("?" * len(batch))
                statements.append((query.format(
                    f" AND s.rowid IN ({marks})",
                    f" WHERE c.article_id IN (SELECT article_id FROM sentences WHERE rowid IN ({marks}))"),
                    batch + batch))
        out: dict[int, tuple[int, ...]] = {}
        for statement, params in statements:
            spans: dict[str, tuple[list, list]] = {}
            for is_chunk, rowid, article_id, start, end in db.execute(statement, params):
                spans.setdefault(article_id, ([], []))[is_chunk].append((start, end, rowid))
            for sentence_rows, chunk_rows in spans.values():
                out.update(_holding_chunks(sentence_rows, chunk_rows))
        return out

    def chunk_articles(self, chunks: np.ndarray | None = None) -> dict[int, str]:
        """Chunk rowid → its article's id, for every chunk or only for `chunks` (retrieval weighs a
        passage by its article's other hits)."""
        return dict(self._rows_for("SELECT rowid, article_id FROM chunks WHERE 1", "rowid", chunks))

    def _rows_for(self, query: str, column: str, ids: np.ndarray | None, order: str = "") -> Iterator[tuple]:
        """The rows of `query` (which ends in a WHERE clause), all or those whose `column` is in `ids`."""
        db = self._db()
        if ids is None:
            yield from db.execute(f"{query} {order}")
            return
        for batch in _batches([int(i) for i in ids], 500):
            yield from db.execute(f"{query} AND {column} IN ({','.join('?' * len(batch))}) {order}", batch)

    def integrity_problems(self) -> list[str]:
        """What is wrong inside the docstore itself: SQLite's own check, articles without chunks,
        chunk ids that are not `{article_id}:{n}` for n = 0, 1, 2, ... (a doubled or half-written
        article would show here)."""
        with self._snapshot() as db:
            problems = [f"SQLite: {row[0]}" for row in db.execute("PRAGMA quick_check") if row[0] != "ok"]
            bare = db.execute("SELECT count(*) FROM articles a WHERE NOT EXISTS "
                              "(SELECT 1 FROM chunks c WHERE c.article_id = a.id)").fetchone()[0]
            misnamed = db.execute("SELECT count(*) FROM chunks WHERE id != article_id || ':' || n").fetchone()[0]
            gapped = db.execute("SELECT count(*) FROM (SELECT article_id FROM chunks GROUP BY article_id "
                                "HAVING min(n) != 0 OR max(n) != count(*) - 1)").fetchone()[0]
        if bare:
            problems.append(f"{bare} articles have no chunks")
        if misnamed:
            problems.append(f"{misnamed} chunks have an id other than article_id:n")
        if gapped:
            problems.append(f"{gapped} articles have chunks numbered with gaps or repeats")
        return problems

    def chunk_ids_of(self, article_id: str) -> list[str]:
        return [r[0] for r in self._db().execute(
            "SELECT id FROM chunks WHERE article_id=? ORDER BY n", (article_id,))]

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(rowids, vectors) of every sentence that has one, for rebuilding FAISS."""
        rows = self._db().execute(
            "SELECT rowid, vector FROM sentences WHERE vector IS NOT NULL ORDER BY rowid").fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
        return ids, vectors

    def vectors_for(self, rowids: np.ndarray) -> np.ndarray:
        """Sentence vectors by rowid, in the order asked (rowids without one are skipped)."""
        found, vectors = self.sentence_vectors(rowids)
        return vectors if len(found) else np.zeros((0, 0), dtype=np.float32)

    def sentence_vectors(self, rowids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rowids found, their vectors) in the order asked; rowids without a vector (deleted, or
        not yet embedded) are left out. IVF-PQ re-scores its candidates with these."""
        found: list[int] = []
        blobs: list[bytes] = []
        db = self._db()
        for batch in _batches([int(i) for i in rowids], 500):
            marks = ",".join("?" * len(batch))
            rows = dict(db.execute(
                f"SELECT rowid, vector FROM sentences WHERE rowid IN ({marks}) AND vector IS NOT NULL", batch))
            for i in batch:
                if i in rows:
                    found.append(i)
                    blobs.append(rows[i])
        if not blobs:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)
        return np.array(found, dtype=np.int64), vectors

    def rowids_and_texts(self) -> tuple[np.ndarray, list[str]]:
        """Every chunk's rowid and text, in rowid order, for rebuilding BM25 (title included, as
        a headline's words are often the question's)."""
        rows = self._db().execute(
            "SELECT c.rowid, a.title || '\n' || c.text FROM chunks c JOIN articles a ON a.id = c.article_id "
            "ORDER BY c.rowid"
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows]

    def article_ids_matching(self, filters: Filters) -> list[str]:
        """Ids of the articles that pass the filters: a filtered search selects their rows from its
        snapshot (`Indexes.rowids_of`), far cheaper than reading every matching row's id here."""
        where, params = _filter_sql(filters)
        sql = "SELECT a.id FROM articles a" + where
        return [r[0] for r in self._db().execute(sql, params)]

    def sentence_rowids_matching(self, filters: Filters) -> np.ndarray:
        """Sentence rowids whose article passes the filters."""
        where, params = _filter_sql(filters)
        sql = "SELECT s.rowid FROM sentences s JOIN articles a ON a.id = s.article_id" + where
        return np.array([r[0] for r in self._db().execute(sql, params)], dtype=np.int64)

    def chunk_vectors_matching(self, filters: Filters) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(rowids, article ids, vectors) of every chunk whose article passes the filters, read in
        one transaction: briefings score all of them, not a top-k."""
        where, params = _filter_sql(filters)
        with self._snapshot() as db:
            rows = db.execute(
                "SELECT c.rowid, c.article_id, c.vector FROM chunks c JOIN articles a ON a.id = c.article_id"
                + where + " ORDER BY c.rowid", params,
            ).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), [], np.zeros((0, 0), dtype=np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.vstack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
        return ids, [r[1] for r in rows], vectors

    def articles_with_sentences(self, article_ids: Sequence[str]) -> list[tuple[Article, list[Span]]]:
        """Articles (in the order asked; ids no longer present are skipped) with their sentence
        spans in text order, read in one transaction."""
        out: list[tuple[Article, list[Span]]] = []
        with self._snapshot() as db:
            for article_id in article_ids:
                row = db.execute(f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id=?", (article_id,)).fetchone()
                if row is None:
                    continue
                spans = [Span(s, e) for s, e in db.execute(
                    "SELECT start, end FROM sentences WHERE article_id=? ORDER BY start", (article_id,))]
                out.append((_article(row), spans))
        return out

    def hydrate(self, rowids: Sequence[int]) -> dict[int, Passage]:
        """Chunks by rowid as passages (score 0) with article metadata and sentences, read in one
        transaction. Rowids
        that no longer exist (deleted or replaced since the index was built) are simply absent."""
        if not rowids:
            return {}
        marks = ",".join("?" * len(rowids))
        with self._snapshot() as db:
            rows = db.execute(
                "SELECT c.rowid, c.id, c.article_id, a.title, c.text, c.start, c.end, a.source, a.url, "
                f"a.published_at, a.category, a.date_source FROM chunks c JOIN articles a ON a.id = c.article_id "
                f"WHERE c.rowid IN ({marks})",
                list(rowids),
            ).fetchall()
            sentences: dict[int, tuple[Span, ...]] = {}
            for row in rows:
                sentences[row[0]] = tuple(
                    Span(s, e) for s, e in db.execute(
                        "SELECT start, end FROM sentences WHERE article_id=? AND start>=? AND end<=? "
                        "ORDER BY start",
                        (row[2], row[5], row[6]),
                    )
                )
        return {
            r[0]: Passage(
                chunk_id=r[1], article_id=r[2], title=r[3], text=r[4], start=r[5], end=r[6],
                sentences=sentences[r[0]], score=0.0, source=r[7], url=r[8],
                published_at=_parse_iso(r[9]), category=r[10], date_source=r[11],
            )
            for r in rows
        }

    # -- writes --------------------------------------------------------------------------------
    def put(self, items: Iterable[Embedded]) -> int:
        """Insert or replace articles with their chunks and sentences (text hashes and vectors
        aligned with them) in one transaction. A replaced article loses all its old chunks and
        sentences: none stays retrievable."""
        now = datetime.now(UTC).isoformat()
        with self._transaction() as db:
            for item in items:
                article, chunks, text_hashes, vectors = item.article, item.chunks, item.chunk_hashes, item.chunk_vectors
                db.execute("DELETE FROM articles WHERE id=?", (article.id,))  # cascades
                db.execute(
                    "INSERT INTO articles (id, title, text, source, url, published_at, category, content_hash, "
                    "origin, ingested_at, author, date_source, text_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (article.id, article.title, article.text, article.source, article.url,
                     _iso(article.published_at), article.category, article.content_hash,
                     article.origin, now, article.author, article.date_source, article.text_key),
                )
                db.executemany(
                    "INSERT INTO chunks (id, article_id, n, start, end, text, text_hash, vector) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    [
                        (c.id, article.id, c.n, c.start, c.end, c.text, h,
                         np.ascontiguousarray(v, dtype=np.float32).tobytes())
                        for c, h, v in zip(chunks, text_hashes, vectors, strict=True)
                    ],
                )
                db.executemany(
                    "INSERT INTO sentences (article_id, start, end, text_hash, vector) VALUES (?,?,?,?,?)",
                    [
                        (article.id, span.start, span.end, h, np.ascontiguousarray(v, dtype=np.float32).tobytes())
                        for span, h, v in zip(item.sentences, item.sentence_hashes, item.sentence_vectors,
                                              strict=True)
                    ],
                )
            return self._bump(db)

    def add_feedback(self, feedback: Feedback) -> Feedback:
        """Store a verdict on an answer; returns it with its id and time. The generation does not
        move: nothing derived reads feedback."""
        now = datetime.now(UTC)
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO feedback (created_at, question, answer, citations, backend, verdict, comment, key) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (now.isoformat(), feedback.question, feedback.answer,
                 json.dumps(list(feedback.citations), ensure_ascii=False), feedback.backend, feedback.verdict,
                 feedback.comment, feedback.key),
            )
        return dataclasses.replace(feedback, id=cursor.lastrowid, created_at=now)

    def delete(self, article_id: str) -> int:
        with self._transaction() as db:
            if db.execute("DELETE FROM articles WHERE id=?", (article_id,)).rowcount == 0:
                raise ArticleNotFound(article_id)
            return self._bump(db)

    # -- polled sources (not indexed: their writes leave the generation alone) -----------------------
    def add_source(self, source: Source) -> Source:
        """Store a source; one already there under that URL keeps its state and history and takes
        the new interval and category."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO sources (id, url, every_s, category, added_at, next_poll_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(url) DO UPDATE SET every_s=excluded.every_s, category=excluded.category",
                (source.id, source.url, source.every_s, source.category, _iso(source.added_at),
                 _iso(source.next_poll_at)))
            row = db.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE url=?", (source.url,)).fetchone()
        return _source(row)

    def sources(self) -> list[Source]:
        return [_source(row) for row in self._db().execute(f"SELECT {_SOURCE_COLUMNS} FROM sources ORDER BY added_at, id")]

    def source(self, source_id: str) -> Source:
        row = self._db().execute(f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE id=?", (source_id,)).fetchone()
        if row is None:
            raise SourceNotFound(source_id)
        return _source(row)

    def remove_source(self, source_id: str) -> None:
        """Forget a source and what it listed (its articles stay: delete them one by one)."""
        with self._transaction() as db:
            db.execute("DELETE FROM source_items WHERE source_id=?", (source_id,))
            if db.execute("DELETE FROM sources WHERE id=?", (source_id,)).rowcount == 0:
                raise SourceNotFound(source_id)

    def due_sources(self, now: datetime) -> list[Source]:
        return [_source(row) for row in self._db().execute(
            f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE next_poll_at <= ? ORDER BY next_poll_at", (_iso(now),))]

    def record_poll(self, source: Source) -> None:
        """Save how a poll went (validators, times, error, failures, next poll) for a source still
        there (one removed meanwhile stays removed)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE sources SET etag=?, last_modified=?, last_fetched_at=?, last_new_article_at=?, last_error=?, "
                "last_error_at=?, failures=?, next_poll_at=? WHERE id=?",
                (source.etag, source.last_modified, _iso(source.last_fetched_at), _iso(source.last_new_article_at),
                 source.last_error, _iso(source.last_error_at), source.failures, _iso(source.next_poll_at),
                 source.id))

    def source_items(self, source_id: str) -> dict[str, SourceItem]:
        return {row[0]: SourceItem(*row) for row in self._db().execute(
            "SELECT url, signature, etag, last_modified, article_id FROM source_items WHERE source_id=?",
            (source_id,))}

    def put_source_items(self, source_id: str, items: Sequence[SourceItem]) -> None:
        """Remember items as seen, after their articles are committed: a crash in between only
        means fetching them again, and the unchanged articles are skipped then."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM sources WHERE id=?", (source_id,)).fetchone() is None:
                return  # removed while it was being polled
            db.executemany(
                "INSERT INTO source_items (source_id, url, signature, etag, last_modified, article_id) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT(source_id, url) DO UPDATE SET signature=excluded.signature, "
                "etag=excluded.etag, last_modified=excluded.last_modified, article_id=excluded.article_id",
                [(source_id, i.url, i.signature, i.etag, i.last_modified, i.article_id) for i in items])

    @staticmethod
    def _bump(db: sqlite3.Connection) -> int:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
        return int(db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _filter_sql(filters: Filters) -> tuple[str, list[str]]:
    """A WHERE clause over `articles a` for the filters (empty when there are none). Articles
    without a date fail any date filter: nothing undated is passed off as inside a date range."""
    where, params = [], []
    if filters.category:
        where.append("a.category = ?")
        params.append(filters.category)
    if filters.source:
        where.append("a.source = ?")
        params.append(filters.source)
    if filters.since:
        where.append("a.published_at >= ?")
        params.append(_iso(datetime.combine(filters.since, time.min, UTC)))
    if filters.until and filters.until < date.max:  # up to date.max is no bound at all
        where.append("a.published_at < ?")
        params.append(_iso(datetime.combine(filters.until + timedelta(days=1), time.min, UTC)))
    if filters.window_start or filters.window_end:
        # A question's window keeps out every article dated outside it; an undated one is not known
        # to be (an encyclopedia's "in 1979" is what it says, not when it was written).
        inside = []
        if filters.window_start:
            inside.append("a.published_at >= ?")
            params.append(_iso(filters.window_start))
        if filters.window_end:
            inside.append("a.published_at < ?")
            params.append(_iso(filters.window_end))
        where.append(f"(a.published_at IS NULL OR ({' AND '.join(inside)}))")
    if filters.as_of:  # nothing dated after the asking date; an undated article is not after it
        where.append("(a.published_at IS NULL OR a.published_at <= ?)")
        params.append(_iso(filters.as_of))
    return (" WHERE " + " AND ".join(where)) if where else "", params


def _holding_chunks(sentences: list[tuple[int, int, int]], chunks: list[tuple[int, int, int]]
                    ) -> dict[int, tuple[int, ...]]:
    """Sentence rowid → rowids (ascending) of the chunks whose span holds it, for one article's
    (start, end, rowid) rows. Chunks sorted by start: those holding a sentence start at or before
    it, and the walk back stops once no earlier chunk reaches its end."""
    chunks = sorted(chunks)
    starts = [start for start, _, _ in chunks]
    reach = list(itertools.accumulate((end for _, end, _ in chunks), max))  # furthest end so far
    out: dict[int, tuple[int, ...]] = {}
    for start, end, sentence in sentences:
        holding = []
        j = bisect.bisect_right(starts, start) - 1
        while j >= 0 and reach[j] >= end:
            if chunks[j][1] >= end:
                holding.append(chunks[j][2])
            j -= 1
        if holding:
            out[sentence] = tuple(sorted(holding))
    return out


def _batches(items: Sequence, size: int) -> Iterator[list]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]

