"""The learned extractive answerer: features, fitting, the model file, and the answering contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.answer.extractive import features as F
from rag.answer.extractive.answerer import ExtractiveAnswerer
from rag.answer.extractive.candidates import sentences
from rag.answer.extractive.model import (
    SHIPPED_MODEL,
    AnswererModel,
    fit_grouped_softmax,
    fit_logistic,
    load_model,
)
from rag.answer.extractive.questions import question_info
from rag.answer.extractive.training import answer_f1, collect, folds, train
from rag.embedding.cache import remembering
from rag.embedding.wordpieces import soft_overlaps
from rag.eval.runner import load_squad
from rag.eval.squad import normalize_answer
from rag.text.terms import stems
from rag.types import Article
from tests.support.paths import DEV_A


def _column(x: np.ndarray, names: tuple[str, ...], name: str) -> np.ndarray:
    return x[:, names.index(name)]


def test_span_candidates_hold_the_typed_answer_and_never_only_question_words():
    q = question_info("When did the Normans conquer England?")
    sentence = "The Normans conquered England in 1066, led by Duke William."
    spans, x = F.span_candidates(q, sentence)
    texts = [s.text for s in spans]
    assert "1066" in texts and "Duke William" in texts
    assert "Normans" not in texts and "England" not in texts  # echoes of the question
    assert all(sentence[s.start:s.end] == s.text for s in spans)
    typed = _column(x, F.SPAN_FEATURES, "date:typed_exact")
    assert typed[texts.index("1066")] == 1.0 and typed[texts.index("Duke William")] == 0.0
    # Features of other question kinds stay zero: weights are per kind.
    assert not _column(x, F.SPAN_FEATURES, "name:typed_exact").any()


def test_window_bags_equal_the_stems_of_the_window_text():
    from rag.types import Passage, Span

    text = "The U.S. Senate met. It voted 52-48 on Tuesday. Mr. O'Neill's bill passed. Dr. Smith spoke."
    spans, start = [], 0
    for part in ["The U.S. Senate met.", "It voted 52-48 on Tuesday.", "Mr. O'Neill's bill passed.", "Dr. Smith spoke."]:
        start = text.index(part, start)
        spans.append(Span(start, start + len(part)))
    passage = Passage("a:0", "a", "Senate vote", text, 0, len(text), tuple(spans), 0.1)
    cands = sentences([passage])
    assert len(cands) == 4
    for c in cands:  # joined from the sentences' bags, as the features read it, not re-stemmed
        assert F.window_bag(c) == stems(c.window)
    assert F.passage_bag(passage) == stems(text) | stems("Senate vote")


def test_span_features_count_what_each_span_holds():
    q = question_info("Which companies did the Senate fine in 2004?")
    sentence = "The Senate fined Enron, WorldCom and 3 other firms in 2004 (Andersen)."
    spans, x = F.span_candidates(q, sentence)
    row = {s.text: x[i] for i, s in enumerate(spans)}
    col = {name: i for i, name in enumerate(F.SPAN_FEATURES)}
    form = q.form
    enron_worldcom = row["Enron, WorldCom and 3"]
    assert enron_worldcom[col[f"{form}:has_comma"]] == 1.0 and enron_worldcom[col[f"{form}:has_and"]] == 1.0
    assert enron_worldcom[col[f"{form}:has_digit"]] == 1.0
    assert row["Enron"][col[f"{form}:has_comma"]] == 0.0 and row["Enron"][col[f"{form}:has_digit"]] == 0.0
    assert row["Enron"][col[f"{form}:capitalised_share"]] == 1.0
    assert row["Enron"][col[f"{form}:anchor_near"]] == 0.5  # "fined" stems as the question's "fine", two tokens back
    assert row["Andersen"][col[f"{form}:in_brackets"]] == 1.0
    assert row["Enron"][col[f"{form}:anchors_left"]] == 2 / 5  # "Senate", "fined"
    assert row["Enron"][col[f"{form}:anchors_right"]] == 1 / 5  # "2004"


def test_sentence_features_see_missing_key_terms(embedder, pieces):
    from rag.types import Passage, Span

    text = "Rollo was a Viking leader. He signed a treaty with King Charles III in 911."
    passage = Passage("a:0", "a", "Normandy", text, 0, len(text), (Span(0, 26), Span(27, len(text))), 0.03)
    cands = sentences([passage])
    assert [c.text for c in cands] == ["Rollo was a Viking leader.", text[27:]]
    for question, expected in [("Who signed a treaty with Charles III?", 1.0),
                               ("Who signed a treaty with Louis IX?", 0.0)]:
        q = question_info(question)
        vectors = embedder.embed([question] + [c.text for c in cands])
        soft = soft_overlaps(pieces, question, [c.text for c in cands], [c.before for c in cands])
        x = F.sentence_features(q, cands, vectors[1:] @ vectors[0], soft)
        assert x.shape == (2, len(F.SENTENCE_FEATURES))
        coverage = _column(x, F.SENTENCE_FEATURES, "keys_in_sentence")
        assert coverage[1] == expected  # "charles", "iii" vs "louis", "ix"
        assert _column(x, F.SENTENCE_FEATURES, "overlap")[1] > _column(x, F.SENTENCE_FEATURES, "overlap")[0]


def test_grouped_softmax_and_logistic_learn_a_separable_signal():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(200), 5)
    x = np.c_[np.ones(1000), rng.normal(size=(1000, 2))]
    target = np.zeros(1000)
    best = np.array([g * 5 + np.argmax(x[g * 5:(g + 1) * 5, 1]) for g in range(200)])
    target[best] = 1.0
    scorer = fit_grouped_softmax(("bias", "signal", "noise"), x, groups, target)
    assert scorer.weights[1] > 5 * abs(scorer.weights[2])
    y = (x[:, 2] > 0).astype(float)
    logistic = fit_logistic(("bias", "noise", "signal"), x, y)
    assert ((logistic.score(x) > 0) == (y == 1)).mean() > 0.95


def test_model_file_round_trips_and_refuses_other_features(tmp_path):
    assert SHIPPED_MODEL.exists(), "the shipped model is missing: run `rag train answerer`"
    model = AnswererModel.load(SHIPPED_MODEL)
    assert model.trained_on["file"] == DEV_A.name and len(model.trained_on["sha256"]) == 64
    assert model.trained_on["articles"] and model.trained_on["questions"] > 1000
    path = tmp_path / "m.json"
    model.save(path)
    again = AnswererModel.load(path)
    assert np.allclose(again.span.weights, model.span.weights, atol=1e-6) and again.margin == model.margin
    data = json.loads(path.read_text())
    data["sentence"]["names"][1] = "something_else"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="retrain"):
        AnswererModel.load(path)
    assert load_model("none") is None


def test_learned_answerer_cites_verbatim_and_abstains_with_the_closest(service):
    text = ("The Zorblat copper mine in Quellan reopened on Monday after a strike. "
            "The mine employs 4,200 workers, the owner Vantrex said. "
            "Vantrex was founded in 1987 by Ilse Marrow.")
    service.ingest([Article(id="z", title="Zorblat mine reopens", text=text)])
    service.answerer = ExtractiveAnswerer.with_model(service.embedder, service.retriever.pieces, "shipped")
    assert service.answerer.model is not None
    answer = service.ask("Who founded Vantrex?")
    assert not answer.abstained and answer.text.endswith(" [1]"), answer
    assert "Ilse Marrow" in answer.text
    citation = answer.citations[0]
    assert text[citation.start:citation.end] == citation.quote == "Vantrex was founded in 1987 by Ilse Marrow."
    possessive = service.ask("How many workers does Vantrex's mine employ?")  # "Vantrex's": Vantrex
    assert not possessive.abstained and "4,200" in possessive.text, possessive
    refused = service.ask("Who founded the Zorblat mine's rival Glenmore Steel in Belgium?")
    assert refused.abstained and refused.citations == () and refused.closest is not None
    assert text[refused.closest.start:refused.closest.end] == refused.closest.quote


def test_training_on_a_few_questions_writes_a_usable_model(service, tmp_path):
    articles, questions = load_squad(DEV_A)
    service.ingest(a for a in articles if a.title == "Normans")
    subset = [q for q in questions if q.article == "Normans"][:60]
    answerer = ExtractiveAnswerer(remembering(service.embedder), service.retriever.pieces)
    examples = collect(service.search, answerer, subset)
    model = train(examples, {"file": "x"})
    model.save(tmp_path / "m.json")
    answerer.model = AnswererModel.load(tmp_path / "m.json")
    # In-sample, the learned sentence scorer must beat chance clearly (about 1 in 30 candidates).
    answerable = [ex for ex in examples if ex.question.answerable]
    decisions = [ExtractiveAnswerer.decide(ex.prepared, answerer.model) for ex in answerable]
    right = [any(normalize_answer(g) in normalize_answer(ex.prepared.sentences[d.best].text)
                 for g in ex.question.answers) for d, ex in zip(decisions, answerable, strict=True)]
    assert np.mean(right) > 0.5
    assert np.mean([answer_f1(d.span, ex.question.answers) for d, ex in zip(decisions, answerable, strict=True)]) > 0.1
    assert all(0.0 <= d.p_answerable <= 1.0 and 0.0 <= d.expected_f1 <= 1.0 for d in decisions)
    assert folds(["c", "a", "b", "d"], 2) == [["a", "c"], ["b", "d"]]
    with pytest.raises(ValueError, match="folds"):
        folds(["a"], 2)
