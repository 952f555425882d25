"""Load and check the reference Q&A set (`evals/qa.jsonl`): one JSON object per line.

`validate_items` checks each item's schema and its evidence against the corpus (quotes must be
exact substrings of a cited document's body); `check_coverage` checks the set as a whole (how
many items of each kind). Neither runs the pipeline or scores anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import BadInputError
from rag.loaders import split_front_matter

TYPES = ("factoid", "list", "why", "comparison", "multi-doc", "unanswerable", "follow-up")
SPLITS = ("dev", "test", "holdout", "holdout2", "holdout3", "holdout4")
# Read once, at the end of the work: never selected unless asked for by name. `holdout` was read on
# 2026-12-03; `holdout2` was written that evening and read the same night; `holdout3` was written
# and read once on 2026-12-04, and so was `holdout4`, that afternoon (evals/README). A rule made
# after a split's read needs a new split.
HELD_OUT = ("holdout", "holdout2", "holdout3", "holdout4")
ROLES = ("user", "assistant")

# The document the chatbot was first built around; the set must cover it in depth.
FOCUS_DOC = "uk-openai-partnership-article"

# Minimum sizes of the set (see evals/README.md, "The reference set").
MIN_ITEMS = 120
MIN_FOCUS_ITEMS = 40
MIN_OTHER_DOCS = 20
MIN_UNANSWERABLE_SHARE = 0.15
MIN_FOLLOW_UPS = 10
MIN_MULTI_DOC_ITEMS = 10

_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "question": str,
    "answer": str,
    "answerable": bool,
    "doc_ids": list,
    "quotes": list,
    "key_facts": list,
    "type": str,
    "history": list,
    "split": str,
}


@dataclass
class QAItem:
    """One reference question with its gold answer and evidence."""

    id: str
    question: str
    answer: str
    answerable: bool
    doc_ids: list[str]
    quotes: list[str]
    key_facts: list[str]
    type: str
    split: str
    history: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QAItem:
        return cls(**{k: d[k] for k in _FIELDS})


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """Parse a JSON-lines file, skipping blank lines.

    Returns:
        `(line_number, value)` pairs, line numbers from 1.

    Raises:
        BadInputError: the file cannot be read or a line is not valid JSON (naming file and line).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadInputError(f"{path}: cannot be read ({e.__class__.__name__}: {e})") from None
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except ValueError as e:
            raise BadInputError(f"{path}:{n}: not valid JSON ({e})") from None
    return out


def _schema_errors(d: Any) -> list[str]:
    if not isinstance(d, dict):
        return [f"is a {type(d).__name__}, not a JSON object"]
    errors = [f"missing field {k!r}" for k in _FIELDS if k not in d]
    errors += [f"unknown field {k!r}" for k in d if k not in _FIELDS]
    for k, t in _FIELDS.items():
        if k in d and not isinstance(d[k], t):
            errors.append(f"{k!r} should be a {t.__name__}, not {type(d[k]).__name__}")
    if errors:
        return errors
    for k in ("id", "question", "answer"):
        if not d[k].strip():
            errors.append(f"{k!r} is blank")
    for k in ("doc_ids", "quotes", "key_facts"):
        if not all(isinstance(x, str) and x.strip() for x in d[k]):
            errors.append(f"{k!r} should hold only non-blank strings")
    if d["type"] not in TYPES:
        errors.append(f"type {d['type']!r} is not one of {', '.join(TYPES)}")
    if d["split"] not in SPLITS:
        errors.append(f"split {d['split']!r} is not one of {', '.join(SPLITS)}")
    for m in d["history"]:
        if not (
            isinstance(m, dict)
            and m.get("role") in ROLES
            and isinstance(m.get("content"), str)
            and m["content"].strip()
        ):
            errors.append('history turns should be {"role": "user"|"assistant", "content": "..."}')
            break
    return errors


def _meaning_errors(d: dict[str, Any], bodies: dict[str, str | None]) -> list[str]:
    errors = []
    if d["answerable"] == (d["type"] == "unanswerable"):
        errors.append(f"type {d['type']!r} does not agree with answerable={d['answerable']}")
    if not d["answerable"]:
        for k in ("doc_ids", "quotes", "key_facts"):
            if d[k]:
                errors.append(f"is unanswerable but has {k}")
    else:
        for k in ("doc_ids", "quotes", "key_facts"):
            if not d[k]:
                errors.append(f"is answerable but has no {k}")
    if d["type"] == "follow-up" and not d["history"]:
        errors.append("is a follow-up with an empty history")
    if d["type"] == "multi-doc" and len(set(d["doc_ids"])) < 2:
        errors.append("is multi-doc but names fewer than two documents")
    for doc_id in d["doc_ids"]:
        if bodies[doc_id] is None:
            errors.append(f"document {doc_id!r} is not in the corpus")
    found = [b for doc_id in d["doc_ids"] if (b := bodies[doc_id]) is not None]
    for i, quote in enumerate(d["quotes"], start=1):
        if found and not any(quote in body for body in found):
            errors.append(f"quote {i} ({quote[:50]!r}...) is not in the body of {', '.join(d['doc_ids'])}")
    for doc_id in d["doc_ids"]:
        body = bodies[doc_id]
        if body is not None and d["quotes"] and not any(q in body for q in d["quotes"]):
            errors.append(f"no quote comes from document {doc_id!r}")
    # The reference answer must itself pass the key-fact check, or the metric is unreachable.
    answer = d["answer"].casefold()
    for fact in d["key_facts"]:
        if fact.casefold() not in answer:
            errors.append(f"key fact {fact!r} is not in the reference answer")
    return errors


