"""Citation parsing and support scoring (pure functions and the real embedder), and the shipped
calibration."""

from __future__ import annotations

import json

from rag.answer.calibration import CALIBRATION_FILE, calibrate
from rag.answer.citations import (
    EMBEDDING_WEIGHT,
    SupportScorer,
    claims,
    lexical_support,
)
from rag.answer.llm import MarkerFilter
from rag.config import Settings
from tests.support.paths import SHARED


def test_claims_take_markers_that_open_the_next_sentence():
    found = claims("Russia and China vetoed it. [1] The vote was 13 to 2 [2][2]. Nothing else.")
    assert [c.cites for c in found] == [(1,), (2,), ()]
    assert found[0].text == "Russia and China vetoed it. [1]" and found[0].bare == "Russia and China vetoed it."


def test_lexical_support_stems_words():
    assert lexical_support("Russia vetoes resolutions", "Russia vetoed the resolution") == 1.0
    assert lexical_support("Brazil won in Madrid", "Russia vetoed the resolution") == 0.0


def test_support_scores_separate_a_supported_claim_from_an_unsupported_one(embedder):
    scorer = SupportScorer(embedder, threshold=Settings().support_threshold)
    evidence = ["At the United Nations, Russia and China vetoed the cease-fire resolution.",
                "The vote came after weeks of talks."]
    good, bad, none = scorer.score([("Russia and China vetoed the UN cease-fire resolution.", evidence),
                                    ("Brazil beat Germany in the World Cup final in Madrid.", evidence),
                                    ("Anything.", [])])
    assert good.score >= scorer.threshold > bad.score
    assert good.per_sentence[0] > good.per_sentence[1]
    assert none.score == 0.0


def test_the_stream_filter_holds_back_partial_markers():
    marks = MarkerFilter(count=2)
    out = "".join(marks.feed(d) for d in ["Russia ve", "toed it [", "1", "][", "9", "9] and [2", "]."])
    out += marks.flush()
    assert out == "Russia vetoed it [1] and [2]."
    abstain = MarkerFilter(count=2)
    assert "".join(abstain.feed(d) for d in ["NOT_", "IN_ART", "ICLES"]) + abstain.flush() == ""


def test_the_shipped_calibration_is_the_one_in_use(embedder, tmp_path):
    shipped = json.loads(CALIBRATION_FILE.read_text())
    assert shipped["threshold"] == Settings().support_threshold
    assert shipped["embedding_weight"] == EMBEDDING_WEIGHT
    assert shipped["data"]["file"] == "squad2-dev-a.json"
    # The calibration runs (here on one article of dev-a) and separates supported pairs well.
    squad = json.loads((SHARED / "eval" / "squad2-dev-a.json").read_text())
    small = tmp_path / "one-article.json"
    small.write_text(json.dumps({"version": squad["version"], "data": squad["data"][:1]}))
    result = calibrate(embedder, small)
    assert result["data"]["pairs"] > 100
    assert result["at_threshold"]["f1"] > 0.8
