"""`rag` command line: ingest, delete, ask, search, brief, serve, sources, check, eval, train. Errors
become messages only here."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Self

import click

from rag.api.schemas import (
    AskResponse,
    IngestResponse,
    SearchResponse,
    SearchResult,
    TimeWindowModel,
)
from rag.config import Settings
from rag.errors import RagError
from rag.types import Answer, Article, Filters, IngestFailure


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


def _service(ctx: click.Context, create: bool = False):
    """The service over the index; only commands that add articles (`create`) may start a new one."""
    from rag.service import build_service

    if "service" not in ctx.obj:
        index_dir = _settings(ctx).index_dir
        if not create and _settings(ctx).docstore_url is None and not (index_dir / "docstore.sqlite").exists():
            raise click.ClickException(
                f"no index at {index_dir}: add articles first with `rag ingest PATH`, or name another "
                "index with --index-dir or RAG_INDEX_DIR")
        try:
            ctx.obj["service"] = build_service(_settings(ctx))
        except RagError as error:
            raise click.ClickException(str(error)) from error
        ctx.call_on_close(ctx.obj["service"].close)
    return ctx.obj["service"]


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not a date (expected YYYY-MM-DD): {value!r}") from None


_AS_OF = click.option("--as-of", help="The asking date, YYYY-MM-DD or an ISO datetime (default now, in "
                                         "RAG_TIMEZONE): time words are read against it, nothing after it is used")


def _filter_options(command):
    for option in reversed([
        click.option("--category", help="Only articles of this category"),
        click.option("--source", help="Only articles from this source"),
        click.option("--since", callback=_date, help="Only articles published on or after YYYY-MM-DD"),
        click.option("--until", callback=_date, help="Only articles published on or before YYYY-MM-DD"),
        click.option("--top-k", type=click.IntRange(1, 50), default=None, help="Passages to draw on"),
        _AS_OF,
        click.option("--json", "as_json", is_flag=True, help="Print JSON"),
    ]):
        command = option(command)
    return command


@click.group()
@click.option("--index-dir", type=click.Path(path_type=Path), default=None,
              help="Index folder (default: $RAG_INDEX_DIR or indexes/default)")
@click.pass_context
def main(ctx: click.Context, index_dir: Path | None) -> None:
    """Ask questions of news articles; every answer cites the passage it comes from."""
    try:
        settings = Settings.from_environment()
    except RagError as error:
        raise click.ClickException(str(error)) from error
    if index_dir is not None:
        settings = settings.model_copy(update={"index_dir": index_dir})
    ctx.obj = {"settings": settings}


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--category", help="Category of the articles read from URLs (files take theirs from the folder)")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON")
@click.option("--progress-every", type=click.FloatRange(min=0.01), default=10.0, show_default=True,
              help="Seconds between progress lines when stderr is not a terminal")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...], category: str | None, as_json: bool,
           progress_every: float) -> None:
    """Add or update articles from files and folders (.txt, .html, .json, .jsonl) and from
    http(s) URLs: an RSS or Atom feed or a sitemap (each item's page), or an article page."""
    from rag.ingest import find_files, read_file
    from rag.ingest.fetch import is_url

    settings = _settings(ctx)
    urls = [p for p in paths if is_url(p)]
    files, missing = find_files([Path(p) for p in paths if not is_url(p)])
    service = _service(ctx, create=True)
    progress = _ingest_progress(len(files) + len(missing), progress_every)

    def items() -> Iterator[Article | IngestFailure]:
        yield from missing
        for path in files:
            read = read_file(path, max_bytes=settings.max_article_bytes, timeout_s=settings.file_read_timeout_s)
            progress.grow(len(read) - 1)
            yield from read
        seen: set[str] = set()  # one story reached through several feeds is read once
        for url in urls:
            for item in service.read_url(url, category, seen):  # how many a feed holds is known as it is read
                progress.grow(1)
                yield item

    try:
        with progress:
            report = service.ingest(items(), progress=progress.update)
    except RagError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(IngestResponse.of(report).model_dump_json())
    else:
        for failure in report.failed:
            click.echo(f"failed: {failure}", err=True)
        duplicates = (f", duplicates {len(report.duplicates)} (stored already under another id)"
                      if report.duplicates else "")
        click.echo(f"ingested {len(report.ingested)}, unchanged {len(report.unchanged)}{duplicates}, "
                   f"failed {len(report.failed)}")
    if report.failed:
        sys.exit(1)


class _Bar:
    """tqdm's bar on a terminal, with the interface of `ProgressLines`."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="article", desc="ingest", file=sys.stderr)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def grow(self, n: int) -> None:
        if n:
            self._bar.total += n
            self._bar.refresh()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


def _ingest_progress(total: int, every: float):
    """A bar on a terminal; otherwise (a log, a pipe, CI) a plain line every `every` seconds."""
    if sys.stderr.isatty():
        return _Bar(total)
    from rag.ingest.progress import ProgressLines

    return ProgressLines(total, lambda line: click.echo(line, err=True), every)


@main.group()
def sources() -> None:
    """Feeds, sitemaps and pages that `rag serve` polls for new articles."""


def _docstore(ctx: click.Context, create: bool = False, missing: str | None = None):
    """The index's docstore alone (the SQLite file in the index folder, or RAG_DOCSTORE_URL's
    database): managing sources or reading feedback needs no model. Only `create` may start a new
    SQLite file; `missing` says what to do when there is none."""
    from rag.store import open_docstore

    settings = _settings(ctx)
    index_dir = settings.index_dir
    if settings.docstore_url is None and not (index_dir / "docstore.sqlite").exists():
        if not create:
            raise click.ClickException(
                f"no index at {index_dir}: {missing or 'add a source with `rag sources add URL`'}, or name "
                "another index with --index-dir or RAG_INDEX_DIR")
        index_dir.mkdir(parents=True, exist_ok=True)
    try:
        docstore = open_docstore(index_dir, settings.docstore_dsn())
    except RagError as error:
        raise click.ClickException(str(error)) from error
    ctx.call_on_close(docstore.close)
    return docstore


def _every(ctx: click.Context, param: click.Parameter, value: str) -> int:
    from rag.ingest.fetch.poller import parse_every

    try:
        return parse_every(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@sources.command(name="add")
@click.argument("url")
@click.option("--every", "every_s", default="15m", show_default=True, callback=_every,
              help="How often to poll it: 90s, 15m, 1h, 1h30m, 1d")
@click.option("--category", help="Category of its articles")
@click.pass_context
def sources_add(ctx: click.Context, url: str, every_s: int, category: str | None) -> None:
    """Poll URL (a feed, sitemap or page) while `rag serve` runs; adding it again changes its settings."""
    from rag.ingest.fetch.poller import new_source

    try:
        source = new_source(url, every_s, category, _settings(ctx).allowed_fetch_hosts)
        source = _docstore(ctx, create=True).add_source(source)
    except RagError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{source.id}  {source.url}  every {_duration(source.every_s)}")


@sources.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@click.pass_context
def sources_list(ctx: click.Context, as_json: bool) -> None:
    """The sources with how their last polls went."""
    from rag.api.schemas import SourceOut

    try:
        found = _docstore(ctx).sources()
    except RagError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps([SourceOut.of(s).model_dump(mode="json") for s in found], indent=2))
        return
    if not found:
        click.echo("No sources: add one with `rag sources add URL`.", err=True)
    for s in found:
        click.echo(f"{s.id}  {s.status}  every {_duration(s.every_s)}  {s.url}"
                   + (f"  [{s.category}]" if s.category else ""))
        click.echo(f"    last fetched {_when(s.last_fetched_at)}, last new article {_when(s.last_new_article_at)}")
        if s.last_error:
            click.echo(f"    last error ({_when(s.last_error_at)}): {s.last_error}")


@sources.command(name="remove")
@click.argument("source_id")
@click.pass_context
def sources_remove(ctx: click.Context, source_id: str) -> None:
    """Stop polling a source (the articles it brought stay)."""
    try:
        _docstore(ctx).remove_source(source_id)
    except RagError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"removed {source_id}")


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "never"


@main.command()
@click.argument("article_id")
@click.pass_context
def delete(ctx: click.Context, article_id: str) -> None:
    """Remove an article from the docstore and every index."""
    try:
        _service(ctx).delete(article_id)
    except RagError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"deleted {article_id}")


@main.command()
@click.argument("question")
@_filter_options
@click.pass_context
def ask(ctx: click.Context, question: str, as_json: bool, top_k: int | None, as_of: str | None,
        **filters) -> None:
    """Answer a question from the articles, with citations."""
    try:
        answer = _service(ctx).ask(question, top_k, Filters(**filters), as_of)
    except RagError as error:
        raise click.ClickException(str(error)) from error
    click.echo(AskResponse.of(answer).model_dump_json(indent=2) if as_json else _answer_text(answer))


@main.command()
@click.argument("query")
@_filter_options
@click.pass_context
def search(ctx: click.Context, query: str, as_json: bool, top_k: int | None, as_of: str | None,
           **filters) -> None:
    """Show the passages retrieval finds for a query."""
    try:
        passages, timed = _service(ctx).search_when(query, top_k, Filters(**filters), as_of)
    except RagError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        response = SearchResponse(results=[SearchResult.of(p) for p in passages], as_of=timed.as_of,
                                  time_window=TimeWindowModel.of(timed.window))
        click.echo(response.model_dump_json(indent=2))
        return
    if not passages:
        click.echo("No passage matches.", err=True)
    for i, p in enumerate(passages, 1):
        click.echo(f"{i}. {p.title}  [{p.chunk_id}]  score {p.score:.4f}")
        click.echo(f"   {p.text[:300]}{'…' if len(p.text) > 300 else ''}\n")


@main.command()
@click.argument("topic")
@click.option("--since", callback=_date, help="Only articles published on or after YYYY-MM-DD")
@click.option("--until", callback=_date, help="Only articles published on or before YYYY-MM-DD")
@click.option("--category", help="Only articles of this category")
@click.option("--source", help="Only articles from this source")
@click.option("--max-articles", type=click.IntRange(1, 10_000), default=None,
              help="Read at most this many matching articles, most relevant first (default 500)")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@_AS_OF
@click.pass_context
def brief(ctx: click.Context, topic: str, since: date | None, until: date | None, category: str | None,
          source: str | None, max_articles: int | None, fmt: str, as_of: str | None) -> None:
    """A briefing note over every article on TOPIC, with citations, stories and a timeline."""
    from rag.api.schemas import BriefResponse
    from rag.briefing.render import to_markdown

    if since and until and since > until:
        raise click.BadParameter(f"--since {since} is after --until {until}", param_hint="--since")
    service = _service(ctx)
    with _StageBars() as bars:
        try:
            briefing = service.brief(topic, Filters(category, source, since, until), max_articles, bars.update,
                                     as_of=as_of)
        except RagError as error:
            raise click.ClickException(str(error)) from error
    if fmt == "json":
        click.echo(BriefResponse.of(briefing).model_dump_json(indent=2))
    else:
        click.echo(to_markdown(briefing), nl=False)


class _StageBars:
    """One progress bar per stage of a briefing (reading, embedding, map, …), on stderr and only
    on a terminal; a stage of one step (matching) gets none."""

    def __init__(self) -> None:
        self._bar = None
        self._stage: str | None = None

    def update(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if total <= 1:
            return
        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=total, desc=stage, unit="item", file=sys.stderr, leave=False,
                             disable=not sys.stderr.isatty())
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="Port (default 8000)")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) and poll the sources (`rag sources`)."""
    import uvicorn

    from rag.api.app import create_app
    from rag.api.auth import KeyRing
    from rag.api.observe import configure_logging

    settings = _settings(ctx)
    if settings.encoder_weights == "auto":  # a server embeds one question at a time: memory over speed
        settings = ctx.obj["settings"] = settings.model_copy(update={"encoder_weights": "fp16"})
    host = host or settings.host
    configure_logging(settings.log_format)  # from here on every line is a log record (JSON if asked)
    say = logging.getLogger("rag.serve").info
    try:
        keyring = KeyRing.from_settings(settings)
    except RagError as error:
        raise click.ClickException(str(error)) from error
    if keyring.enabled:
        say(f"API keys: {len(keyring)} configured; every route but the health probes needs one")
    elif not _is_loopback(host):
        raise click.ClickException(
            f"refusing to listen on {host} with no API keys configured: anyone who can reach it could "
            "read and change the index. Set RAG_API_KEYS (or RAG_API_KEYS_FILE), or serve on 127.0.0.1")
    else:
        say(f"no API keys configured: open to every local user of this machine, on {host} only")
    service = _service(ctx, create=True)  # load before binding, so a bad index fails here with a clear message
    service.warm_up()
    app = create_app(settings, service)
    # Our access line (rag.access: request id, route, status, duration, key label) replaces uvicorn's.
    uvicorn.run(app, host=host, port=port if port is not None else settings.port,
                log_level="info", log_config=None, access_log=False)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@main.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Verify that the docstore, FAISS and BM25 hold the same chunks; exit 1 if they do not."""
    from rag.embedding import embedder_name
    from rag.store import QdrantTarget, Store

    settings = _settings(ctx)
    if settings.docstore_url is None and not (settings.index_dir / "docstore.sqlite").exists():
        raise click.ClickException(f"no index at {settings.index_dir}")
    try:
        # No model needed: the dimension is the one the docstore was built with.
        store = Store.open_existing(settings.index_dir, embedder_name(settings), settings.faiss_index,
                                    QdrantTarget.from_settings(settings), settings.docstore_dsn())
    except RagError as error:
        raise click.ClickException(str(error)) from error
    try:
        result = store.check()
        if store.load_problem:
            click.echo(f"note: {store.load_problem}")
        click.echo(f"articles {result.articles}, chunks {result.chunks}, "
                   f"{'Qdrant' if settings.vector_store == 'qdrant' else 'FAISS'} vectors {result.vectors}, "
                   f"BM25 documents {result.keyword_docs}")
    finally:
        store.close()
    for problem in result.problems:
        click.echo(f"problem: {problem}", err=True)
    if not result.ok:
        sys.exit(1)
    click.echo("ok: the docstore and every index agree")


@main.group(name="feedback")
def feedback_group() -> None:
    """Readers' verdicts on answers (thumbs up or down on the web page, or POST /feedback)."""


