"""The LLM answerer: a prompt of fenced, numbered passages within a tiktoken budget; one bounded
call to a llama-index LLM (in a worker thread, so the caller's deadline holds even when the
backend hangs); the reply's citations checked by us; the extractive answer when anything fails."""

from __future__ import annotations

import dataclasses
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

from rag.answer import Answerer
from rag.answer.citations import SupportScorer, claims, sentence_texts
from rag.errors import LLMFailed
from rag.prompts import load_prompt
from rag.telemetry import NO_TELEMETRY, Telemetry, timed
from rag.text.markers import PARTIAL_MARKER, drop_unknown_markers
from rag.text.tokens import count_tokens
from rag.types import Answer, Citation, Passage, SentenceCheck, Span

NOT_IN_ARTICLES = "NOT_IN_ARTICLES"
ABSTAIN_TEXT = "The articles do not appear to answer this."
_FENCE = re.compile(r"<(\s*/?\s*passage)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Numbered:
    """A passage as the prompt shows it: its number and the sentences that fit the budget."""

    n: int
    passage: Passage
    sentences: tuple[Span, ...]

    def texts(self) -> list[str]:
        return sentence_texts(self.passage.text, self.passage.start, self.sentences)


@dataclass(frozen=True, slots=True)
class Prompt:
    system: str
    user: str
    passages: tuple[Numbered, ...]


def _defang(text: str) -> str:
    """Article text cannot close (or open) the fence it sits in."""
    return _FENCE.sub(r"‹\1", text)


def build_prompt(question: str, passages: list[Passage], budget: int, as_of: datetime | None = None) -> Prompt:
    """Instructions, question (with the date it is asked on) and as many passages (best first, each
    with its article's date) as `budget` tiktoken tokens hold; the last one that does not fit whole
    is cut to its first sentences that do."""
    system, user, block = (load_prompt(n) for n in ("answer_system", "answer_user", "answer_passage"))
    asked_on = (as_of or datetime.now(UTC)).date().isoformat()
    used = count_tokens(system) + count_tokens(user.format(passages="", question=question, as_of=asked_on))
    shown: list[Numbered] = []
    blocks: list[str] = []
    for passage in passages:
        n = len(shown) + 1
        spans = list(passage.sentences)
        while spans:
            text = passage.text[spans[0].start - passage.start : spans[-1].end - passage.start]
            dated = f' date="{passage.published_at.date().isoformat()}"' if passage.published_at else ""
            rendered = block.format(n=n, title=_defang(passage.title).replace('"', "'"), dated=dated,
                                    text=_defang(text))
            cost = count_tokens(rendered) + 1
            if used + cost <= budget:
                used += cost
                shown.append(Numbered(n, passage, tuple(spans)))
                blocks.append(rendered)
                break
            spans.pop()
        if not spans:
            break  # not even one sentence fits: later (lower-ranked) passages are not tried
    return Prompt(system, user.format(passages="\n".join(blocks).rstrip(), question=question, as_of=asked_on),
                  tuple(shown))


class MarkerFilter:
    """Streams the reply as the final answer will show it: markers naming no passage are removed,
    and text that may still become a marker (or NOT_IN_ARTICLES) is held back until it is known."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.raw = ""
        self.sent = 0  # characters of the cleaned text already emitted

    def feed(self, delta: str) -> str:
        self.raw += delta
        if NOT_IN_ARTICLES.startswith(self.raw.strip()) or self.raw.lstrip().startswith(NOT_IN_ARTICLES):
            return ""
        clean = drop_unknown_markers(self.raw, self.count)
        held = PARTIAL_MARKER.search(clean)
        safe = held.start() if held else len(clean)
        return self._emit(clean, safe)

    def flush(self) -> str:
        if self.raw.lstrip().startswith(NOT_IN_ARTICLES):
            return ""
        clean = drop_unknown_markers(self.raw, self.count)
        return self._emit(clean, len(clean))

    def _emit(self, clean: str, upto: int) -> str:
        if upto <= self.sent:
            return ""
        out, self.sent = clean[self.sent : upto], upto
        return out


class LLMAnswerer:
    """Answers with an LLM (llama-index's `LLM` interface) and checks every citation itself."""

    reads_dates = True  # its prompt gives each passage's date and the asking date

    def __init__(self, llm, backend: str, support: SupportScorer, fallback: Answerer, *,
                 timeout_s: float, retries: int, context_tokens: int,
                 retryable: tuple[type[BaseException], ...] = (),
                 not_retryable: tuple[type[BaseException], ...] = (), serialize: bool = False,
                 stops_on: Callable[[threading.Event], AbstractContextManager] = lambda event: nullcontext(),
                 telemetry: Telemetry = NO_TELEMETRY) -> None:
        self.llm = llm
        self.backend = backend
        self.support = support
        self.fallback = fallback
        self.timeout_s = timeout_s
        self.retries = retries
        self.context_tokens = context_tokens
        self.retryable = retryable  # connection errors only: a timeout or an HTTP error is not retried
        self.not_retryable = not_retryable
        # In-process llama.cpp is one model state: calls take turns (within their deadline).
        self._turn = threading.Lock() if serialize else None
        # Makes the model stop generating once a call is given up (at its deadline, or when the
        # caller stops reading), so that it hands the turn on at once: see `Backend.stops_on`.
        self._stops_on = stops_on
        # LLM calls may hang until their client times out; fallbacks get threads of their own, so
        # that hung calls never delay the answer that replaces them.
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"rag-llm-{backend}")
        self._fallbacks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rag-llm-fallback")
        self.telemetry = telemetry  # the LLM's and the citation check's times

    # -- public -----------------------------------------------------------------------------------
    def answer(self, question: str, passages: list[Passage], as_of: datetime | None = None) -> Answer:
        final = None
        for event in self.stream(question, passages, tokens=False, as_of=as_of):
            final = event
        assert isinstance(final, Answer)
        return final

    def stream(self, question: str, passages: list[Passage], tokens: bool = True,
               as_of: datetime | None = None) -> Iterator[str | Answer]:
        """Token texts as the LLM writes them (already cleaned of markers naming no passage), then
        the checked `Answer`. Bounded by `timeout_s` from the call; falls back on any failure.
        `as_of` is the date the question is asked on (default today), which the prompt states."""
        if not passages:
            yield self.fallback.answer(question, passages)
            return
        prompt = build_prompt(question, passages, self.context_tokens, as_of)
        if not prompt.passages:
            yield _with_reason(self.fallback.answer(question, passages), "no passage fits the LLM context budget")
            return
        deadline = time.monotonic() + self.timeout_s
        # The fallback is worked out while the LLM writes, so a failure at the deadline answers at once.
        fallback = self._fallbacks.submit(self.fallback.answer, question, passages)
        marks = MarkerFilter(len(prompt.passages))
        started = time.perf_counter()
        try:
            # An in-process model streams even when the caller does not: a stream can be stopped at
            # the deadline, a single call would run on to its last token.
            if tokens or self._turn is not None:
                for delta in self._stream_reply(prompt, deadline):
                    out = marks.feed(delta)
                    if out and tokens:
                        yield out
            else:
                marks.feed(self._reply(prompt, deadline))
        except LLMFailed as error:
            self.telemetry.stage("llm", time.perf_counter() - started)
            yield _with_reason(fallback.result(), str(error))
            return
        self.telemetry.stage("llm", time.perf_counter() - started)
        rest = marks.flush()
        if rest and tokens:
            yield rest
        with timed(self.telemetry, "citation_check"):
            checked = self._check(prompt, marks.raw, fallback)
        yield checked

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._fallbacks.shutdown(wait=False, cancel_futures=True)

    # -- the call ---------------------------------------------------------------------------------
    def _messages(self, prompt: Prompt):
        from llama_index.core.llms import ChatMessage, MessageRole

        return [ChatMessage(role=MessageRole.SYSTEM, content=prompt.system),
                ChatMessage(role=MessageRole.USER, content=prompt.user)]

    def _reply(self, prompt: Prompt, deadline: float) -> str:
        def call() -> str:
            return self._with_retries(lambda: self.llm.chat(self._messages(prompt)).message.content or "",
                                      deadline)

        future = self._pool.submit(self._taking_turn, call, deadline)
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            future.cancel()
            raise LLMFailed(f"the {self.backend} backend did not answer within {self.timeout_s:g} s") from None
        except LLMFailed:
            raise
        except Exception as error:
            raise LLMFailed(f"the {self.backend} backend failed: {_describe(error)}") from error

    def _stream_reply(self, prompt: Prompt, deadline: float) -> Iterator[str]:
        """Deltas from a worker thread through a queue, so that waiting for the next one is bounded."""
        deltas: queue.Queue = queue.Queue()
        stop = threading.Event()
        began = threading.Event()  # the call has the model (its turn, a worker thread)
        done = object()

        def pump() -> None:
            began.set()
            try:
                def open_stream():
                    return self.llm.stream_chat(self._messages(prompt))

                # Closed before the turn passes on, so the given-up generator never touches the model
                # again (at the stop, llama.cpp is still yielding the tokens it held back).
                with self._stops_on(stop), closing(self._with_retries(open_stream, deadline)) as stream:
                    for chunk in stream:
                        if stop.is_set():
                            break
                        if chunk.delta:
                            deltas.put(chunk.delta)
                deltas.put(done)
            except Exception as error:  # noqa: BLE001 (handed to the consumer, who falls back)
                deltas.put(error)

        self._pool.submit(self._taking_turn, pump, deadline)
        try:
            while True:
                try:
                    item = deltas.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    # The wait for the turn ends at this same deadline, and its own failure would come
                    # too late to be read: say here which of the two the time went on.
                    if not began.is_set():
                        raise LLMFailed(f"the {self.backend} backend was busy for {self.timeout_s:g} s") from None
                    raise LLMFailed(
                        f"the {self.backend} backend did not finish within {self.timeout_s:g} s") from None
                if item is done:
                    return
                if isinstance(item, LLMFailed):
                    raise item
                if isinstance(item, BaseException):
                    raise LLMFailed(f"the {self.backend} backend failed: {_describe(item)}") from item
                yield item
        finally:
            stop.set()

    def _taking_turn(self, call: Callable, deadline: float):
        if self._turn is None:
            return call()
        if not self._turn.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise LLMFailed(f"the {self.backend} backend was busy for {self.timeout_s:g} s")
        try:
            return call()
        finally:
            self._turn.release()

    def _with_retries(self, call: Callable, deadline: float):
        """Retries on connection errors only (the server may be restarting), within the deadline."""
        for attempt in range(self.retries + 1):
            try:
                result = call()
                # A stream opens lazily: pull its first chunk here so a refused connection retries.
                if hasattr(result, "__next__"):
                    first = next(result, None)
                    return _chain(first, result)
                return result
            except self.retryable as error:
                if isinstance(error, self.not_retryable):
                    raise
                if attempt == self.retries or time.monotonic() + 0.2 * 2**attempt >= deadline:
                    raise LLMFailed(f"the {self.backend} backend is unreachable: {_describe(error)}") from error
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    # -- the check --------------------------------------------------------------------------------
    def _check(self, prompt: Prompt, raw: str, fallback: Future) -> Answer:
        reply = raw.strip()
        if reply.startswith(NOT_IN_ARTICLES) or reply.rstrip(".") == NOT_IN_ARTICLES:
            fallback.cancel()  # not needed (if it has not started yet)
            return Answer(text=ABSTAIN_TEXT, abstained=True, backend=self.backend)
        if not reply:
            return _with_reason(fallback.result(), f"the {self.backend} backend returned an empty answer")
        shown = {p.n: p for p in prompt.passages}
        found = claims(drop_unknown_markers(reply, len(shown)))
        evidence = [[t for n in c.cites for t in shown[n].texts()] for c in found]
        supports = self.support.score([(c.bare, ev) for c, ev in zip(found, evidence)])
        checks = tuple(SentenceCheck(c.text, c.cites, bool(c.cites) and s.score >= self.support.threshold,
                                     s.score) for c, s in zip(found, supports))
        kept = [(c, s, ev) for c, s, ev, ch in zip(found, supports, evidence, checks) if ch.supported]
        if not kept:
            reason = ("no sentence of the LLM answer is supported by the passages it cites"
                      if found else "the LLM answer holds no sentence")
            return dataclasses.replace(_with_reason(fallback.result(), reason), sentences=checks)
        fallback.cancel()
        return Answer(text=" ".join(c.text for c, _, _ in kept), abstained=False, backend=self.backend,
                      citations=_citations(kept, shown), sentences=checks)


def _with_reason(answer: Answer, reason: str) -> Answer:
    return dataclasses.replace(answer, fallback_reason=reason)


def _citations(kept, shown: dict[int, Numbered]) -> tuple[Citation, ...]:
    """One citation per cited passage: its sentence that best supports a claim citing it, verbatim."""
    best: dict[int, tuple[float, Span]] = {}
    for claim, support, _ in kept:
        offset = 0
        for n in claim.cites:
            spans = shown[n].sentences
            scores = support.per_sentence[offset : offset + len(spans)]
            offset += len(spans)
            i = max(range(len(spans)), key=scores.__getitem__)
            if n not in best or scores[i] > best[n][0]:
                best[n] = (scores[i], spans[i])
    out = []
    for n in sorted(best):
        score, span = best[n]
        p = shown[n].passage
        out.append(Citation(n=n, article_id=p.article_id, title=p.title, chunk_id=p.chunk_id,
                            quote=p.quote(span), start=span.start, end=span.end, score=round(score, 4),
                            published_at=p.published_at, date_source=p.date_source))
    return tuple(out)


def _chain(first, rest: Iterator) -> Iterator:
    try:
        if first is not None:
            yield first
        yield from rest
    finally:
        close = getattr(rest, "close", None)
        if close is not None:  # closing the chain closes the stream, even before its second chunk
            close()


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__