def load_bodies(corpus_dir: Path, doc_ids: Iterable[str]) -> dict[str, str | None]:
    """The body (text after the front matter) of `corpus_dir/<id>.md` for each id; None when absent."""
    out: dict[str, str | None] = {}
    for doc_id in set(doc_ids):
        path = Path(corpus_dir) / f"{doc_id}.md"
        out[doc_id] = split_front_matter(path.read_text(encoding="utf-8"))[1] if path.is_file() else None
    return out


def validate_items(items: list[Any], corpus_dir: Path) -> list[str]:
    """Check every item's schema, id uniqueness and evidence against the corpus.

    Args:
        items: the parsed JSON values, one per line of the set.
        corpus_dir: the folder holding `<doc_id>.md` for every cited document.

    Returns:
        One message per problem, each starting with the item's id (or its position), empty if all is well.
    """
    errors: list[str] = []
    seen: set[str] = set()
    wanted = {
        doc_id
        for d in items
        if isinstance(d, dict) and isinstance(d.get("doc_ids"), list)
        for doc_id in d["doc_ids"]
        if isinstance(doc_id, str)
    }
    bodies = load_bodies(corpus_dir, wanted)
    for pos, d in enumerate(items, start=1):
        label = d["id"] if isinstance(d, dict) and isinstance(d.get("id"), str) and d["id"] else f"item {pos}"
        problems = _schema_errors(d)
        if not problems:
            if d["id"] in seen:
                problems.append("duplicate id")
            seen.add(d["id"])
            problems += _meaning_errors(d, bodies)
        errors += [f"{label}: {p}" for p in problems]
    return errors


def coverage(items: list[QAItem]) -> dict[str, float]:
    """Counts that describe the set: size, focus-document items, other documents, kinds of question."""
    other_docs = {doc_id for it in items for doc_id in it.doc_ids if doc_id != FOCUS_DOC}
    unanswerable = sum(not it.answerable for it in items)
    return {
        "items": len(items),
        "focus_doc_items": sum(FOCUS_DOC in it.doc_ids for it in items),
        "other_docs": len(other_docs),
        "unanswerable": unanswerable,
        "unanswerable_share": unanswerable / len(items) if items else 0.0,
        "follow_ups": sum(it.type == "follow-up" for it in items),
        "multi_doc_items": sum(len(set(it.doc_ids)) >= 2 for it in items),
    }


def check_coverage(items: list[QAItem]) -> list[str]:
    """The set-level minimums that `items` misses, one message each (empty when all are met).

    `check_coverage([])` -> `["120 items needed, 0 found", ...]`.
    """
    c = coverage(items)
    wants = [
        ("items", MIN_ITEMS, "items"),
        ("focus_doc_items", MIN_FOCUS_ITEMS, f"items citing {FOCUS_DOC}"),
        ("other_docs", MIN_OTHER_DOCS, "other documents cited"),
        ("follow_ups", MIN_FOLLOW_UPS, "follow-up items"),
        ("multi_doc_items", MIN_MULTI_DOC_ITEMS, "items citing two or more documents"),
    ]
    problems = [f"{need} {what} needed, {c[key]} found" for key, need, what in wants if c[key] < need]
    if c["unanswerable_share"] < MIN_UNANSWERABLE_SHARE:
        problems.append(
            f"{MIN_UNANSWERABLE_SHARE:.0%} unanswerable items needed, "
            f"{c['unanswerable']}/{c['items']} = {c['unanswerable_share']:.1%} found"
        )
    return problems


def load_qaset(path: Path, corpus_dir: Path) -> list[QAItem]:
    """Read and validate a reference set.

    Raises:
        BadInputError: the file is unreadable, a line is not JSON, or an item fails validation
            (the message names the file, the number of problems and the first one).
    """
    parsed = read_jsonl(path)
    errors = validate_items([d for _, d in parsed], corpus_dir)
    if errors:
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise BadInputError(
            f"{path}: {errors[0]}{more}; list them all with `python -m rag eval --check --questions {path}`"
        )
    return [QAItem.from_dict(d) for _, d in parsed]


def select_items(items: list[QAItem], split: str | None = None, limit: int | None = None) -> list[QAItem]:
    """The items of one split (when None, every split but the held-out ones), the first `limit` of them
    (all when None)."""
    chosen = [it for it in items if it.split == split or (split is None and it.split not in HELD_OUT)]
    return chosen[:limit] if limit is not None else chosen