@feedback_group.command(name="export")
@click.option("--since", callback=_date, help="Only feedback given on or after YYYY-MM-DD (UTC)")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (default: standard output)")
@click.pass_context
def feedback_export(ctx: click.Context, since: date | None, output: Path | None) -> None:
    """Write stored feedback as JSON Lines, oldest first: question, answer, citations, backend,
    verdict, comment, time and key label; the start of an evaluation set of the newsroom's own."""
    from datetime import UTC, datetime, time

    from rag.api.schemas import FeedbackModel

    docstore = _docstore(ctx, missing="ask questions and give feedback on the answers first")
    try:
        rows = docstore.feedback(datetime.combine(since, time.min, UTC) if since else None)
    except RagError as error:
        raise click.ClickException(str(error)) from error
    lines = "".join(FeedbackModel.of(f).model_dump_json() + "\n" for f in rows)
    if output is None:
        click.echo(lines, nl=False)
    else:
        from rag.files import write_durably

        write_durably(output, lines.encode())
        click.echo(f"{len(rows)} feedback records written to {output}", err=True)


@main.group(name="db")
def db_group() -> None:
    """The PostgreSQL docstore (RAG_DOCSTORE_URL): its schema."""


@db_group.command(name="upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create the docstore's tables or migrate them to this version's schema (every replica also
    does it on start; run it first when rolling out a new version)."""
    from rag.store import open_docstore

    settings = _settings(ctx)
    if settings.docstore_url is None:
        raise click.ClickException("RAG_DOCSTORE_URL is not set: the SQLite docstore in RAG_INDEX_DIR "
                                   "migrates itself when opened")
    try:
        docstore = open_docstore(settings.index_dir, settings.docstore_dsn())
    except RagError as error:
        raise click.ClickException(str(error)) from error
    try:
        done = f"applied migration(s) {', '.join(map(str, docstore.applied))}" if docstore.applied \
            else "nothing to apply"
        click.echo(f"{docstore.name}: {done}; schema version {docstore.schema_version()}")
    finally:
        docstore.close()


@main.group(name="eval")
def eval_group() -> None:
    """Measure answer quality."""


def _squad_questions(file: Path, articles: str | None):
    """The SQuAD file's articles and questions, restricted to `articles` (comma-separated titles)."""
    from rag.eval.runner import load_squad

    squad_articles, questions = load_squad(file)
    if articles:
        keep = {t.strip() for t in articles.split(",")}
        unknown = keep - {q.article for q in questions}
        if unknown:
            raise click.BadParameter(f"not in {file.name}: {', '.join(sorted(unknown))}", param_hint="--articles")
        squad_articles = [a for a in squad_articles if a.origin.endswith(tuple(f"({t})" for t in keep))]
        questions = [q for q in questions if q.article in keep]
    return squad_articles, questions


