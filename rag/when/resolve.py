"""Resolve a question's time words to a window of whole days, against the asking date.

Our own small grammar rather than a parsing library: dateparser returns a single point for "last
week" and nothing for "last monday" (dateparser#573, #898), and its `search_dates` finds dates in
"Do you have a car" (#942) and in bare numbers (#582); parsedatetime read "last friday" as the next
Friday (#2). Every form below is tested table by table in tests/when/.

Conventions (the README repeats them):
- A window is a range of whole days in the asking time zone, both ends inclusive; `start` None
  means "from the beginning" ("before April"). A window reaching past the asking date ends on it.
- Weeks run Monday to Sunday (ISO 8601). "this week" is the week holding the asking date, "last
  week" the one before it; "the past week" is the 7 days up to the asking date.
- A month, day or quarter named without a year ("in March", "on March 3", "Q1") is the most recent
  one that has begun by the asking date.
- "Monday" / "on Monday" is the most recent Monday up to the asking date; "last Monday" the most
  recent one before it. "the weekend" is the most recent Saturday-Sunday that has begun.
- "the past N days" runs from N days before the asking date through it; "N weeks ago" is the week
  (Monday-Sunday) holding the date 7·N days back, "N months ago" that calendar month.
- "early/mid/late March" are days 1-10, 11-20 and 21-end; "the end of March", "as of March 31"
  also ask for the latest state inside (or up to) that time.
- "first quarter" followed by a business word ("first quarter profit") names a fiscal period, not
  a time to search in, and is left alone.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

# -- words ------------------------------------------------------------------------------------
MONTHS = {name: n for n, names in enumerate([
    (), ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
    ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sept", "sep"),
    ("october", "oct"), ("november", "nov"), ("december", "dec")]) for name in names}
WEEKDAYS = {name: n for n, names in enumerate([
    ("monday", "mon"), ("tuesday", "tue", "tues"), ("wednesday", "wed"), ("thursday", "thu", "thurs"),
    ("friday", "fri"), ("saturday", "sat"), ("sunday", "sun")]) for name in names}
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a few": 3,
           "few": 3, "several": 3}
ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}


def _alternation(words: Iterable[str]) -> str:
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


_MONTH = rf"(?:{_alternation(w for w in MONTHS if len(w) > 3 or w == 'may')}|(?:{_alternation(w for w in MONTHS if len(w) <= 4 and w != 'may')})\.?)"
_WEEKDAY = rf"(?:{_alternation(w for w in WEEKDAYS if len(w) > 3)})"
_NUMBER = rf"(?:\d{{1,3}}|{_alternation(NUMBERS)})"
_YEAR = r"(?:1[89]\d\d|2[01]\d\d)"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_UNIT = r"(?:day|week|month|year|quarter)s?"
_ORDINAL = rf"(?:{_alternation(ORDINALS)})"
# "first quarter profit": a fiscal period, not a time to search in (Reuters earnings stories).
_BUSINESS = (r"(?:profit|profits|net|earnings|results?|loss|losses|sales|revenues?|income|dividend|"
             r"operating|per|share|gdp|growth|output|deficit|surplus|figures?)")

# A point in time: a day, month, quarter, year or a relative day/period. Named groups say which.
POINT = (
    rf"(?P<iso>{_YEAR}-[01]\d-[0-3]\d)"
    rf"|(?P<md>(?P<md_m>{_MONTH})\s+(?P<md_d>{_DAY})\b(?:,?\s+(?P<md_y>{_YEAR}))?)"
    rf"|(?P<dm>(?P<dm_d>{_DAY})\s+(?:of\s+)?(?P<dm_m>{_MONTH})(?:,?\s+(?P<dm_y>{_YEAR}))?)"
    rf"|(?P<q>(?:q(?P<q_n>[1-4])|(?:the\s+)?(?P<q_o>{_ORDINAL})\s+quarter)(?:\s+(?:of\s+)?(?P<q_y>{_YEAR}))?"
    rf"(?!\s+{_BUSINESS}\b))"
    rf"|(?P<my>(?P<my_m>{_MONTH})(?:,?\s+(?P<my_y>{_YEAR}))?)"
    rf"|(?P<y>{_YEAR})"
    r"|(?P<rel>today|tonight|this\s+morning|this\s+afternoon|this\s+evening|yesterday|"
    r"the\s+day\s+before\s+yesterday|tomorrow)"
    rf"|(?P<period>(?P<period_w>this|last|next|previous|the\s+previous|the\s+last|the\s+next)\s+"
    r"(?P<period_u>week|month|year|quarter|weekend))"
    rf"|(?P<wd>(?:(?P<wd_w>last|this|next|past)\s+)?(?P<wd_d>{_WEEKDAY}))"
    r"|(?P<weekend>(?:the|this)\s+weekend)"
)


@dataclass(frozen=True, slots=True)
class Window:
    """Days `start`..`end`, both inclusive (None: unbounded on that side); `phrase` as written."""

    start: date | None
    end: date | None
    phrase: str
    offset: int = 0  # where the phrase starts in the question

    def __post_init__(self) -> None:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"window start {self.start} is after its end {self.end}")

    def contains(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)

    def as_dict(self) -> dict[str, str | None]:
        return {"start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None, "phrase": self.phrase}


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a question says about time."""

    question: str  # the question with its time words taken out: what retrieval matches on
    window: Window | None
    latest: bool  # asks for the newest state of a fact ("latest", "current", "still", "now", "as of X")
    spans: tuple[tuple[int, int], ...] = ()  # every time phrase found, (start, end) in the question


