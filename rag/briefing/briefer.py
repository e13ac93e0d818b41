"""Briefing notes over every article that matches a topic and the filters, not a top-k
(llama_index#19573: top-k retrieval cannot summarise a topic).

Offline: every article inside the filters that is about the topic (`Retriever.articles_about`),
near-duplicate copies merged (`rag.text.dedup`), the rest grouped into stories, and salient,
non-redundant sentences picked verbatim: salience is closeness to the topic plus centrality
(closeness to the centroid of all candidate sentences, as in MEAD: Radev et al. 2004), and maximal
marginal relevance (Carbonell and Goldstein 1998) keeps them from repeating one another. A point
also cites the other articles that say the same thing.

With an LLM: map-reduce over all of those articles (`rag.briefing.llm`), every point's citations
checked, and the offline points used when too few survive.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.briefing import select
from rag.briefing.llm import MapReduce
from rag.briefing.render import overview, title
from rag.briefing.types import Briefing, Doc, Progress
from rag.embedding import Embedder
from rag.errors import InvalidInput
from rag.retrieval import ArticleMatch, Retriever
from rag.store import Docstore
from rag.types import NO_FILTERS, Filters

DEFAULT_MAX_ARTICLES = 500
MAX_MAX_ARTICLES = 10_000
READ_BATCH = 200  # articles read from the docstore at a time (and a progress step)


@dataclass
class Briefer:
    """Briefings over the index; `llm` (map-reduce) switches the points to an LLM's, None is offline."""

    retriever: Retriever
    docstore: Docstore
    embedder: Embedder
    llm: MapReduce | None = None
    default_max_articles: int = DEFAULT_MAX_ARTICLES

    def brief(self, topic: str, filters: Filters = NO_FILTERS, max_articles: int | None = None,
              progress: Progress | None = None, windowed: bool = False) -> Briefing:
        """`windowed`: the filters name a time window, and the briefing says what changed across it."""
        topic = topic.strip()
        if not topic:
            raise InvalidInput("topic must not be empty")
        max_articles = self.default_max_articles if max_articles is None else max_articles
        if not 1 <= max_articles <= MAX_MAX_ARTICLES:
            raise InvalidInput(f"max_articles must be between 1 and {MAX_MAX_ARTICLES}, got {max_articles}")
        report = progress or (lambda stage, done, total: None)

        report("matching", 0, 1)
        topic_vector = self.embedder.embed([topic])[0]
        ranked = self.retriever.articles_about(topic, topic_vector, filters)
        report("matching", 1, 1)
        if not ranked:
            where = "" if filters.empty else " inside the filters"
            return Briefing(topic, title(topic, filters), f"No article{where} is about “{topic}”; nothing to brief.",
                            (), (), (), (), 0, 0, 0)
        chosen = ranked[:max_articles]
        docs = self._read(chosen, report)
        docs, merged = select.merge_duplicates(docs)
        stories, centrals = select.group_stories(docs)
        pool, vectors = select.candidate_pool(docs, topic, self.embedder, report)
        points = select.select_points(docs, pool, vectors, topic_vector, select.point_count(len(docs)), stories,
                                      centrals)
        backend, fallback = "extractive", None
        heading = title(topic, filters)
        summary = overview(topic, docs, stories, len(chosen), merged)
        if self.llm is not None:
            try:
                llm_title, llm_overview, llm_points = self.llm.write(topic, docs, report)
                if len(llm_points) >= select.MIN_POINTS:
                    points, backend = llm_points, self.llm.backend
                    heading = llm_title or heading
                    summary = llm_overview or summary
                else:
                    fallback = f"the LLM gave {len(llm_points)} supported points; extractive points used"
            except Exception as error:  # noqa: BLE001 - an LLM failure falls back, and says why
                fallback = f"LLM briefing failed ({type(error).__name__}: {error}); extractive points used"
        return select.assemble(topic, heading, summary, docs, stories, points, len(ranked), len(chosen), merged,
                               backend, fallback, windowed)

    def _read(self, chosen: list[ArticleMatch], report: Progress) -> list[Doc]:
        by_id = {match.article_id: match for match in chosen}
        docs = []
        ids = [match.article_id for match in chosen]
        for start in range(0, len(ids), READ_BATCH):
            for article, spans in self.docstore.articles_with_sentences(ids[start : start + READ_BATCH]):
                match = by_id[article.id]
                docs.append(Doc(article, spans, match.relevance, match.vector, coverage=match.coverage))
            report("reading", min(start + READ_BATCH, len(ids)), len(ids))
        return docs
