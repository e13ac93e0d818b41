"""Sentence spans of article text."""

from __future__ import annotations

from rag.text.sentences import split_sentences


def test_hard_wrapped_wire_copy_is_split_into_sentences_not_lines():
    """Reuters wraps its copy at ~65 characters: a line that does not end a sentence, or one followed
    by a line starting in lower case, runs on; a line ending a sentence, or a blank line, ends it."""
    text = ("GenCorp said its RKO General Inc\nsubsidiary completed the sale of WOR-TV to MCA Inc <MCA> for\n"
            "387 mln dlrs.\nThe commission approved the sale\nlast December, GenCorp said. It was appealed.\n\n"
            "A paragraph on one line.\nA heading\n\nNext paragraph.")
    assert [text[s.start:s.end] for s in split_sentences(text)] == [
        "GenCorp said its RKO General Inc\nsubsidiary completed the sale of WOR-TV to MCA Inc <MCA> for\n387 mln dlrs.",
        "The commission approved the sale\nlast December, GenCorp said.",
        "It was appealed.",
        "A paragraph on one line.",
        "A heading",
        "Next paragraph.",
    ]