# -- small date arithmetic ----------------------------------------------------------------------
def month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def week_of(day: date) -> tuple[date, date]:
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def quarter_of(year: int, quarter: int) -> tuple[date, date]:
    first = 3 * (quarter - 1) + 1
    return date(year, first, 1), month_end(year, first + 2)


def _recent_year(today: date, starts: Callable[[int], date]) -> int:
    """The latest year in which `starts(year)` is not after today."""
    return today.year if starts(today.year) <= today else today.year - 1


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:  # "February 30"
        return None


# -- points -----------------------------------------------------------------------------------
Range = tuple[date | None, date | None]


def _month_number(word: str) -> int:
    return MONTHS[word.lower().rstrip(".")]


def _point(m: re.Match[str], today: date) -> Range | None:
    """The days a POINT match names."""
    g = m.groupdict()
    if g["iso"]:
        year, month, day = map(int, g["iso"].split("-"))
        single = _safe_date(year, month, day)
        return (single, single) if single else None
    if g["md"] or g["dm"]:
        key = "md" if g["md"] else "dm"
        month, day = _month_number(g[f"{key}_m"]), int(re.match(r"\d+", g[f"{key}_d"]).group())
        if g[f"{key}_y"]:
            single = _safe_date(int(g[f"{key}_y"]), month, day)
        else:
            year = _recent_year(today, lambda y: _safe_date(y, month, day) or date(y, month, 28))
            single = _safe_date(year, month, day)
        return (single, single) if single else None
    if g["q"]:
        n = int(g["q_n"]) if g["q_n"] else ORDINALS[g["q_o"].lower()]
        year = int(g["q_y"]) if g["q_y"] else _recent_year(today, lambda y: quarter_of(y, n)[0])
        return quarter_of(year, n)
    if g["my"]:
        month = _month_number(g["my_m"])
        year = int(g["my_y"]) if g["my_y"] else _recent_year(today, lambda y: date(y, month, 1))
        return date(year, month, 1), month_end(year, month)
    if g["y"]:
        year = int(g["y"])
        return date(year, 1, 1), date(year, 12, 31)
    if g["rel"]:
        word = " ".join(g["rel"].lower().split())
        shift = {"yesterday": -1, "the day before yesterday": -2, "tomorrow": 1}.get(word, 0)
        day = today + timedelta(days=shift)
        return day, day
    if g["period"]:
        which = " ".join(g["period_w"].lower().split()).removeprefix("the ")
        step = {"this": 0, "last": -1, "previous": -1, "next": 1}[which]
        return _period(g["period_u"].lower(), step, today)
    if g["wd"]:
        target = WEEKDAYS[g["wd_d"].lower()]
        which = (g["wd_w"] or "").lower()
        back = (today.weekday() - target) % 7  # days back to the most recent such weekday, today included
        if which in ("last", "past") and back == 0:
            back = 7
        if which == "next":
            day = today + timedelta(days=(target - today.weekday()) % 7 or 7)
        elif which == "this":  # "this Friday": the one of this week, even if it is still to come
            day = week_of(today)[0] + timedelta(days=target)
        else:
            day = today - timedelta(days=back)
        return day, day
    if g["weekend"]:
        return _period("weekend", 0, today)
    return None


