"""Time in questions: the time words of a question → a window of days against the asking date,
and whether it asks for the latest state of a fact.

Pure functions, no clock: the caller passes the asking date (`as_of`). Conventions (also in the
README): windows are whole days in the asking time zone, both ends inclusive; weeks start on
Monday (ISO 8601); "in March" is the most recent March that has begun by the asking date; a window
reaching past the asking date ends on it; windows filter on an article's publication date.
"""

from rag.when.resolve import Resolution, Window, resolve, strip_spans

__all__ = ["Resolution", "Window", "resolve", "strip_spans"]
