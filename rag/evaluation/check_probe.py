"""How often the citation check keeps true claims and catches false ones, without the model.

True claims are the reference answers of a run's answerable items, sentence by sentence, checked
against the passages the run retrieved for the item (items are left out unless every gold quote is
in those passages). The reference answers were written from the documents in their own words, so they
stand for what a correct paraphrasing draft says. False claims are the same sentences with one fact
changed (a number, a name, "not" put in or taken out, yes for no) and the sentences of another item's answer
about other documents. A claim is kept when some passage supports it, as `CitationChecker.check`
decides.

`python -m rag.evaluation.check_probe RUN [--split dev]` prints the share kept of each kind and,
for the true claims dropped, what dropped them: the score, or the exact rule that zeroed it. No
model runs; a change to the check is judged by running this before and after.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rag import citations as C
from rag.evaluation.qaset import QAItem, load_qaset
from rag.evaluation.records import recorded_results
from rag.lexical import tokenize
from rag.pipeline import RagPipeline
from rag.text import names, parse_markers, proper_nouns, split_sentences
from rag.types import Hit

# Actors the documents talk about; a name swap puts in the first one no passage mentions.
ACTORS = ("Anthropic", "Cohere", "NVIDIA", "Microsoft", "Amazon", "Rachel Reeves", "Keir Starmer", "Sam Altman")
_AUX = re.compile(r"\b(is|are|was|were|will|can|must|should|would|could|has|have|does|did)\b(?! not)")
_NOT = re.compile(r"\bnot\s+|n't\b")
_NUMBER = re.compile(r"(?<![\w.,])\d+(?![\w.,]\d)")


@dataclass
class Probe:
    item: str
    kind: str  # "true" or the corruption: "number", "name", "negation", "yes/no", "other item"
    claim: str
    hits: list[Hit]
    question: str


def corrupt_number(claim: str) -> str | None:
    """`corrupt_number("5 parts in 2025")` -> `"16 parts in 2025"` (the first whole number, times 3 plus 1)."""
    m = _NUMBER.search(claim)
    return None if m is None else f"{claim[: m.start()]}{int(m.group(0)) * 3 + 1}{claim[m.end() :]}"


def corrupt_name(claim: str, passages: list[str]) -> str | None:
    """The claim's first name replaced by an actor the passage closest to the claim does not mention,
    one that another passage mentions when there is one (the mix-up a model makes)."""
    found = names(claim)
    closest = max(passages, key=lambda p: C.lexical_support(claim, p)).lower()
    others = [a for a in ACTORS if a.lower() not in closest and a.lower() not in claim.lower()]
    elsewhere = [a for a in others if any(a.lower() in p.lower() for p in passages)]
    other = next(iter(elsewhere or others), None)
    if not found or other is None:
        return None
    return re.sub(rf"\b{re.escape(found[0])}\b", other, claim, count=1)


def corrupt_polarity(claim: str) -> str | None:
    """`corrupt_polarity("It is binding")` -> `"It is not binding"`; a "not" is taken out instead when there is one."""
    if _NOT.search(claim):
        return _NOT.sub(lambda m: "" if m.group(0).startswith("not") else "", claim, count=1)
    m = _AUX.search(claim)
    return None if m is None else f"{claim[: m.end()]} not{claim[m.end() :]}"


def _held(quote: str, hits: list[Hit]) -> bool:
    """Most of the gold quote's words are in one passage (a quote may run across two passages)."""
    want = set(tokenize(quote))
    return any(len(want & set(tokenize(h.chunk.text))) >= 0.8 * len(want) for h in hits)


def corrupt_yes_no(claim: str) -> str | None:
    """`corrupt_yes_no("No. It is voluntary.")` -> `"Yes. It is voluntary."`; None without a yes or no."""
    m = re.match(r"(yes|no)\b", claim, re.IGNORECASE)
    return None if m is None else ("No" if m.group(1).lower() == "yes" else "Yes") + claim[m.end() :]