@contextmanager
def _squad_service(settings: Settings, squad_articles, distractors: Path | None, caching: bool):
    """A service over a throwaway index of the SQuAD articles (and distractors), and the word
    pieces it reads. With `caching`, its embedder remembers what it embedded, for runs that see
    each sentence many times."""
    import tempfile

    from rag.embedding import build_embedder
    from rag.embedding.cache import remembering
    from rag.embedding.model import bundled_model_path
    from rag.embedding.wordpieces import WordPieceVectors
    from rag.eval.runner import distractor_items
    from rag.service import build_service

    embedder = build_embedder(settings)
    if caching:
        embedder = remembering(embedder)
    pieces = WordPieceVectors(bundled_model_path())
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as folder:
        service = build_service(settings.model_copy(update={"index_dir": Path(folder)}), embedder, pieces)
        try:
            click.echo(f"indexing {len(squad_articles)} SQuAD articles"
                       + (f" and the articles under {distractors}" if distractors else ""), err=True)
            service.ingest(squad_articles)
            if distractors:
                report = service.ingest(distractor_items(distractors, settings.max_article_bytes))
                for failure in report.failed:
                    click.echo(f"distractor skipped: {failure}", err=True)
            yield service, pieces
        finally:
            service.close()


def _bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="q", file=sys.stderr, disable=not sys.stderr.isatty())


