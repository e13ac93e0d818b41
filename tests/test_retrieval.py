"""Fusion and the article boost: the pure functions, and through a real index."""

import pytest

from rag.retrieval import Retriever, article_boost, convex_fusion
from rag.types import Article

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
        retriever = Retriever(service.store, service.embedder, article_weight=weight)
        return [p.article_id for p in retriever.search(question, top_k=4)]

    plain, boosted = articles(0.0), articles(0.15)
    assert plain.index("stray") < plain.count("story")  # without the boost it outranks part of the story
    assert boosted == ["story"] * (len(boosted) - 1) + ["stray"]
    assert service.search(question, 4) and [p.article_id for p in service.search(question, 4)] == boosted


def test_a_negative_article_weight_is_refused(service):
    with pytest.raises(ValueError, match="article_weight must be >= 0, got -0.1"):
        Retriever(service.store, service.embedder, article_weight=-0.1)
