"""The learned answer model: which candidate sentence answers, and how sure we are that any does.

Two logistic regressions, trained by `eval/train_answer.py` on public QA data (XQuAD dev split, CMRC 2018,
DRCD), never on the newsletters:

- the *sentence* model scores each candidate sentence (features: `rag.features.SENTENCE_FEATURES`);
- the *question* model turns the best sentences' scores and a few question-level facts into the probability
  that the retrieved passages answer the question at all: the answer's `confidence`.

The model is a small JSON file shipped in the package (`rag/models/answer.json`), with the hashes of the data
it was trained on and the thresholds chosen on the dev set. Inference is numpy only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PATH = Path(__file__).resolve().parent / "models" / "answer.json"

QUESTION_FEATURES: tuple[str, ...] = (
    "best_logit",
    "second_logit",
    "best_s_cos_use",
    "best_s_cos_e5",
    "best_s_cos_use_cross",
    "best_s_cos_e5_cross",
    "best_s_ctx_cov",
    "best_type_missing",
    "best_focus_missing",
    "best_s_missing",
    "best_p_missing",
    "top_p_missing",
    "top_p_cos_use",
    "top_p_cos_e5",
    "top_p_cov",
    "asks_type",
    "q_log_units",
)

# The direction in which each piece of evidence counts, declared with the feature, not learned: a closer
# sentence, a better-covered question, a better-scored best or runner-up sentence never lowers the confidence; a
# missing answer type or missing question concepts never raise it. Unsigned features (the question's own shape)
# may go either way.
QUESTION_SIGNS: dict[str, int] = {
    "best_logit": 1,
    "second_logit": 1,
    "best_s_cos_use": 1,
    "best_s_cos_e5": 1,
    "best_s_cos_use_cross": 1,
    "best_s_cos_e5_cross": 1,
    "best_s_ctx_cov": 1,
    "best_type_missing": -1,
    "best_focus_missing": -1,
    "best_s_missing": -1,
    "best_p_missing": -1,
    "top_p_missing": -1,
    "top_p_cos_use": 1,
    "top_p_cos_e5": 1,
    "top_p_cov": 1,
}


@dataclass(frozen=True, slots=True)
class Logistic:
    """A standardised logistic regression: p = sigmoid(((x - mean) / scale) · coef + intercept).

    A feature that is NaN (a channel this index lacks) is read as its training mean, i.e. it adds nothing.
    """

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        features: tuple[str, ...],
        l2: float = 1.0,
        offset: np.ndarray | None = None,
        signs: Mapping[str, int] | None = None,
        prior: Logistic | None = None,
    ) -> Logistic:
        """L2-regularised fit by damped Newton steps on standardised features (NaN = the mean); deterministic.

        With `offset` (a fixed logit per row, e.g. another model's), the fit learns only a correction to it:
        p = sigmoid(offset + this model's logit), the correction shrunk towards zero by `l2`.

        With `signs` (feature -> +1 or -1), those coefficients are kept ≥ 0 or ≤ 0 (projected Newton: a
        coefficient held at 0 whose gradient points out of its half-line takes no step). A weight fitted against
        its evidence's direction only cancels a correlated feature in-sample, and out of sample it turns an
        unusual value into confidence (a low cosine raising the confidence).

        With `signs` and a `prior` (the model whose logit is the `offset`, over the same features), the side is
        kept by the sum of both weights on each raw feature: a correction may shrink a prior's weight to zero,
        never turn it over."""
        mean = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1])
        mean = np.where(np.isnan(mean), 0.0, mean)
        scale = np.nanstd(x, axis=0) if len(x) else np.ones(x.shape[1])
        scale = np.where(~np.isfinite(scale) | (scale < 1e-9), 1.0, scale)
        a = np.hstack([np.nan_to_num((x - mean) / scale, nan=0.0), np.ones((len(x), 1))])
        base = np.zeros(len(x)) if offset is None else np.asarray(offset, np.float64)
        w = np.zeros(a.shape[1])
        reg = np.full(a.shape[1], l2)
        reg[-1] = 0.0  # the intercept is not shrunk

        def loss(v: np.ndarray) -> float:
            z = a @ v + base
            return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(reg * v * v))

        sign = np.array([(signs or {}).get(n, 0) for n in features] + [0], np.float64)
        bound = np.zeros(a.shape[1])  # each signed coefficient keeps sign * (w + bound) >= 0
        if prior is not None:
            if tuple(prior.features) != tuple(features):
                raise ValueError("the prior must read the same features")
            bound[:-1] = prior.coef / prior.scale * scale  # the prior's weight in this fit's standardisation

        def project(v: np.ndarray) -> np.ndarray:
            return np.where(sign * (v + bound) < 0, -bound, v)

        w = project(w)
        current = loss(w)
        for _ in range(200):
            p = sigmoid(a @ w + base)
            grad = a.T @ (p - y) + reg * w
            hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(reg + 1e-9)
            held = (sign != 0) & (w == -bound) & (sign * grad > 0)  # at its bound and pushed beyond it
            free = ~held
            step = np.zeros_like(w)
            step[free] = np.linalg.solve(hess[np.ix_(free, free)], grad[free])
            t = 1.0
            while t > 1e-6 and loss(project(w - t * step)) > current + 1e-12:  # halve until the loss does not grow
                t /= 2
            new = project(w - t * step)
            moved = np.abs(new - w).max()
            w, current = new, loss(new)
            if moved < 1e-8:
                break
        return cls(features, mean, scale, w[:-1], float(w[-1]))

    def logit(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        return np.nan_to_num(z, nan=0.0) @ self.coef + self.intercept

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "coef": [round(float(v), 6) for v in self.coef],
            "intercept": round(float(self.intercept), 6),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Logistic:
        return cls(
            tuple(d["features"]),
            np.array(d["mean"], np.float64),
            np.array(d["scale"], np.float64),
            np.array(d["coef"], np.float64),
            float(d["intercept"]),
        )


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Confidence cut-offs, chosen on the dev set: below `abstain` the assistant abstains; between it and
    `confident` it shows the closest passages, labelled as possibly not answering."""

    abstain: float = 0.5
    confident: float = 0.7


@dataclass(frozen=True, slots=True)
class Calibration:
    """Platt scaling of the question model's logit: confidence = sigmoid(a·z + b). Identity in models with a
    dev `correction` (which subsumes it); older model files calibrated on dev this way still load."""

    a: float = 1.0
    b: float = 0.0


@dataclass(frozen=True, slots=True)
class AnswerModel:
    sentence: Logistic
    question: Logistic
    thresholds: Thresholds = Thresholds()
    meta: dict[str, Any] = field(default_factory=dict)  # training data hashes, counts, held-out scores
    calibration: Calibration = Calibration()
    # A correction of the question model's logit fitted on the dev set with the public model as its offset
    # (same features, shrunk towards no change): public QA data decides the shape, the dev set the archive's
    # share and kinds of unanswerable questions.
    correction: Logistic | None = None

    def sentence_logits(self, features: np.ndarray) -> np.ndarray:
        if not len(features):
            return np.zeros(0)
        return self.sentence.logit(features)

    def logit(self, features: np.ndarray) -> float:
        """The question model's logit, corrected on dev when the model has a correction."""
        z = float(self.question.logit(features[None, :])[0])
        if self.correction is not None:
            z += float(self.correction.logit(features[None, :])[0])
        return z

    def confidence(self, features: np.ndarray) -> float:
        """Probability that the retrieved passages answer the question (features: QUESTION_FEATURES)."""
        return float(sigmoid(self.calibration.a * self.logit(features) + self.calibration.b))

    def record(self) -> dict[str, Any]:
        """What reports and index manifests record of the model: version, training data hashes, thresholds."""
        return {
            "version": self.meta.get("version", ""),
            "trained": self.meta.get("trained", ""),
            "data": self.meta.get("data", {}),
            "thresholds": {"abstain": self.thresholds.abstain, "confident": self.thresholds.confident},
            "calibration": {"a": self.calibration.a, "b": self.calibration.b},
            "corrected_on_dev": self.correction is not None,
        }

    @property
    def version(self) -> str:
        return str(self.meta.get("version", ""))

    def to_json(self) -> dict[str, Any]:
        return {
            "sentence": self.sentence.to_json(),
            "question": self.question.to_json(),
            "thresholds": {"abstain": self.thresholds.abstain, "confident": self.thresholds.confident},
            "calibration": {"a": self.calibration.a, "b": self.calibration.b},
            **({"correction": self.correction.to_json()} if self.correction is not None else {}),
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AnswerModel:
        return cls(
            Logistic.from_json(d["sentence"]),
            Logistic.from_json(d["question"]),
            Thresholds(**d.get("thresholds", {})),
            dict(d.get("meta", {})),
            Calibration(**d.get("calibration", {})),
            Logistic.from_json(d["correction"]) if d.get("correction") else None,
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n", "utf-8")
        tmp.replace(path)


@lru_cache(maxsize=4)
def load(path: Path = DEFAULT_PATH) -> AnswerModel:
    """The answer model at `path` (default: the one shipped in the package)."""
    try:
        return AnswerModel.from_json(json.loads(Path(path).read_text("utf-8")))
    except FileNotFoundError:
        raise FileNotFoundError(f"no answer model at {path}; train one with eval/train_answer.py") from None


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def question_features(
    logits: np.ndarray,
    sentence_features: np.ndarray,
    names: tuple[str, ...],
    top_hit: dict[str, float],
    asks_type: bool,
    question_units: int,
) -> np.ndarray:
    """The question model's inputs (QUESTION_FEATURES) from the sentence model's output."""
    col = {n: i for i, n in enumerate(names)}
    order = np.argsort(-logits, kind="stable") if len(logits) else np.zeros(0, int)
    best = sentence_features[order[0]] if len(order) else np.full(len(names), np.nan)
    same = not len(order) or best[col["same_language"]] != 0.0
    values = {
        "best_logit": float(logits[order[0]]) if len(order) else -10.0,
        "second_logit": float(logits[order[1]]) if len(order) > 1 else -10.0,
        # A cosine across languages is lower for the same meaning, and in the training scenarios a best sentence
        # in the other language is more often an answer (the "own edition removed" ones): read as one feature,
        # a low cosine raised the confidence. Each relation has its own weight and its own mean (NaN = the mean).
        "best_s_cos_use": best[col["s_cos_use"]] if same else math.nan,
        "best_s_cos_e5": best[col["s_cos_e5"]] if same else math.nan,
        "best_s_cos_use_cross": math.nan if same else best[col["s_cos_use"]],
        "best_s_cos_e5_cross": math.nan if same else best[col["s_cos_e5"]],
        # the best sentence read with its heading and the sentence before ("It … cost 6.4 million euros")
        "best_s_ctx_cov": best[col["s_ctx_cov"]] if len(order) else 0.0,
        "best_type_missing": best[col["type_missing"]] if len(order) else 0.0,
        "best_focus_missing": best[col["focus_missing"]] if len(order) else 0.0,
        "best_s_missing": best[col["s_missing"]] if len(order) else 1.0,
        "best_p_missing": best[col["p_missing"]] if len(order) else 1.0,
        "top_p_missing": top_hit.get("missing", 1.0),
        "top_p_cos_use": top_hit.get("use", math.nan),
        "top_p_cos_e5": top_hit.get("e5", math.nan),
        "top_p_cov": top_hit.get("cov", 0.0),
        "asks_type": float(asks_type),
        "q_log_units": math.log1p(question_units),
    }
    return np.array([values[n] for n in QUESTION_FEATURES], np.float64)