@eval_group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--distractors", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of articles indexed beside the SQuAD ones")
@click.option("--articles", help="Only these SQuAD articles (comma-separated titles)")
@click.option("--folds", type=click.IntRange(2), default=None,
              help="Cross-validate the learned answerer over this many article-level folds "
                   "(train on the others, evaluate on each) and report the means")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object")
@click.pass_context
def squad(ctx: click.Context, file: Path, distractors: Path | None, articles: str | None, folds: int | None,
          as_json: bool) -> None:
    """Official SQuAD 2.0 metrics, retrieval recall and citation accuracy on a throwaway index."""
    from rag.eval.runner import cross_validate, evaluate

    squad_articles, questions = _squad_questions(file, articles)
    n_articles = len({q.article for q in questions})
    if folds is not None and folds > n_articles:
        raise click.BadParameter(f"{n_articles} articles cannot make {folds} folds", param_hint="--folds")
    with _squad_service(_settings(ctx), squad_articles, distractors, caching=folds is not None) as (service, pieces):
        click.echo(f"asking {len(questions)} questions", err=True)
        if folds is None:
            with _bar(len(questions)) as bar:
                scores, _ = evaluate(service, questions, bar.update)
        else:
            with _bar(2 * len(questions)) as bar:
                scores, _ = cross_validate(service, pieces, questions, folds, bar.update,
                                           lambda s: click.echo(s, err=True))
    if as_json:
        click.echo(json.dumps(scores))
        return
    for key, value in scores.items():
        click.echo(f"{key:<26} {value:.2f}" if isinstance(value, float) else f"{key:<26} {value}")


