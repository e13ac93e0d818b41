"""How likely the extractive answerer's short answer is right, as a calibrated probability.

A logistic model over the answerer's decision features (how well the sentence and the span fit,
what of the question the passages lack), fitted on SQuAD dev-a decisions made out of fold: for
each article fold the answerer is trained on the other folds and decides the fold's questions, so
the scores it sees are those of questions it has not learned from, as at answer time (Platt
scaling, Platt 1999; Niculescu-Mizil & Caruana 2005). "Right" is the staff scorer's test
(`rag.eval.staff.short_right`): the short answer holds a gold answer and little else; an answer to
an unanswerable question is wrong. `rag train confidence` fits it and records the reliability
table and the expected calibration error, both measured by nested article folds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.answer.extractive.features import DECISION_FEATURES
from rag.answer.extractive.model import LinearScorer, fit_logistic

CALIBRATION_FILE = Path(__file__).with_name("confidence.json")
# Below this the short answer is as likely wrong as right: show the sentence with it marked instead.
CONFIDENT = 0.5
# Few inputs (Platt scaling over the answerer's own estimates): the decision row's thirty columns
# over-fitted on two articles (ECE 0.085 against the nested folds).
CONFIDENCE_FEATURES = ("bias", "sentence_prob", "span_prob", "p_answerable_logit", "expected_f1_logit", "answered")
_FROM_DECISION = [DECISION_FEATURES.index(name) for name in CONFIDENCE_FEATURES[:3]]


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def confidence_row(decision_features: np.ndarray, p_answerable: float, expected_f1: float,
                   answered: bool) -> np.ndarray:
    """One row of CONFIDENCE_FEATURES."""
    return np.concatenate([decision_features[_FROM_DECISION],
                           [_logit(p_answerable), _logit(expected_f1), float(answered)]])


@dataclass(frozen=True)
class Calibration:
    scorer: LinearScorer
    report: dict = field(default_factory=dict)  # reliability table, ECE, data: how it was measured

    def probability(self, row: np.ndarray) -> float:
        return float(1.0 / (1.0 + np.exp(-self.scorer.score(row[None])[0])))

    def save(self, path: Path) -> None:
        data = {"format": 1, "report": self.report, "scorer": self.scorer.to_json()}
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(LinearScorer.from_json(data["scorer"], CONFIDENCE_FEATURES), data.get("report", {}))


def load_calibration(path: Path = CALIBRATION_FILE) -> Calibration | None:
    """The shipped calibration; None when absent or fitted on other features (then the answerer's
    own expected F1 stands in, uncalibrated)."""
    try:
        return Calibration.load(path)
    except (OSError, ValueError, KeyError):
        return None


def fit(rows: np.ndarray, right: np.ndarray) -> LinearScorer:
    return fit_logistic(CONFIDENCE_FEATURES, rows, right.astype(float), l2=1e-2, steps=600)


def reliability(probabilities: Sequence[float], right: Sequence[bool], bins: int = 10) -> tuple[list[dict], float]:
    """Reliability table (equal-width bins of the predicted probability: count, mean predicted,
    share right) and the expected calibration error, the count-weighted mean gap (Guo et al. 2017)."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(right, dtype=float)
    table, ece = [], 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = (p >= low) & ((p < high) if b < bins - 1 else (p <= high))
        n = int(inside.sum())
        if not n:
            continue
        predicted, observed = float(p[inside].mean()), float(y[inside].mean())
        table.append({"bin": f"{low:.1f}-{high:.1f}", "n": n, "predicted": round(predicted, 3),
                      "right": round(observed, 3)})
        ece += n / len(p) * abs(predicted - observed)
    return table, ece
