"""The learned answerer's weights: linear scorers in numpy, fitted by full-batch gradient descent,
saved as a small JSON file that records what they were trained on."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rag.answer.extractive.features import DECISION_FEATURES, SENTENCE_FEATURES, SPAN_FEATURES

SHIPPED_MODEL = Path(__file__).with_name("answerer-model.json")


@dataclass(frozen=True)
class LinearScorer:
    """score(x) = w · (x - mean) / scale; features named so a file cannot be read against the wrong code."""

    names: tuple[str, ...]
    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def score(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights

    def to_json(self) -> dict:
        return {"names": list(self.names), "weights": _rounded(self.weights), "mean": _rounded(self.mean),
                "scale": _rounded(self.scale)}

    @classmethod
    def from_json(cls, data: dict, names: tuple[str, ...]) -> LinearScorer:
        if tuple(data["names"]) != names:
            raise ValueError("the answerer model was trained on other features than this code computes; "
                             "retrain it with `rag train answerer`")
        return cls(names, *(np.asarray(data[k], dtype=np.float64) for k in ("weights", "mean", "scale")))


def _rounded(a: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in a]


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    constant = scale < 1e-9
    mean[constant], scale[constant] = 0.0, 1.0  # the bias column, and features unused by any row
    return mean, scale


def _adam(grad, dim: int, steps: int, lr: float = 0.05) -> np.ndarray:
    """Adam (Kingma and Ba 2015) on a convex loss: plain, dependency-free, and quick at this size."""
    w, m, v = np.zeros(dim), np.zeros(dim), np.zeros(dim)
    for t in range(1, steps + 1):
        g = grad(w)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return w


def fit_grouped_softmax(names: tuple[str, ...], x: np.ndarray, groups: np.ndarray, target: np.ndarray,
                        l2: float = 1e-3, steps: int = 400) -> LinearScorer:
    """Conditional logit (McFadden 1974): within each group (the candidates of one question) the
    probabilities are a softmax of the scores; minimise the cross-entropy to `target`, a distribution
    over each group's candidates. `groups` must be sorted: rows of a group are contiguous."""
    mean, scale = _standardiser(x)
    z = (x - mean) / scale
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    n_groups = len(starts)

    def grad(w: np.ndarray) -> np.ndarray:
        s = z @ w
        s = s - np.repeat(np.maximum.reduceat(s, starts), np.diff(np.r_[starts, len(s)]))
        e = np.exp(s)
        p = e / np.repeat(np.add.reduceat(e, starts), np.diff(np.r_[starts, len(s)]))
        return z.T @ (p - target) / n_groups + l2 * w

    return LinearScorer(names, _adam(grad, z.shape[1], steps), mean, scale)


def fit_logistic(names: tuple[str, ...], x: np.ndarray, y: np.ndarray, l2: float = 1e-3,
                 steps: int = 400) -> LinearScorer:
    """Logistic regression; `y` may be fractional (then it fits an expected value, e.g. of F1)."""
    mean, scale = _standardiser(x)
    z = (x - mean) / scale

    def grad(w: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        return z.T @ (p - y) / len(y) + l2 * w

    return LinearScorer(names, _adam(grad, z.shape[1], steps), mean, scale)


def sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


@dataclass(frozen=True)
class AnswererModel:
    """Sentence scorer, span scorer, and the two halves of the answer-or-abstain decision:
    P(answerable) and the expected F1 of the answer it would give. It answers when
    E[F1] − P(unanswerable) exceeds `margin` (0 is the break-even of the SQuAD 2.0 F1)."""

    sentence: LinearScorer
    span: LinearScorer
    answerable: LinearScorer
    expected_f1: LinearScorer
    margin: float = 0.0
    trained_on: dict = field(default_factory=dict)

    def save(self, path: Path) -> None:
        data = {"format": 1, "trained_on": self.trained_on, "margin": round(self.margin, 6)}
        data |= {k: getattr(self, k).to_json() for k in ("sentence", "span", "answerable", "expected_f1")}
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> AnswererModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            sentence=LinearScorer.from_json(data["sentence"], SENTENCE_FEATURES),
            span=LinearScorer.from_json(data["span"], SPAN_FEATURES),
            answerable=LinearScorer.from_json(data["answerable"], DECISION_FEATURES),
            expected_f1=LinearScorer.from_json(data["expected_f1"], DECISION_FEATURES),
            margin=float(data.get("margin", 0.0)), trained_on=data.get("trained_on", {}),
        )

    def describe(self) -> dict:
        return asdict(self)["trained_on"]


def load_model(setting: str) -> AnswererModel | None:
    """The model a `Settings.answerer_model` value names: "shipped" (the file beside this module,
    if present), "none" (the heuristic), or a path to a file written by `rag train answerer`."""
    if setting == "none":
        return None
    if setting == "shipped":
        return AnswererModel.load(SHIPPED_MODEL) if SHIPPED_MODEL.exists() else None
    return AnswererModel.load(Path(setting))
