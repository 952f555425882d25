"""Score one reference item against what the pipeline returned, and summarise many scored items.

`score_retrieval` and `score_answer` turn a `QAItem` plus hits or an `Answer` into a flat dict of
per-item scores (None where a metric does not apply); `summarise` aggregates those dicts. The
arithmetic lives in `rag.evaluation.metrics`; this module only decides what goes into it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from rag.citations import is_refusal
from rag.evaluation import metrics as m
from rag.evaluation.qaset import QAItem
from rag.text import parse_markers, split_sentences, strip_markers
from rag.types import Answer, Hit

log = logging.getLogger(__name__)

K = 5  # the cut-off of every @k metric

# Per-item scores that `summarise` averages over the items where they are defined.
MEAN_KEYS = (
    "hit_at_1",
    "hit_at_5",
    "recall_at_5",
    "mrr",
    "quote_recall_at_5",
    "key_fact_accuracy",
    "answer_f1",
    "rouge_l",
    "citation_validity",
    "citation_precision",
    "citation_recall",
    "citation_precision_gold",
    "citation_recall_gold",
)
SUMMARY_KEYS = (
    "n",
    *MEAN_KEYS,
    "refusal_precision",
    "refusal_recall",
    "false_refusal_rate",
    "partial_rate",
    "partial_unanswerable",
    "ttft_p50_s",
    "ttft_p95_s",
    "first_sentence_p50_s",
    "first_sentence_p95_s",
    "total_p50_s",
    "total_p95_s",
    "retrieve_p50_s",
    "retrieve_p95_s",
    "tokens_per_s",
)


def quote_spans(item: QAItem, bodies: Mapping[str, str]) -> list[list[m.Span]]:
    """Every place each gold quote occurs in the bodies of the item's documents.

    `quote_spans(item(doc_ids=["d"], quotes=["b"]), {"d": "abcb"})` -> `[[("d", 1, 2), ("d", 3, 4)]]`.
    """
    out = []
    for quote in item.quotes:
        occ = []
        for doc_id in item.doc_ids:
            body = bodies.get(doc_id, "")
            start = body.find(quote)
            while start >= 0:
                occ.append((doc_id, start, start + len(quote)))
                start = body.find(quote, start + 1)
        out.append(occ)
    return out


def _chunk_span(hit: Hit) -> m.Span:
    return (hit.chunk.doc_id, hit.chunk.start, hit.chunk.end)


def score_retrieval(item: QAItem, hits: Sequence[Hit], quotes: list[list[m.Span]]) -> dict[str, Any]:
    """Retrieval scores of one item.

    Args:
        item: the reference item.
        hits: the retrieved passages, best first.
        quotes: the item's gold quote spans, from `quote_spans`.

    Returns:
        hit_at_1, hit_at_5, recall_at_5, mrr and quote_recall_at_5; all None for an unanswerable
        item, which has no gold documents.
    """
    if not item.answerable:
        return {k: None for k in ("hit_at_1", "hit_at_5", "recall_at_5", "mrr", "quote_recall_at_5")}
    docs = [h.chunk.doc_id for h in hits]
    gold = set(item.doc_ids)
    return {
        "hit_at_1": m.hit_at_k(docs, gold, 1),
        "hit_at_5": m.hit_at_k(docs, gold, K),
        "recall_at_5": m.recall_at_k(docs, gold, K),
        "mrr": m.reciprocal_rank(docs, gold),
        "quote_recall_at_5": m.quote_recall_at_k(quotes, [_chunk_span(h) for h in hits], K),
    }


def claims(answer: Answer, quotes: list[list[m.Span]]) -> list[m.Claim] | None:
    """The model's claim sentences as (markers it wrote, passages that support the sentence).

    A passage supports a sentence when it overlaps a gold quote, or when the citation check
    accepted it for that sentence. Sentences the checker treats as "the documents do not say"
    are not claims. None when the answer has no checked sentences (refused before checking).
    """
    raw = [(bare, nums) for bare, nums in (parse_markers(s) for s in split_sentences(answer.raw_answer)) if bare]
    checks = answer.sentences
    if not checks:
        return None
    if [bare for bare, _ in raw] != [c.text for c in checks]:
        log.warning("raw sentences do not line up with the citation check; citation scores skipped")
        return None
    n = len(answer.retrieved)
    spans = [_chunk_span(h) for h in answer.retrieved]
    on_gold = {j + 1 for j, s in enumerate(spans) if any(m.spans_overlap(s, q) for occ in quotes for q in occ)}
    out: list[m.Claim] = []
    for (bare, nums), check in zip(raw, checks, strict=True):
        if is_refusal(bare) and not any(1 <= x <= n for x in nums):
            continue
        accepted = set(check.cited) if check.supported else set()
        out.append((nums, {x for x in nums if 1 <= x <= n and (x in on_gold or x in accepted)}))
    return out


def gold_claims(answer: Answer, quotes: list[list[m.Span]]) -> list[m.Claim] | None:
    """The final answer's sentences as (markers shown, markers whose passage overlaps a gold quote).

    This judges what people see, with no help from the citation check's own verdicts. None when
    the answer is a refusal or has no sentences.
    """
    if answer.refused:
        return None
    spans = {h.chunk.chunk_id: _chunk_span(h) for h in answer.retrieved}
    on_gold = {
        c.n
        for c in answer.citations
        if c.chunk_id in spans and any(m.spans_overlap(spans[c.chunk_id], q) for occ in quotes for q in occ)
    }
    out: list[m.Claim] = []
    for sentence in split_sentences(answer.answer):
        bare, nums = parse_markers(sentence)
        if bare and not (is_refusal(bare) and not nums):
            out.append((nums, {n for n in nums if n in on_gold}))
    return out or None


def score_answer(item: QAItem, answer: Answer, quotes: list[list[m.Span]]) -> dict[str, Any]:
    """Every per-item score of a generated answer.

    Args:
        item: the reference item.
        answer: what `RagPipeline.ask` returned for it.
        quotes: the item's gold quote spans, from `quote_spans`.

    Returns:
        The retrieval scores plus key_fact_accuracy, answer_f1, rouge_l, citation_validity,
        citation_precision, citation_recall (None where undefined), refused, answerable, and the
        timings and token count that `summarise` turns into speed figures.
    """
    scores = score_retrieval(item, answer.retrieved, quotes)
    text = strip_markers(answer.answer)
    good = None if not item.answerable else m.key_facts_present("" if answer.refused else text, item.key_facts)
    cl = claims(answer, quotes)
    gold_cl = gold_claims(answer, quotes) if item.answerable else None
    t = answer.timings
    generated = bool(answer.raw_answer)
    scores.update(
        key_fact_accuracy=good,
        answer_f1=m.answer_f1(text, item.answer) if item.answerable else None,
        rouge_l=m.rouge_l(text, item.answer) if item.answerable else None,
        citation_validity=m.citation_validity(answer.raw_answer, len(answer.retrieved)),
        citation_precision=m.citation_precision(cl) if cl else None,
        citation_recall=m.citation_recall(cl) if cl else None,
        citation_precision_gold=m.citation_precision(gold_cl) if gold_cl else None,
        citation_recall_gold=m.citation_recall(gold_cl) if gold_cl else None,
        refused=answer.refused,
        partial=answer.partial,
        decided_by=answer.decision.get("step"),
        answerable=item.answerable,
        retrieve_s=t.retrieve_s,
        ttft_s=t.ttft_s if generated else None,
        # Until the first checked sentence was streamed: None when none was (quoted passages, refusals).
        first_sentence_s=t.first_sentence_s or None,
        total_s=t.total_s,
        tokens=answer.tokens,
        # Decoding after the first token (whose wait, prompt reading included, is the TTFT), plus
        # the citation check; tokens_per_s divides the tokens after the first by this.
        decode_s=(t.total_s - t.ttft_s) if generated else None,
    )
    return scores


def summarise(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate result records (each with a "scores" dict) into the summary of a run.

    Args:
        results: records as written to results.jsonl.

    Returns:
        Every key of `SUMMARY_KEYS`; a metric is None when no item defines it (e.g. answer
        metrics in a retrieval-only run).
    """
    scores = [r["scores"] for r in results]
    out: dict[str, Any] = {"n": len(scores)}
    for key in MEAN_KEYS:
        out[key] = m.mean([s.get(key) for s in scores])
    judged = [s for s in scores if s.get("refused") is not None]
    refused = [bool(s["refused"]) for s in judged]
    answerable = [bool(s["answerable"]) for s in judged]
    out["refusal_precision"] = m.refusal_precision(refused, answerable)
    out["refusal_recall"] = m.refusal_recall(refused, answerable)
    out["false_refusal_rate"] = m.false_refusal_rate(refused, answerable)
    # Passages quoted instead of a checked answer: a share of all answers, and of the unanswerable
    # items (where a partial answer is a wrong one: it counts against refusal recall as well).
    out["partial_rate"] = m.mean([1.0 if s.get("partial") else 0.0 for s in judged]) if judged else None
    unanswerable = [s for s in judged if not s["answerable"]]
    out["partial_unanswerable"] = (
        m.mean([1.0 if s.get("partial") else 0.0 for s in unanswerable]) if unanswerable else None
    )
    timers = (
        ("ttft", "ttft_s"),
        ("first_sentence", "first_sentence_s"),
        ("total", "total_s"),
        ("retrieve", "retrieve_s"),
    )
    for name, key in timers:
        values = [s[key] for s in scores if s.get(key) is not None]
        out[f"{name}_p50_s"] = m.percentile(values, 50)
        out[f"{name}_p95_s"] = m.percentile(values, 95)
    timed = [s for s in scores if s.get("decode_s") is not None]
    out["tokens_per_s"] = m.tokens_per_s([max(s["tokens"] - 1, 0) for s in timed], [s["decode_s"] for s in timed])
    return out
