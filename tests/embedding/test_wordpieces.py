"""Soft matching of question and text word pieces: the table read from the bundled weights, and what it scores."""

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file

from rag.embedding.model import bundled_model_path
from rag.embedding.wordpieces import TABLE, WordPieceVectors, soft_coverage, soft_overlaps


def test_the_table_is_the_models_word_piece_embeddings_to_int8_rounding(pieces):
    reference = load_file(str(bundled_model_path() / "model.safetensors"))[TABLE]
    ids = np.array(pieces.ids(["Kublai Khan bought grain in 1271"])[0] + [0, len(reference) - 1])
    expected = reference[ids] / np.linalg.norm(reference[ids], axis=1, keepdims=True)
    rows = pieces.unit_vectors(ids)
    assert np.all(np.sum(rows * expected, axis=1) / np.linalg.norm(rows, axis=1) > 0.999)  # least over the whole table: 0.9995
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=5e-3)
    assert pieces.content_ids("What did the khan buy?") == pieces.ids(["khan buy"])[0]


def test_word_piece_ids_are_the_tokenizers_with_and_without_the_word_cache():
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(bundled_model_path() / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128 and truncates, as the encoder wants
    tokenizer.no_truncation()
    texts = ["Café naïve RÉSUMÉ, “quoted” foo_bar 3.5% e-mail", "Kublai Khan's  capital\tDadu",
             "non\u00a0breaking\u2003spaces; 中文字", "", "Kublai Khan's capital was Dadu."]
    expected = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    small = WordPieceVectors(bundled_model_path(), max_cached_words=5)  # refilled on every call
    for vectors in (WordPieceVectors(bundled_model_path()), small):
        assert vectors.ids(texts) == expected
        assert vectors.ids(texts[::-1]) == expected[::-1]  # from the cache this time


def test_soft_overlap_counts_verbatim_related_and_preceding_words(pieces):
    question = "When did the company purchase the factory?"
    candidates = [
        ("In 1998 the company purchased the factory.", ""),  # the words themselves
        ("In 1998 the firm bought the plant.", ""),  # related words only
        ("Rain fell on the hills all week.", ""),  # nothing of the question
        ("It bought it in 1998.", "The company had long wanted the factory."),  # words in the sentence before
    ]
    soft = soft_overlaps(pieces, question, *zip(*candidates, strict=True))
    assert soft.shape == (4, 2)
    alone, with_before = soft[:, 0], soft[:, 1]
    assert alone[0] > alone[1] > alone[2]
    assert with_before[3] > alone[3] and with_before[3] > alone[1]
    assert np.array_equal(with_before[:3], alone[:3])  # no sentence before: nothing added
    assert with_before.max() <= 1.0 + 5e-3  # 1 for a word found verbatim, to the int8 rounding
    assert soft_overlaps(pieces, "Where is the factory?", ["The factory is in Leeds."], [""])[0, 0] == pytest.approx(1.0, abs=5e-3)


def test_soft_coverage_weighs_the_words_few_texts_hold(pieces):
    question = "When did the council buy the brewery?"
    texts = ["The council bought the brewery in 1987.",  # every content word, "buy" as "bought"
             "The council met on Tuesday.",
             "The council met on Tuesday. The council met on Tuesday.",
             "The brewery closed.",
             ""]
    coverage = soft_coverage(pieces, question, texts)
    assert coverage.shape == (5,)
    assert coverage[0] > 0.8 and coverage[0] > coverage[3] > coverage[1] > 0.0
    assert coverage[1] == pytest.approx(coverage[2])  # whether a word is there counts, not how often
    assert coverage[4] == 0.0
    # A sentence's soft overlap among sentences is its coverage among them.
    np.testing.assert_allclose(soft_overlaps(pieces, question, texts[:4], [""] * 4)[:, 0],
                               soft_coverage(pieces, question, texts[:4]))


def test_a_question_of_stop_words_only_scores_zero(pieces):
    assert not soft_coverage(pieces, "What was it?", ["It was there."]).any()
    assert soft_coverage(pieces, "Who built it?", []).shape == (0,)
    assert not soft_overlaps(pieces, "What was it?", ["It was there."], [""]).any()
    assert soft_overlaps(pieces, "Who is he?", [], []).shape == (0, 2)
    with pytest.raises(ValueError, match="2 sentences but 1 sentences before them"):
        soft_overlaps(pieces, "Who built it?", ["A built it.", "B did."], [""])


def test_a_weights_file_without_the_table_is_refused_by_name(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes((bundled_model_path() / "tokenizer.json").read_bytes())
    header = json.dumps({"other.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    with pytest.raises(ValueError, match="no tensor 'embeddings.word_embeddings.weight'"):
        WordPieceVectors(folder)
