"""Where the service reports what it did, for an operator to watch: time per stage, answers
(backend, abstention, LLM fallbacks) and ingest runs. The HTTP API plugs in its Prometheus metrics
(rag.api.metrics); everything else runs with `NO_TELEMETRY`, which does nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rag.types import Answer, IngestReport

# The stages timed, as metric labels.
STAGES = ("retrieve", "answer", "llm", "citation_check")


class Telemetry(Protocol):
    def stage(self, name: str, seconds: float) -> None:
        """One run of a stage took `seconds`."""

    def answered(self, answer: Answer) -> None:
        """An answer went out (its backend, whether it abstained, why it fell back)."""

    def ingested(self, report: IngestReport, seconds: float) -> None:
        """An ingest run ended."""


class NoTelemetry:
    def stage(self, name: str, seconds: float) -> None:
        pass

    def answered(self, answer: Answer) -> None:
        pass

    def ingested(self, report: IngestReport, seconds: float) -> None:
        pass


NO_TELEMETRY: Telemetry = NoTelemetry()


class TelemetryRelay:
    """Passes everything on to `target`, which can be set after the parts holding the relay were
    built (the app's metrics are made after the service); nothing until then."""

    def __init__(self) -> None:
        self.target: Telemetry = NO_TELEMETRY

    def stage(self, name: str, seconds: float) -> None:
        self.target.stage(name, seconds)

    def answered(self, answer: Answer) -> None:
        self.target.answered(answer)

    def ingested(self, report: IngestReport, seconds: float) -> None:
        self.target.ingested(report, seconds)


@contextmanager
def timed(telemetry: Telemetry, stage: str) -> Iterator[None]:
    """Report the block's wall time as `stage` (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        telemetry.stage(stage, time.perf_counter() - started)
