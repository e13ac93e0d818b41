"""The access log never shows a query string: a client may put a secret there (`?api_key=...`,
which this API refuses but cannot stop anyone sending), and a log is read by more people than the
secret was meant for. No route takes query parameters, so nothing of use is lost."""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"  # uvicorn logs (client, method, path?query, version, status)


class RedactQueryStrings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].partition("?")[0] + "?<query redacted>", *args[3:])
        return True


def redact_access_log() -> None:
    """Install the filter on uvicorn's access logger, once (it lives as long as the process)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactQueryStrings) for f in logger.filters):
        logger.addFilter(RedactQueryStrings())