def _period(unit: str, step: int, today: date) -> Range:
    """The calendar week/month/quarter/year/weekend `step` periods from the one holding today."""
    if unit == "week":
        monday = week_of(today)[0] + timedelta(weeks=step)
        return monday, monday + timedelta(days=6)
    if unit == "weekend":
        # The most recent weekend that has begun: this one on Saturday and Sunday, else the last.
        saturday = today - timedelta(days=(today.weekday() - 5) % 7) + timedelta(weeks=step)
        return saturday, saturday + timedelta(days=1)
    if unit == "month":
        first = add_months(today.replace(day=1), step)
        return first, month_end(first.year, first.month)
    if unit == "quarter":
        index = today.year * 4 + (today.month - 1) // 3 + step
        return quarter_of(index // 4, index % 4 + 1)
    return date(today.year + step, 1, 1), date(today.year + step, 12, 31)  # year


def _ago(n: int, unit: str, today: date) -> Range:
    unit = unit.lower().rstrip("s")
    if unit == "day":
        day = today - timedelta(days=n)
        return day, day
    if unit == "week":
        return week_of(today - timedelta(weeks=n))
    if unit == "month":
        first = add_months(today.replace(day=1), -n)
        return first, month_end(first.year, first.month)
    if unit == "quarter":
        return _period("quarter", -n, today)
    return date(today.year - n, 1, 1), date(today.year - n, 12, 31)


def _past(n: int, unit: str, today: date) -> Range:
    unit = unit.lower().rstrip("s")
    if unit == "day":
        return today - timedelta(days=n), today
    if unit == "week":
        return today - timedelta(weeks=n), today
    if unit in ("month", "quarter"):
        return add_months(today, -n * (3 if unit == "quarter" else 1)), today
    return add_months(today, -12 * n), today


def _count(word: str) -> int:
    word = " ".join(word.lower().split())
    return int(word) if word.isdigit() else NUMBERS[word]


# -- phrases ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Form:
    pattern: re.Pattern[str]
    resolve: Callable[[re.Match[str], date], Range | None]
    latest: bool = False  # the form also asks for the latest state ("as of March 31")


def _sub(text: str, today: date) -> Range | None:
    """A POINT written inside a larger phrase."""
    m = re.fullmatch(POINT, text.strip(), re.IGNORECASE)
    return _point(m, today) if m else None


def _between(m: re.Match[str], today: date) -> Range | None:
    first, second = _sub(m["a"], today), _sub(m["b"], today)
    if not first or not second:
        return None
    start, end = first[0], second[1]
    if start and end and start > end and not re.search(_YEAR, m["a"]):
        start = _sub(m["a"], end)[0]  # "between December and February": the December before
    return (start, end) if not (start and end and start > end) else None


def _since(m: re.Match[str], today: date) -> Range | None:
    point = _sub(m["a"], today)
    if not point:
        return None
    start = point[0] if m["w"].lower() == "since" else point[1] + timedelta(days=1)
    return start, today


def _before(m: re.Match[str], today: date) -> Range | None:
    point = _sub(m["a"], today)
    if not point:
        return None
    word = " ".join(m["w"].lower().split())
    return None, (point[0] - timedelta(days=1) if word == "before" else point[1])


def _as_of(m: re.Match[str], today: date) -> Range | None:
    point = _sub(m["a"], today)
    return (None, point[1]) if point else None


def _part(m: re.Match[str], today: date) -> Range | None:
    point = _sub(m["a"], today)
    if not point or not point[0] or not point[1]:
        return None
    start, end = point
    word = m["w"].lower()
    if start.day == 1 and end == month_end(start.year, start.month):  # a month: days 1-10, 11-20, 21-end
        if word in ("early", "beginning", "start"):
            return start, start.replace(day=10)
        if word in ("mid", "middle"):
            return start.replace(day=11), start.replace(day=20)
        return start.replace(day=21), end
    span = (end - start).days + 1  # a year or quarter: thirds of it
    third = span // 3
    if word in ("early", "beginning", "start"):
        return start, start + timedelta(days=third - 1)
    if word in ("mid", "middle"):
        return start + timedelta(days=third), end - timedelta(days=third)
    return end - timedelta(days=third - 1), end


def _earlier_this(m: re.Match[str], today: date) -> Range | None:
    start, _ = _period(m["u"].lower(), 0, today)
    return start, max(start, today - timedelta(days=1))


_P = "(?:" + re.sub(r"\(\?P<\w+>", "(?:", POINT) + ")"  # POINT without its group names
FORMS: list[_Form] = [
    _Form(re.compile(rf"\b(?:between|from)\s+(?P<a>{_P})\s+(?:and|to|until|till|through|thru|-)\s+(?P<b>{_P})\b",
                     re.IGNORECASE), _between),
    _Form(re.compile(rf"\b(?P<w>since|after)\s+(?P<a>{_P})\b", re.IGNORECASE), _since),
    _Form(re.compile(rf"\b(?:(?:as\s+of|as\s+at)\s+(?:the\s+end\s+of\s+)?|by\s+the\s+end\s+of\s+)(?P<a>{_P})\b",
                     re.IGNORECASE), _as_of, latest=True),
    _Form(re.compile(rf"(?<!\bday\s)\b(?P<w>before|until|till|up\s+to|prior\s+to)\s+(?P<a>{_P})\b", re.IGNORECASE), _before),
    _Form(re.compile(rf"\b(?:(?:in|over|during|for)\s+)?(?:the\s+)?(?:past|last|previous|recent)\s+"
                     rf"(?P<n>{_NUMBER})\s+(?P<u>{_UNIT})\b", re.IGNORECASE),
          lambda m, t: _past(_count(m["n"]), m["u"], t)),
    _Form(re.compile(rf"\b(?:(?:in|over|during|for)\s+)?the\s+(?:past|last)\s+few\s+(?P<u>{_UNIT})\b", re.IGNORECASE),
          lambda m, t: _past(3, m["u"], t)),
    _Form(re.compile(r"\b(?:(?:in|over|during|for)\s+)?the\s+past\s+(?P<u>day|week|month|year|quarter)\b", re.IGNORECASE),
          lambda m, t: _past(1, m["u"], t)),
    _Form(re.compile(rf"\b(?P<n>{_NUMBER})\s+(?P<u>{_UNIT})\s+ago\b", re.IGNORECASE),
          lambda m, t: _ago(_count(m["n"]), m["u"], t)),
    _Form(re.compile(r"\bearlier\s+this\s+(?P<u>week|month|year|quarter)\b", re.IGNORECASE), _earlier_this),
    _Form(re.compile(rf"\b(?:at\s+|by\s+)?(?:the\s+)?(?P<w>end)\s+of\s+(?P<a>{_P})\b", re.IGNORECASE), _part, latest=True),
    _Form(re.compile(rf"\b(?:in\s+|at\s+)?(?:the\s+)?(?P<w>early|mid|late|beginning|start|middle)(?:\s+of|-|\s+)\s*"
                     rf"(?P<a>{_P})\b", re.IGNORECASE), _part),
    _Form(re.compile(r"\b(?:over|during|on|at)\s+(?:the|this)\s+weekend\b|\b(?:this|the)\s+weekend\b", re.IGNORECASE),
          lambda m, t: _period("weekend", 0, t)),
    _Form(re.compile(r"\b(?:over|during|on|at)\s+last\s+weekend\b|\blast\s+weekend\b", re.IGNORECASE),
          lambda m, t: _period("weekend", -1 if t.weekday() >= 5 else 0, t)),
    # A bare point: a month name needs a preposition before it or a year after it ("may" is a verb).
    _Form(re.compile(rf"\b(?:(?:in|on|during|for|of|at)\s+(?:the\s+)?)?(?P<a>{_P})\b", re.IGNORECASE),
          lambda m, t: _bare(m, t)),
]


_LEAD = re.compile(r"^(?:in|on|during|for|of|at)\s", re.IGNORECASE)


def _bare(m: re.Match[str], today: date) -> Range | None:
    inner = re.fullmatch(POINT, m["a"], re.IGNORECASE)
    if inner is None:
        return None
    g = inner.groupdict()
    if g["my"] and not g["my_y"] and not _LEAD.match(m.group()):
        return None  # "March" alone: too often a verb or a name ("may", "March of Dimes")
    if g["y"] and not re.match(r"(?:in|during)\s+\d", m.group(), re.IGNORECASE):
        return None  # a bare number is not a year ("the 1987 shares") unless "in 1987"
    if g["wd"] and not (g["wd_w"] or _LEAD.match(m.group())):
        return None  # "Friday" alone is often a name ("Black Monday"); "on Friday", "last Friday" are dates
    return _point(inner, today)


# Words that ask for the newest state of a fact. "current account" is a balance, not a time.
LATEST = re.compile(
    r"\b(?:latest|newest|most\s+recent(?:ly)?|current(?:ly)?(?!\s+accounts?\b)|"
    r"(?:right\s+)?now|as\s+of\s+(?:now|today)|at\s+present|presently|still|so\s+far|to\s+date|"
    r"these\s+days|nowadays|recently|lately)\b", re.IGNORECASE)


def resolve(question: str, today: date) -> Resolution:
    """The window and latest-ness a question asks for, read against `today` (the asking date)."""
    spans: list[tuple[int, int]] = []
    window: Window | None = None
    latest = False
    taken: list[tuple[int, int]] = []
    for form in FORMS:
        for m in form.pattern.finditer(question):
            if any(m.start() < end and start < m.end() for start, end in taken):
                continue
            days = form.resolve(m, today)
            if days is None:
                continue
            taken.append((m.start(), m.end()))
            latest = latest or form.latest
            if window is None or m.start() < window.offset:
                window = _window(days, question[m.start():m.end()], m.start(), today)
    for m in LATEST.finditer(question):
        if not any(m.start() < end and start < m.end() for start, end in taken):
            taken.append((m.start(), m.end()))
            latest = True
    spans = sorted(taken)
    return Resolution(strip_spans(question, spans), window, latest, tuple(spans))


def _window(days: Range, phrase: str, offset: int, today: date) -> Window:
    start, end = days
    if end is not None and end > today and (start is None or start <= today):
        end = today  # nothing after the asking date can be found anyway; say so
    return Window(start, end, phrase.strip(), offset)


def strip_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """`text` without the spans, spaces tidied ("What did the Fed do last week?" → "What did the
    Fed do?"); the text itself if nothing would be left."""
    out, at = [], 0
    for start, end in sorted(spans):
        out.append(text[at:start])
        at = end
    out.append(text[at:])
    stripped = re.sub(r"\s+([?.!,;:])", r"\1", re.sub(r"\s{2,}", " ", "".join(out))).strip(" ,;")
    return stripped if any(ch.isalnum() for ch in stripped) else text
