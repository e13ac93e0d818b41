"""The one parser of [n] citation markers."""

from __future__ import annotations

from rag.text.markers import MARKER, drop_unknown_markers, markers, strip_markers, with_markers


def test_markers_are_parsed_and_unknown_ones_dropped():
    text = "Russia and China vetoed it [1][7]. The vote was 13 to 2 [2] [0]."
    assert markers(text) == [1, 7, 2, 0]
    assert drop_unknown_markers(text, 2) == "Russia and China vetoed it [1]. The vote was 13 to 2 [2]."
    assert strip_markers("It was vetoed [1].") == "It was vetoed."


def test_a_marker_takes_the_space_before_it():
    assert MARKER.sub("", "Talks resumed  [2][7] in Geneva [3].") == "Talks resumed in Geneva."
    assert with_markers("Talks resumed ", [2, 7]) == "Talks resumed [2][7]"
    assert markers("[12345] is a marker; [x] and [] are not") == [12345]