@eval_group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--delete-and-ask", is_flag=True,
              help="Also ask the answerable questions on a copy of the index without their articles")
@click.option("--questions", "show", is_flag=True, help="Print one line per question")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object")
@click.pass_context
def staff(ctx: click.Context, file: Path, delete_and_ask: bool, show: bool, as_json: bool) -> None:
    """Staff-style questions (tests/data/staff-dev.json) asked of the index: short answer right, the
    shown sentence holds the answer, out-of-corpus questions refused."""
    from rag.eval.staff import evaluate, load_staff, table

    try:
        questions = load_staff(file)
        service = _service(ctx)
        answerable = sum(q.answerable for q in questions)
        with _bar(len(questions) + (answerable if delete_and_ask else 0)) as bar:
            report, outcomes = evaluate(service, questions, delete_and_ask, bar.update)
    except RagError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps(report))
        return
    if show:
        for line in table(outcomes):
            click.echo(line)
    for key, value in report.items():
        click.echo(f"{key:<26} {value:.1f}" if isinstance(value, float) else f"{key:<26} {value}")


@eval_group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def briefings(ctx: click.Context, file: Path) -> None:
    """Briefings on topics whose main story is known (tests/data/briefing-topics.json): is it among
    the first two points?"""
    from rag.eval.briefings import evaluate, lines, load_topics

    try:
        results = evaluate(_service(ctx), load_topics(file))
    except RagError as error:
        raise click.ClickException(str(error)) from error
    for line in lines(results):
        click.echo(line)


