"""What a question asks about, so that an answer comes from text about that and nothing else.

A reader trusts "five million" for "How many copies has Halo 2 sold?" only if the sentence counts
copies, not "released on 11 November". Three checks, each a small pure function:

- the counted thing: "how many X …" — X (its head noun) must be in the answer sentence;
- the named thing: "which referee …", "what scheme …", "who is Bill Cosby's lawyer" — the noun
  must be in the sentence, its neighbours or the headline (kinds of answer such as "company",
  "city", "person" are not checked: they are what the answer is, not what the text is about);
- the shape of the answer: a number for "how many", a date for "when", a name (not a weekday) for
  "who", and never the question's own words ("Mr Blunkett's" for a question about Blunkett).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.answer.extractive.candidates import DATE, NUMBER
from rag.text.terms import STOPWORDS, content_terms, stem

_AUX = r"(?:is|are|was|were|has|have|had|do|does|did|will|would|could|can|should|may|might|must)"
_COUNTED = re.compile(rf"\bhow (?:many|much)\s+((?:(?!{_AUX}\b)[\w'’-]+\s+){{0,3}}?)(?={_AUX}\b)", re.IGNORECASE)
_COUNTED_FIRST = re.compile(r"\bhow many\s+([\w'’-]+)", re.IGNORECASE)
_WHICH_NOUN = re.compile(r"\b(?:which|what)\s+([a-z][\w-]*)", re.IGNORECASE)
_WHO_ROLE = re.compile(r"^\s*who (?:is|was|are|were)\s+(?:the\s+)?(.+?)\??\s*$", re.IGNORECASE)
_CALLED = re.compile(r"\bwhat (?:is|was|are|were)\b.*\b(?:called|named|known as)\s*\??\s*$", re.IGNORECASE)
# Nouns that name the kind of answer, not the subject: not looked for in the text.
ANSWER_KINDS = frozenset(stem(w) for w in [
    "company", "firm", "group", "organisation", "organization", "person", "people", "man", "woman", "country",
    "city", "town", "place", "region", "state", "year", "date", "day", "month", "time", "number", "amount",
    "share", "percentage", "proportion", "level", "price", "rate", "kind", "type", "sort", "way", "reason",
    "name", "thing", "one", "team", "party", "nation", "body", "official", "individual",
])
# "Who approved …", "Who will start …", "Who was named …": the verb a sentence must tell.
_WHO_DEED = re.compile(rf"^\s*[Ww]ho(?:\s+{_AUX})?(?:\s+(?:be|been|being|not))*\s+([a-z][a-z-]+)\b")
_CALLED_NOUN = re.compile(r"\b[Ww]hat (?:is|was|are|were) (?:the |an? )?(?:[A-Z][\w'’.-]*\s+)*([a-z][a-z-]+)\b")
_WHICH_DEED = re.compile(r"\b(?:[Ww]hich|[Ww]hat)\s+[a-z][\w-]*\s+([a-z][a-z-]+)\b")
# Relative dates say nothing once the day has passed: no answer to "when".
_RELATIVE = re.compile(r"^(?:this|last|next) (?:week|month|year)$|^(?:yesterday|today|tomorrow)$", re.IGNORECASE)
# "How much money …" is answered by an amount of money, whatever the sentence calls it.
MONEY = frozenset(stem(w) for w in ["money", "cash", "funding", "funds"])
CURRENCY = re.compile(r"[$£€¥]|\b(?:dollars?|pounds?|euros?|yen)\b", re.IGNORECASE)
_TITLES = frozenset(["mr", "mrs", "ms", "dr", "sir", "lord", "lady", "dame", "miss", "prof"])


# News tells one deed in several verbs: "Million Dollar Baby beat The Aviator to the top awards"
# says which film won. A deed asked about is told by any verb of its family.
_DEED_FAMILIES = [
    ["win", "beat", "victory", "triumph", "scoop", "clinch", "claim", "take"],
    ["defeat", "beat", "knock", "dispatch", "oust", "eliminate", "overcome", "edge"],
    ["buy", "acquire", "purchase", "takeover", "snap"],
    ["sell", "offload", "dispose"],
    ["sue", "lawsuit", "legal", "court"],
    ["say", "tell", "claim", "insist", "argue", "warn"],
    ["appoint", "name", "hire", "choose", "pick", "select"],
    ["resign", "quit", "step", "leave"],
]
# Irregular verbs, which no stemmer joins to their base ("the government gave land" tells who
# "was given land"): past and participle → base.
_IRREGULAR = {
    "give": "gave given", "take": "took taken", "win": "won", "sell": "sold", "buy": "bought", "lead": "led",
    "tell": "told", "say": "said", "make": "made", "begin": "began begun", "go": "went gone", "come": "came",
    "run": "ran", "hold": "held", "leave": "left", "meet": "met", "find": "found", "bring": "brought",
    "keep": "kept", "lose": "lost", "pay": "paid", "see": "saw seen", "send": "sent", "spend": "spent",
    "stand": "stood", "strike": "struck", "write": "wrote written", "choose": "chose chosen",
    "break": "broke broken", "drive": "drove driven", "fall": "fell fallen", "fight": "fought",
    "grow": "grew grown", "know": "knew known", "rise": "rose risen", "shoot": "shot", "throw": "threw thrown",
    "build": "built", "catch": "caught", "draw": "drew drawn", "eat": "ate eaten", "feel": "felt",
    "fly": "flew flown", "forget": "forgot forgotten", "freeze": "froze frozen", "hide": "hid hidden",
    "lend": "lent", "ride": "rode ridden", "seek": "sought", "shake": "shook shaken", "sing": "sang sung",
    "sink": "sank sunk", "speak": "spoke spoken", "steal": "stole stolen", "swear": "swore sworn",
    "teach": "taught", "think": "thought", "wear": "wore worn", "withdraw": "withdrew withdrawn",
    "overtake": "overtook overtaken", "undertake": "undertook undertaken", "arise": "arose arisen",
    "bear": "bore born borne", "bite": "bit bitten", "blow": "blew blown", "deal": "dealt", "feed": "fed",
    "flee": "fled", "forbid": "forbade forbidden", "forgive": "forgave forgiven", "hang": "hung",
    "lay": "laid", "light": "lit", "mean": "meant", "overcome": "overcame", "sit": "sat", "sleep": "slept",
    "slide": "slid", "spin": "spun", "spring": "sprang sprung", "sting": "stung", "strive": "strove striven",
    "swim": "swam swum", "swing": "swung", "tear": "tore torn", "wake": "woke woken", "weep": "wept",
}
_BASE_OF = {stem(form): stem(base) for base, forms in _IRREGULAR.items() for form in forms.split()}
DEED_FAMILIES: dict[str, frozenset[str]] = {}
for _family in _DEED_FAMILIES:
    _stems = frozenset(_BASE_OF.get(stem(w), stem(w)) for w in _family)
    for _member in _stems:
        DEED_FAMILIES[_member] = DEED_FAMILIES.get(_member, frozenset()) | _stems


def tells_deed(deed: frozenset[str], words: set[str]) -> bool:
    """Whether `words` (a `bag`) tell each deed, in any form of its own verb or of one of its family."""
    bases = {_BASE_OF.get(w, w) for w in words}
    return all(bases & DEED_FAMILIES.get(_BASE_OF.get(d, d), frozenset({_BASE_OF.get(d, d)})) for d in deed)


@dataclass(frozen=True, slots=True)
class Asked:
    counted: frozenset[str]  # stems one of which the sentence must hold ("how many copies" → copi)
    topic: frozenset[str]  # stems the sentence window or headline must hold ("which referee" → refere)
    wants_name: bool  # "what is X called", "which X": a name, like "who"
    deed: frozenset[str] = frozenset()  # "who approved …" → approv: the sentence must tell that deed


def asked(question: str, kind: str) -> Asked:
    counted: set[str] = set()
    if match := _COUNTED.search(question):
        head = [w for w in match.group(1).split() if w.lower() not in STOPWORDS]
        if head:
            counted = {_stem_word(head[-1])}
    elif match := _COUNTED_FIRST.search(question):  # "how many adult Americans own …": no auxiliary
        counted = {_stem_word(match.group(1))}
    topic: set[str] = set()
    which = False
    if kind in ("other", "name") and (match := _WHICH_NOUN.search(question)):
        noun = _stem_word(match.group(1))
        if noun not in ANSWER_KINDS and match.group(1).lower() not in STOPWORDS:
            topic = {noun}
            which = match.group(0).lower().startswith("which")  # "which regulator": one that has a name
    called = bool(_CALLED.search(question))
    if called and (match := _CALLED_NOUN.search(question)):  # "What is Microsoft's scheme … called?"
        topic = {_stem_word(match.group(1))} - ANSWER_KINDS
    elif kind == "name" and (match := _WHO_ROLE.match(question)):
        rest = match.group(1)
        # "Who is Bill Cosby's lawyer?" names a role; "Who is investigating …", "Who was given …" a
        # deed: not checked.
        if not re.search(r"\b\w+(?:ing|ed)\b", rest) and not any(stem(w) in _BASE_OF for w in rest.lower().split()):
            lower = [w for w in re.findall(r"\b[a-z][a-z-]+\b", rest) if w not in STOPWORDS]
            topic = {_stem_word(w) for w in lower} - ANSWER_KINDS
    deed: set[str] = set()
    match = _WHO_DEED.match(question) if kind == "name" else None
    if kind in ("other", "name") and topic:
        match = _WHICH_DEED.search(question) or match  # "Which film won …", "Which referee allowed …"
    if match and match.group(1) not in STOPWORDS and not re.fullmatch(_AUX, match.group(1)):
        deed = {_stem_word(match.group(1))}
    return Asked(frozenset(counted) - {stem("much"), stem("many")}, frozenset(topic), called or which,
                 frozenset(deed))


def _stem_word(word: str) -> str:
    return stem(re.sub(r"['’]s?$", "", word.lower()))


def bag(text: str) -> set[str]:
    """Stems of the words, hyphenated words also by their parts ("seven-match" holds "match")."""
    words = content_terms(text)
    out = {stem(w) for w in words}
    out |= {stem(p) for w in words if "-" in w for p in w.split("-") if p}
    return out


def shape_ok(span: str, question: str, kind: str, wants_name: bool, topic: frozenset[str] = frozenset()) -> bool:
    """Whether `span` has the shape of what is asked, and is not the question's own words (nor
    the asked-about noun with a modifier: "nominated film" does not say which film)."""
    asked_words = {w.lower() for w in re.findall(r"[\w'’]+", question)}
    span_words = [re.sub(r"['’]s$", "", w.lower()) for w in re.findall(r"[\w'’]+", span)]
    meaningful = [w for w in span_words if w not in STOPWORDS and w not in _TITLES]
    if meaningful and all(w in asked_words for w in meaningful):
        return False
    named = any(w[:1].isupper() or w[:1].isdigit() for w in span.split())
    if topic and topic & bag(span) and not named:
        return False
    if kind == "number":
        return bool(NUMBER.search(span))
    if kind == "date":
        return bool(DATE.search(span)) and not _RELATIVE.match(span.strip())
    if wants_name:
        return span[:1].isupper() or span[:1].isdigit()
    if kind == "name":
        return named and not DATE.fullmatch(span.strip())  # "Tuesday" is not who
    return True