def probes(pipeline: RagPipeline, run_dir: Path, items: dict[str, QAItem]) -> list[Probe]:
    chunks = {c.chunk_id: c for c in pipeline.retriever.chunks}
    recs = [r for r in recorded_results(run_dir) if r["id"] in items and r["answerable"]]
    out: list[Probe] = []
    for i, rec in enumerate(recs):
        item = items[rec["id"]]
        hits = [Hit(chunks[h["chunk_id"]], h["score"]) for h in rec["answer"]["retrieved"]]
        if not all(_held(q, hits) for q in item.quotes):
            continue  # the run's passages do not hold the reference's evidence, so dropping it is right
        q = rec["standalone_question"]
        passages = [h.chunk.text for h in hits]
        for s in split_sentences(item.answer):
            claim = parse_markers(s)[0]
            if not claim:
                continue
            out.append(Probe(item.id, "true", claim, hits, q))
            for kind, wrong in (
                ("number", corrupt_number(claim)),
                ("name", corrupt_name(claim, passages)),
                ("negation", corrupt_polarity(claim)),
                ("yes/no", corrupt_yes_no(claim)),
            ):
                if wrong and wrong != claim:
                    out.append(Probe(item.id, kind, wrong, hits, q))
        # Another item's answer, about documents this item's passages are not from.
        other = next(
            (items[r["id"]] for r in recs[i + 1 :] + recs[:i] if not set(items[r["id"]].doc_ids) & set(item.doc_ids)),
            None,
        )
        if other is not None:
            first = split_sentences(other.answer)[:1]
            if first:
                out.append(Probe(item.id, "other item", parse_markers(first[0])[0], hits, q))
    return out


def why_dropped(checker: C.CitationChecker, probe: Probe) -> str:
    """What dropped a claim: "score" when no passage reaches the threshold even before the exact rules."""
    free = C.CitationChecker(checker.embedder, checker.threshold, checker.unsupported, rules=False)
    row = free._scores([probe.claim], probe.hits, probe.question)[0]
    if float(row.max()) < checker.threshold:
        return "score"
    known = set().union(*(proper_nouns(h.chunk.text) for h in probe.hits))
    return "+".join(C.failed_rules(probe.claim, probe.hits[int(row.argmax())], probe.question, known)) or "?"


def main() -> None:
    from rag.generation import NoGenerator
    from rag.settings import Settings

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a full run folder (its passages are used)")
    ap.add_argument("--questions", type=Path, default=Path("evals/qa.jsonl"))
    ap.add_argument("--split", default="dev")
    ap.add_argument("-v", "--verbose", action="store_true", help="list the true claims dropped")
    args = ap.parse_args()
    settings = Settings()
    pipeline = RagPipeline.from_settings(settings, generator=NoGenerator())
    items = {it.id: it for it in load_qaset(args.questions, settings.corpus_dir) if it.split == args.split}
    checker = pipeline.checker
    total: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    by_item: dict[str, list[Probe]] = {}
    for p in probes(pipeline, args.run, items):
        by_item.setdefault(p.item, []).append(p)
    for group in by_item.values():  # one scoring call per item: its passages are embedded once
        rows = checker._scores([p.claim for p in group], group[0].hits, group[0].question)
        for p, row in zip(group, rows, strict=True):
            ok = float(row.max()) >= checker.threshold
            total[p.kind] += 1
            kept[p.kind] += ok
            if p.kind == "true" and not ok:
                why = why_dropped(checker, p)
                dropped[why] += 1
                if args.verbose:
                    print(f"  dropped {p.item:9} {why:14} {p.claim[:100]}")
    print(json.dumps({k: {"n": total[k], "kept": round(kept[k] / total[k], 3)} for k in total}))
    print("true claims dropped by:", dict(dropped.most_common()))


if __name__ == "__main__":
    main()