@eval_group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object")
@click.option("--details", is_flag=True, help="Also list every question with its answer and first citation")
@click.option("--untimed", is_flag=True, help="Baseline: ask as if the service read no time (no window, no "
                                               "asking date, no latest-ranking), to compare with")
@click.pass_context
def temporal(ctx: click.Context, file: Path, as_json: bool, details: bool, untimed: bool) -> None:
    """Time questions asked on a date, over the index (--index-dir): answer accuracy, first citation
    inside the meant window, citations after the asking date; FILE is a JSON list of
    {question, as_of, answers, support}."""
    from rag.eval import temporal as scorer

    service = _service(ctx)
    try:
        questions = scorer.load_questions(file, service.zone)
    except RagError as error:
        raise click.ClickException(str(error)) from error
    with _bar(len(questions)) as bar:
        ask = scorer.untimed(service) if untimed else (lambda q, as_of: service.ask(q, as_of=as_of))
        report, outcomes = scorer.evaluate(ask, questions, bar.update)
    if as_json:
        out = dict(report)
        if details:
            out["questions"] = [{"question": o.item.question, "as_of": o.item.as_of.isoformat(), "kind": o.item.kind,
                                 "timed": o.timed, "correct": o.correct, "first_in_support": o.first_in_support,
                                 "after_as_of": o.after_as_of, "answer": o.answer, "first_cited": o.first_cited}
                                for o in outcomes]
        click.echo(json.dumps(out))
        return
    click.echo(f"{'':<24}{'questions':>10}{'accuracy':>10}{'1st cite in':>13}{'cites after':>13}")
    click.echo(f"{'':<24}{'':>10}{'':>10}{'window':>13}{'as_of':>13}")
    for group, figures in report.items():
        if isinstance(figures, dict):
            click.echo(f"{group:<24}{figures['questions']:>10}{figures['answer_accuracy']:>9.1f}%"
                       f"{figures['first_citation_in_support']:>12.1f}%{figures['cites_after_as_of']:>12.1f}%")
    click.echo(f"seconds per question: {report['seconds_per_question']}")
    if details:
        for o in outcomes:
            mark = "ok " if o.correct else "-- "
            click.echo(f"{mark}{o.item.as_of.date()} {o.item.question}\n    → {o.answer[:160]} "
                       f"[{o.first_cited}{' in window' if o.first_in_support else ''}]")


@main.group(name="train")
def train_group() -> None:
    """Fit the learned parts of the pipeline."""


