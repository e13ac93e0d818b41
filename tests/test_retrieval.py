"""Fusion, the article boost and the coverage re-scoring: the pure functions, and through a real index."""

import pytest

from rag.eval.runner import load_squad
from rag.ingest import read_file
from rag.retrieval import Retriever, article_boost, convex_fusion, coverage_rescored
from rag.types import Article, Passage
from tests.support.paths import BBC, SHARED

STORY = " ".join([
    "Dock workers at the port of Rotterdam walked out on Monday over pay.",
    "The strike closed the container terminals for the first time in twenty years.",
    "Union leaders said the dockers would stay out until the port authority improved its offer.",
    "Shipping lines diverted vessels to Antwerp and Hamburg as the stoppage entered its third day.",
    "The port authority said the walkout was costing the Dutch economy millions of euros a day.",
    "Talks between the union and the port employers broke down on Wednesday evening.",
    "Police kept watch as pickets gathered at the gates of the Maasvlakte terminal.",
    "Exporters warned that perishable cargo was rotting on the quays of the harbour.",
    "The government urged both sides to return to mediation before the strike spread.",
    "Dockers voted on Friday to accept a new offer and return to work at the port.",
] * 2)
STRAY = ("A children's choir sang at the opening of a new concert hall on Monday. The hall's director said "
         "the dockers' strike song was the evening's favourite. Tickets sold out in an hour.")


def test_convex_fusion_gives_a_missing_hit_each_list_floor():
    fused = dict(convex_fusion([(1, 0.9), (2, 0.5)], [(2, 10.0), (3, 5.0)], 0.5))
    assert fused[1] == pytest.approx(0.5 * 0.9)
    assert fused[2] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    assert fused[3] == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)  # the lowest cosine seen, half the best BM25


def test_article_boost_adds_the_articles_best_scores():
    fused = [(10, 0.9), (20, 0.8), (21, 0.7), (22, 0.6), (23, 0.5)]
    article_of = {10: "stray", 20: "story", 21: "story", 22: "story", 23: "story"}
    boosted = article_boost(fused, article_of, weight=0.5, per_article=3)
    assert [doc for doc, _ in boosted] == [20, 21, 22, 23, 10]
    assert dict(boosted)[10] == pytest.approx(0.9 + 0.5 * 0.9)
    assert dict(boosted)[23] == pytest.approx(0.5 + 0.5 * (0.8 + 0.7 + 0.6))  # only the best three count
    assert article_boost(fused, article_of, weight=0.0) == fused
    # A chunk the snapshot does not know (written since) counts as an article of its own.
    assert dict(article_boost([(99, 0.4)], {}, weight=0.5)) == {99: pytest.approx(0.6)}


def test_a_stray_match_gives_way_to_the_story_the_question_is_about(service):
    service.ingest([Article(id="story", title="Rotterdam port strike", text=STORY),
                    Article(id="stray", title="Concert hall opens", text=STRAY)])
    question = "Why did the dockers strike?"

    def articles(weight: float) -> list[str]:
        retriever = Retriever(service.store, service.embedder, service.retriever.pieces, article_weight=weight,
                              coverage_weight=0.0)
        return [p.article_id for p in retriever.search(question, top_k=4)]

    plain, boosted = articles(0.0), articles(0.15)
    assert plain.index("stray") < plain.count("story")  # without the boost it outranks part of the story
    assert boosted == ["story"] * (len(boosted) - 1) + ["stray"]
    assert [p.article_id for p in service.search(question, 4)] == boosted  # coverage re-scoring keeps it so


def test_a_negative_weight_or_an_empty_re_scoring_is_refused(service):
    for bad, message in [({"article_weight": -0.1}, "article_weight must be >= 0, got -0.1"),
                         ({"coverage_weight": -0.5}, "coverage_weight must be >= 0, got -0.5"),
                         ({"rescored": 0}, "rescored must be >= 1, got 0")]:
        with pytest.raises(ValueError, match=message):
            Retriever(service.store, service.embedder, service.retriever.pieces, **bad)


def _passage(chunk_id: str, score: float) -> Passage:
    return Passage(chunk_id=chunk_id, article_id=chunk_id.split(":")[0], title="", text="", start=0, end=0,
                   sentences=(), score=score, scores={"fused": score})


def test_coverage_re_scoring_adds_the_weighted_coverage_and_sorts():
    passages = [_passage("a:0", 0.9), _passage("b:0", 0.8), _passage("c:0", 0.7)]
    rescored = coverage_rescored(passages, [0.1, 0.9, -0.2], weight=0.5)
    assert [p.chunk_id for p in rescored] == ["b:0", "a:0", "c:0"]
    assert [p.score for p in rescored] == pytest.approx([0.8 + 0.45, 0.9 + 0.05, 0.7])  # a negative one takes nothing away
    assert rescored[0].scores == {"fused": 0.8, "coverage": pytest.approx(0.9)}
    assert [p.score for p in coverage_rescored(passages, [0.1, 0.9, -0.2], weight=0.0)] == [0.9, 0.8, 0.7]


def test_the_passage_that_holds_the_question_outranks_a_chance_match(service):
    """A dev-a question with BBC articles beside it, as `rag eval --distractors` sees it: "Gate"
    stems as "Gates" does, and Bill Gates's CES speech outranks the Huguenot passage that answers
    until passages are re-scored by how much of the question they hold ("other name ... known")."""
    articles, questions = load_squad(SHARED / "eval" / "squad2-dev-a.json")
    question = next(q for q in questions if q.question == "By what other name was the Gate known?")
    bbc = [item for name in ("tech/134", "business/487", "entertainment/256")
           for item in read_file(BBC / f"{name}.txt", max_bytes=1_000_000)]
    report = service.ingest([a for a in articles if a.id == "squad-huguenot"] + bbc)
    assert len(report.ingested) == 4, report

    def ranked(weight: float) -> list[Passage]:
        retriever = Retriever(service.store, service.embedder, service.retriever.pieces, coverage_weight=weight)
        return retriever.search(question.question, top_k=3)

    plain, rescored = ranked(0.0), ranked(service.settings.coverage_weight)
    assert plain[0].article_id.startswith("tech-134") and "coverage" not in plain[0].scores
    assert rescored[0].article_id == "squad-huguenot" and "Huguon" in rescored[0].text
    assert rescored[0].scores["coverage"] > rescored[1].scores["coverage"]
    assert [p.chunk_id for p in service.search(question.question, 3)] == [p.chunk_id for p in rescored]
