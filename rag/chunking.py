"""Split a document body into passages that follow its structure: headings, paragraphs, lists.

Each chunk keeps its heading path and exact character offsets into the body, so a citation
can be shown highlighted in place. Blocks longer than the chunk size are split on sentence
boundaries by LangChain's recursive splitter. This module does not embed or index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.settings import shipped
from rag.types import Chunk, Document

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)]|\([a-z0-9]+\))\s+")


@dataclass
class Block:
    """A paragraph, list or heading of a body: `body[start:end]`."""

    start: int
    end: int
    kind: str  # "heading" | "para" | "list"
    heading_path: tuple[str, ...]


def parse_blocks(body: str) -> list[Block]:
    """Cut a Markdown-ish body into blocks separated by blank lines; headings are their own blocks.

    `parse_blocks("# A\\n\\nText.\\n- x\\n- y")` -> heading "A", then one block "Text.\\n- x\\n- y"
    (a paragraph that runs into a list stays one block: they are not separated by a blank line).
    """
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []  # (level, heading text)
    pos = 0
    cur_start: int | None = None
    cur_end = 0
    cur_kind = "para"

    def flush() -> None:
        nonlocal cur_start
        if cur_start is not None:
            blocks.append(Block(cur_start, cur_end, cur_kind, tuple(h for _, h in path)))
        cur_start = None

    for line in body.splitlines(keepends=True):
        stripped = line.strip()
        line_start, line_end = pos, pos + len(line.rstrip("\r\n"))
        pos += len(line)
        if not stripped:
            flush()
            continue
        m = _HEADING.match(stripped)
        if m:
            flush()
            level, text = len(m.group(1)), m.group(2).strip()
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, text))
            blocks.append(Block(line_start, line_end, "heading", tuple(h for _, h in path)))
            continue
        if cur_start is None:
            cur_start, cur_kind = line_start + (len(line) - len(line.lstrip())), "para"
            if _LIST_ITEM.match(line):
                cur_kind = "list"
        cur_end = line_end
    flush()
    return blocks


def _split_long(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """Spans (start, end) of pieces of `text` no longer than about `size`, cut at sentence ends."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=size,
        chunk_overlap=overlap,
        separators=["\n", ". ", "; ", ", ", " ", ""],
        keep_separator="end",
        add_start_index=True,
        strip_whitespace=True,
    )
    spans = []
    for d in splitter.create_documents([text]):
        start = d.metadata["start_index"]
        if start < 0:  # the splitter could not locate the piece; find it ourselves
            start = text.find(d.page_content)
        spans.append((start, start + len(d.page_content)))
    return spans


def chunk_document(
    doc: Document, size: int = shipped("chunk_size"), overlap: int = shipped("chunk_overlap")
) -> list[Chunk]:
    """Chunk one document: consecutive blocks of one section are packed up to `size` characters.

    A heading always starts a new chunk; a block longer than `size` is split on its own.

    Args:
        doc: the document; offsets refer to `doc.body`.
        size: the most characters a chunk should hold.
        overlap: characters shared by consecutive pieces of one long block.

    Returns:
        Chunks in document order, ids `"{doc_id}#{n:04d}"`.
    """
    body = doc.body
    spans: list[tuple[int, int, tuple[str, ...]]] = []
    group: list[Block] = []

    def close() -> None:
        if group:
            spans.append((group[0].start, group[-1].end, group[0].heading_path))
            group.clear()

    for b in parse_blocks(body):
        if b.kind == "heading":
            close()
            continue
        if b.end - b.start > size:
            close()
            for s, e in _split_long(body[b.start : b.end], size, overlap):
                spans.append((b.start + s, b.start + e, b.heading_path))
            continue
        if group and (b.end - group[0].start > size or b.heading_path != group[0].heading_path):
            close()
        group.append(b)
    close()

    return [
        Chunk(
            chunk_id=f"{doc.doc_id}#{i:04d}",
            doc_id=doc.doc_id,
            text=body[s:e],
            start=s,
            end=e,
            title=doc.title,
            publisher=doc.publisher,
            date=doc.date,
            source_url=doc.source_url,
            heading_path=list(path),
        )
        for i, (s, e, path) in enumerate(spans)
    ]


def chunk_corpus(
    docs: list[Document], size: int = shipped("chunk_size"), overlap: int = shipped("chunk_overlap")
) -> list[Chunk]:
    return [c for d in docs for c in chunk_document(d, size, overlap)]


def embedding_text(chunk: Chunk) -> str:
    """The text that is embedded and indexed for BM25: the passage with its title and headings.

    Prefixing the context lets "What does the Cohere MoU say about security?" match a passage
    that never names Cohere itself.
    """
    crumbs = [chunk.title, *[h for h in chunk.heading_path if h != chunk.title]]
    return " > ".join(c for c in crumbs if c) + "\n" + chunk.text
