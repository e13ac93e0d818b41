"""News questions about figures: their type, and which figure of a wire-copy sentence answers them."""

from __future__ import annotations

import pytest

from rag.answer.extractive.candidates import NUMBER, nearest_typed_span
from rag.answer.extractive.questions import question_info, question_type


@pytest.mark.parametrize(("question", "kind"), [
    ("What is Citibank's prime rate?", "number"),
    ("What was the top accepted rate of discount at the UK Treasury bill tender?", "number"),
    ("What did ANZ cut its prime rate to?", "number"),
    ("What pay increase were the striking Brazilian seamen seeking?", "number"),
    ("What is General Partners' offer per GenCorp share?", "number"),
    ("What is the capital of France?", "other"),
    ("What did the king do to the rebels?", "other"),
    ("What was the cause of the war?", "other"),
])
def test_questions_about_rates_rises_and_prices_ask_for_a_number(question, kind):
    assert question_type(question).kind == kind


def test_wire_copy_figures_are_whole():
    found = [m.group() for m in NUMBER.finditer(
        "raised its prime rate to 7-3/4 pct from 7-1/2 pct; a ceiling of 15.8 mln barrels; 100 dlrs a share; "
        "sold four mln shares; rose 15% to £546m")]
    assert found == ["7-3/4 pct", "7-1/2 pct", "15.8 mln barrels", "100 dlrs", "four mln shares", "15%", "£546m"]


@pytest.mark.parametrize(("question", "sentence", "answer"), [
    ("What did the Reserve Bank cut the rediscount rate to?",
     "The Reserve Bank of Australia cut the rediscount rate from 17.30 pct to 17.00 pct.", "17.00 pct"),
    ("What is General Partners' offer per GenCorp share?",
     ("General Partners said it was prepared to raise its bid for GenCorp Inc to 110 dlrs cash per\n"
      "share from 100 dlrs per share."), "110 dlrs"),
    ("What pay increase were the seamen seeking?",
     "The walkout by Brazil's 40,000 seamen has idled 160 ships; the strikers are seeking a 275 pct pay increase.",
     "275 pct"),
    ("How much per share did GenCorp offer?",
     "GenCorp will buy back 54 pct of its stock for 1.6 billion dlrs, or 130 dlrs a share.", "130 dlrs"),
    ("What did the Commonwealth Bank cut its loan reference rate to?",
     ("It will lower its reference rate for loans to 15.75 pct from 16.25 pct and its overdraft reference rate "
      "to 16.25 pct from 16.75."), "15.75 pct"),
])
def test_the_figure_that_answers(question, sentence, answer):
    found = nearest_typed_span(question_info(question), sentence)
    assert found is not None and sentence[found[0]:found[1]] == answer