@train_group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the model (default: the shipped rag/answer/extractive/answerer-model.json)")
@click.option("--exclude-articles", help="Train without these SQuAD articles (comma-separated titles)")
@click.pass_context
def answerer(ctx: click.Context, file: Path, out: Path | None, exclude_articles: str | None) -> None:
    """Train the extractive answerer's sentence, span and abstention scorers on a SQuAD 2.0 file."""
    from rag.answer.extractive.answerer import ExtractiveAnswerer
    from rag.answer.extractive.model import SHIPPED_MODEL
    from rag.answer.extractive.training import collect, train, trained_on

    squad_articles, questions = _squad_questions(file, None)
    excluded = {t.strip() for t in exclude_articles.split(",")} if exclude_articles else set()
    unknown = excluded - {q.article for q in questions}
    if unknown:
        raise click.BadParameter(f"not in {file.name}: {', '.join(sorted(unknown))}",
                                 param_hint="--exclude-articles")
    questions = [q for q in questions if q.article not in excluded]
    out = out or SHIPPED_MODEL
    # Training needs no answerer model, and must work when the one on disk no longer fits the code.
    settings = _settings(ctx).model_copy(update={"answerer_model": "none"})
    with _squad_service(settings, squad_articles, None, caching=True) as (service, pieces):
        click.echo(f"computing features of {len(questions)} questions", err=True)
        with _bar(len(questions)) as bar:
            examples = collect(service.search, ExtractiveAnswerer(service.embedder, pieces), questions,
                               bar.update)
    click.echo("fitting", err=True)
    model = train(examples, trained_on(file, sorted({q.article for q in questions}), len(questions)))
    model.save(out)
    click.echo(f"wrote {out} (trained on {len(questions)} questions of "
               f"{len(model.trained_on['articles'])} articles)")


@train_group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--folds", type=click.IntRange(2), default=8, show_default=True, help="Article-level folds")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write it (default: the shipped rag/answer/extractive/confidence.json)")
@click.pass_context
def confidence(ctx: click.Context, file: Path, folds: int, out: Path | None) -> None:
    """Calibrate the extractive answer's confidence (P(short answer right)) on a SQuAD 2.0 file, from
    decisions made out of fold; prints the reliability table and the expected calibration error."""
    from rag.answer.extractive.answerer import ExtractiveAnswerer
    from rag.answer.extractive.confidence import CALIBRATION_FILE
    from rag.answer.extractive.training import calibrate_confidence, collect

    squad_articles, questions = _squad_questions(file, None)
    settings = _settings(ctx).model_copy(update={"answerer_model": "none"})
    with _squad_service(settings, squad_articles, None, caching=True) as (service, pieces):
        answerer = ExtractiveAnswerer(service.embedder, pieces, abstention=settings.abstention)
        click.echo(f"computing features of {len(questions)} questions", err=True)
        with _bar(len(questions)) as bar:
            examples = collect(service.search, answerer, questions, bar.update)
        calibration = calibrate_confidence(examples, folds, answerer, lambda s: click.echo(s, err=True))
    out = out or CALIBRATION_FILE
    calibration.save(out)
    report = calibration.report
    click.echo(f"wrote {out}: {report['decisions']} decisions, {report['answered']} answered")
    for name in ("", "answered_"):
        click.echo(f"{'all decisions' if not name else 'answers given'}: ECE {report[name + 'ece']:.4f}")
        click.echo("  bin        n   predicted  right")
        for row in report[name + "reliability"]:
            click.echo(f"  {row['bin']}  {row['n']:>5}  {row['predicted']:.3f}      {row['right']:.3f}")


@train_group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the figures (default: the shipped rag/answer/support-calibration.json)")
@click.pass_context
def support(ctx: click.Context, file: Path, out: Path | None) -> None:
    """Calibrate the citation support check (embedding weight, threshold) on a SQuAD 2.0 file."""
    from rag.answer.calibration import CALIBRATION_FILE, calibrate
    from rag.embedding import build_embedder

    settings = _settings(ctx)
    embedder = build_embedder(settings)
    result = calibrate(embedder, file)
    out = out or CALIBRATION_FILE
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    best = result["at_threshold"]
    click.echo(f"wrote {out}: embedding weight {best['weight']}, threshold {best['threshold']} "
               f"(precision {best['precision']:.3f}, recall {best['recall']:.3f}, F1 {best['f1']:.3f} "
               f"on {result['data']['pairs']} pairs)")


def _answer_text(answer: Answer) -> str:
    lines = [answer.text]
    if answer.extract is not None and not answer.abstained:
        lines.append(f"(confidence {answer.extract.confidence:.2f})")
    if answer.citations:
        lines.append("")
        lines.extend(f"[{c.n}] {c.title} ({c.article_id}): “{c.quote}”" for c in answer.citations)
    if answer.fallback_reason:
        lines.append(f"\n(extractive answer: {answer.fallback_reason})")
    return "\n".join(lines)

