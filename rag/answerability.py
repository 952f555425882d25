"""Whether the documents answer a question: one calibrated decision from the signals the pipeline has.

The signals are cheap by-products of answering (`SIGNALS`): the best dense score, the model's
probability of opening with the refusal, the support of its checked draft, and whether the draft
states the kind of thing asked. A logistic model over three of them (`FEATURES`: the checked
draft's support, answer-type match, and p(refusal opening) unless the draft opens with "Yes"/"No",
where that probability measures "No" against the refusal rather than doubt), fitted on the dev split's replayed drafts
(`python -m rag.evaluation.gate_cv RUN --features … --write`), gives p(answerable); its threshold
separates best within at most 10% false refusals on dev. The feature set was chosen by 5-fold
cross-validation on the 167 dev items (decision note 0005).

`rag.decision` uses p(answerable) as its one gate: below the threshold the reader gets the refusal;
at or above it, the checked draft or, when that cannot be shown, the passages' closest sentences.
This module does not generate or retrieve.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from rag.evidence import Quote, ranked_sentences  # noqa: F401 (re-exported)
from rag.lexical import tokenize
from rag.text import sentence_spans
from rag.types import Hit

SIGNALS = (  # what every answer records (the pipeline's `finish`); runs before 2026-12-02 recorded more
    "best_dense",
    "p_refusal",
    "p_refusal_open_ended",  # p_refusal, or 0 when the answer opens with "Yes"/"No"
    "support",
    "draft_score",  # the best score of any draft sentence, kept by the check or not
    "type_match",
    "top_sentence",  # the best passage sentence's score against the question (`rag.evidence`)
    "coverage",  # the most of the question's subject a passage names
)
# Chosen by held-out dev figures per feature set (decision note 0005, "One gate").
FEATURES = ("support", "type_match", "p_refusal_open_ended")
L2 = 1.0  # likewise (10 separated held-out items no better on the 167-item dev split)


def key_excerpt(
    ranked: list[Quote], hits: list[Hit], cited: set[int], answer: str, fits: Callable[[str], bool | None]
) -> list[Quote]:
    """The sentences that back an answer: the best-ranked sentence of a passage the answer cites,
    with the better-ranked of its two neighbours, in the passage's order.

    A sentence is passed over when the answer already says it (four in five of its words are in
    `answer`), and the first one also when `fits(text)` is False (it does not state the kind of
    thing asked). `ranked` is `ranked_sentences` over `hits`; `cited` holds indexes into `hits`.
    Empty when nothing qualifies.
    """
    said = set(tokenize(answer))

    def new(q: Quote) -> bool:
        words = tokenize(q.text(hits))
        return bool(words) and sum(w in said for w in words) < 0.8 * len(words)

    for q in ranked:
        if q.hit not in cited or not new(q) or fits(q.text(hits)) is False:
            continue
        spans = sentence_spans(hits[q.hit].chunk.text)
        at = spans.index((q.start, q.end))
        nbrs = [r for r in ranked if r.hit == q.hit and (r.start, r.end) in spans[max(at - 1, 0) : at + 2]]
        nbr = next((r for r in nbrs if r is not q and new(r)), None)
        return sorted([q, nbr] if nbr else [q], key=lambda r: r.start)
    return []


@dataclass
class AnswerabilityModel:
    """p(answerable) = sigmoid(bias + sum(weight * (feature - mean) / scale)); answerable at p >= threshold."""

    weights: dict[str, float]
    bias: float
    mean: dict[str, float]
    scale: dict[str, float]
    threshold: float = 0.5
    meta: dict = field(default_factory=dict)

    def probability(self, signals: dict[str, float]) -> float:
        z = self.bias
        for name, w in self.weights.items():
            x = float(signals.get(name, self.mean.get(name, 0.0)))
            z += w * (x - self.mean.get(name, 0.0)) / (self.scale.get(name, 1.0) or 1.0)
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def answerable(self, signals: dict[str, float]) -> bool:
        return self.probability(signals) >= self.threshold

    def to_json(self) -> str:
        d = {k: getattr(self, k) for k in ("weights", "bias", "mean", "scale", "threshold", "meta")}
        return json.dumps(d, indent=2) + "\n"

    @classmethod
    def load(cls, path: Path | None = None) -> AnswerabilityModel:
        """The fitted model shipped with the package (or the one at `path`)."""
        text = Path(path).read_text() if path else resources.files("rag").joinpath("answerability.json").read_text()
        return cls.load_text(text)

    @classmethod
    def load_text(cls, text: str) -> AnswerabilityModel:
        d = json.loads(text)
        return cls(d["weights"], d["bias"], d["mean"], d["scale"], d.get("threshold", 0.5), d.get("meta", {}))


def fit(
    rows: list[dict[str, float]],
    labels: list[bool],
    l2: float = L2,
    steps: int = 3000,
    features: tuple[str, ...] = FEATURES,
) -> AnswerabilityModel:
    """Fit a standardised, L2-regularised logistic regression by gradient descent (few rows, few features).

    `rows` are signal dicts (missing features take the column mean); `labels` say which were answerable.
    """
    names = [f for f in features if any(r.get(f) is not None for r in rows)]
    x = np.array([[float(r[f]) if r.get(f) is not None else np.nan for f in names] for r in rows], dtype=np.float64)
    mean = np.nanmean(x, axis=0)
    x = np.where(np.isnan(x), mean, x)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    y = np.array(labels, dtype=np.float64)
    w, b = np.zeros(z.shape[1]), 0.0
    # Weight the classes equally: unanswerable questions are the minority.
    cw = np.where(y == 1, 0.5 / max(y.mean(), 1e-9), 0.5 / max(1 - y.mean(), 1e-9))
    lr = 0.1
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        g = cw * (p - y)
        w -= lr * (z.T @ g / len(y) + l2 * w / len(y))
        b -= lr * g.mean()
    return AnswerabilityModel(
        weights=dict(zip(names, map(float, w), strict=True)),
        bias=float(b),
        mean=dict(zip(names, map(float, mean), strict=True)),
        scale=dict(zip(names, map(float, scale), strict=True)),
    )


def choose_threshold(probs: list[float], labels: list[bool], max_false_refusals: float = 0.10) -> float:
    """The threshold that best separates the two kinds (most unanswerable items refused minus
    answerable items refused) among those refusing at most `max_false_refusals` of the answerable
    items; the lowest such threshold on a tie, so no answer is refused for nothing.

    `choose_threshold([0.9, 0.6, 0.3, 0.2], [True, True, True, False], 0.5)` -> `0.3`.
    """
    pos = [p for p, y in zip(probs, labels, strict=True) if y]
    neg = [p for p, y in zip(probs, labels, strict=True) if not y]
    if not pos:
        return 0.5
    best, best_gain = min(probs), -1.0
    for t in sorted(set(probs)):
        fr = sum(p < t for p in pos) / len(pos)
        if fr > max_false_refusals:
            break
        gain = (sum(p < t for p in neg) / len(neg) if neg else 0.0) - fr
        if gain > best_gain:
            best, best_gain = t, gain
    return float(best)
