"""`rag train confidence`: decisions made out of fold on a SQuAD file, a reliability table and the
expected calibration error, written where the answerer loads them."""

from __future__ import annotations

import json
import subprocess

import numpy as np

from rag.answer.extractive.confidence import Calibration, confidence_row
from rag.answer.extractive.features import DECISION_FEATURES
from tests.support.paths import DEV_A, RAG


def test_rag_train_confidence_writes_a_calibration_the_answerer_reads(tmp_path):
    data = json.loads(DEV_A.read_text(encoding="utf-8"))
    data["data"] = [dict(entry, paragraphs=entry["paragraphs"][:2]) for entry in data["data"][:2]]
    small = tmp_path / "squad-small.json"
    small.write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "confidence.json"
    result = subprocess.run([RAG, "train", "confidence", str(small), "--folds", "2", "--out", str(out)],
                            check=False, capture_output=True, text=True, timeout=1200,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert "answers given: ECE" in result.stdout and "predicted  right" in result.stdout
    calibration = Calibration.load(out)
    report = calibration.report
    assert report["folds"] == 2 and report["decisions"] > 0 and 0.0 <= report["ece"] <= 1.0
    assert sum(row["n"] for row in report["reliability"]) == report["decisions"]
    row = confidence_row(np.ones(len(DECISION_FEATURES)), 0.5, 0.5, True)
    assert 0.0 < calibration.probability(row) < 1.0
