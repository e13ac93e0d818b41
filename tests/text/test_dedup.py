"""Near-duplicate detection: MinHash signatures with LSH banding."""

from __future__ import annotations

from rag.ingest import read_file
from rag.text.dedup import duplicate_groups, signature, similarity
from tests.support.paths import BBC


def test_minhash_finds_copies_under_a_new_headline_and_not_neighbours():
    (a,) = read_file(BBC / "business" / "023.txt", max_bytes=5_000_000)
    (b,) = read_file(BBC / "business" / "024.txt", max_bytes=5_000_000)
    edited = a.text.replace("economy", "economy,").upper()  # punctuation and case do not matter
    assert similarity(signature(a.text), signature(edited)) == 1.0
    trimmed = a.text[: int(len(a.text) * 0.85)]  # a copy cut short by an editor
    assert similarity(signature(a.text), signature(trimmed)) >= 0.7
    assert similarity(signature(a.text), signature(b.text)) < 0.2
    assert duplicate_groups([a.text, b.text, edited, trimmed]) == [[0, 2, 3], [1]]
