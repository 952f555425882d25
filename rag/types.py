"""Result types that flow through the pipeline: documents, chunks, hits, citations, answers.

Plain dataclasses only; no behaviour beyond small conversions to JSON-ready dicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Document:
    """One source document: its id (file name without extension), metadata and body text."""

    doc_id: str
    title: str
    body: str
    publisher: str = ""
    date: str = ""
    source_url: str = ""
    licence: str = ""
    path: str = ""

    def meta(self) -> dict[str, str]:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "publisher": self.publisher,
            "date": self.date,
            "source_url": self.source_url,
            "licence": self.licence,
        }


@dataclass
class Chunk:
    """A passage of a document; `start`/`end` are character offsets into `Document.body`."""

    chunk_id: str
    doc_id: str
    text: str
    start: int
    end: int
    title: str = ""
    publisher: str = ""
    date: str = ""
    source_url: str = ""
    heading_path: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Chunk:
        return cls(**d)


@dataclass
class Hit:
    """A retrieved chunk with its fused score (higher is better)."""

    chunk: Chunk
    score: float
    dense_rank: int | None = None
    lexical_rank: int | None = None


@dataclass
class Citation:
    """A passage an answer cites, as shown to the user: `n` is the marker number in the answer."""

    n: int
    doc_id: str
    title: str
    url: str
    quote: str
    start: int
    end: int
    chunk_id: str = ""
    publisher: str = ""
    date: str = ""
    heading_path: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "doc_id": self.doc_id,
            "title": self.title,
            "url": self.url,
            "quote": self.quote,
            "start": self.start,
            "end": self.end,
        }


@dataclass
class SentenceCheck:
    """The support check of one answer sentence against the passages it cites."""

    text: str
    cited: list[int]
    supported: bool
    score: float


@dataclass
class Timings:
    retrieve_s: float = 0.0
    ttft_s: float = 0.0
    first_sentence_s: float = 0.0  # until the first checked sentence was sent (0: none was streamed)
    total_s: float = 0.0


@dataclass
class Answer:
    """The final, checked answer: what the CLI, API, UI and evaluation all consume."""

    question: str
    answer: str
    refused: bool
    citations: list[Citation]
    retrieved: list[Hit]
    timings: Timings
    model: str
    standalone_question: str = ""
    raw_answer: str = ""
    sentences: list[SentenceCheck] = field(default_factory=list)
    tokens: int = 0
    signals: dict[str, float | None] = field(default_factory=dict)  # what the answer/refuse decision saw
    partial: bool = False  # the passages' closest sentences quoted, not a checked answer (see rag.decision)
    decision: dict[str, str] = field(default_factory=dict)  # {"outcome", "step", "reason"}: who decided, and why

    def to_dict(self) -> dict[str, Any]:
        """The public Answer JSON (the schema of `rag ask --json` and `POST /api/ask`)."""
        return {
            "answer": self.answer,
            "refused": self.refused,
            "partial": self.partial,
            "citations": [c.to_dict() for c in self.citations],
            "retrieved": [
                {"doc_id": h.chunk.doc_id, "chunk_id": h.chunk.chunk_id, "score": round(h.score, 6)}
                for h in self.retrieved
            ],
            "timings": {k: round(v, 4) for k, v in asdict(self.timings).items()},
            "model": self.model,
            "decision": self.decision,
        }


@dataclass
class CheckedAnswer:
    """The citation check's verdict on a raw answer: the cleaned text, whether it is the refusal,
    its citations (renumbered from 1) and the verdict per sentence."""

    text: str
    refused: bool
    citations: list[Citation]
    sentences: list[SentenceCheck]


@dataclass
class RetrievalResult:
    """The passages retrieved for a query, best first, and the best dense score (a relevance signal)."""

    hits: list[Hit]
    best_dense: float


@dataclass
class DocumentInfo:
    """What the document list shows: metadata, passage count, and whether a user uploaded it."""

    doc_id: str
    title: str
    publisher: str
    date: str
    source_url: str
    licence: str
    chunks: int
    uploaded: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
