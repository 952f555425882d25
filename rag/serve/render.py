"""HTML and Markdown for the browser chat: answers with linked [n] markers, the sources panel
with each cited quote highlighted in its paragraph, and the document list.

Pure functions over plain dicts, so they are tested without a browser. Every piece of document or
model text is HTML-escaped here. This module does not import Gradio or call the pipeline.
"""

from __future__ import annotations

import html
import re
from typing import Any

from rag.library import DocumentInfo
from rag.text import MARKER, MONTHS, marker_numbers
from rag.types import Answer, Citation, Document

_LIST_MARK = re.compile(r"^(\x00?)\s*[-*+] (?=\S)")  # \x00 stands for an opening <mark>
_HEADING_MARK = re.compile(r"^(\x00?)#{1,6} (?=\S)")

NOT_FOUND_HTML = (
    '<div class="rag-notfound" role="status"><strong>Not in the documents.</strong> '
    "I couldn't find this in the indexed documents, so I won't guess. Try rephrasing, or look in the "
    "Documents tab to see what is covered.</div>"
)


def esc(text: str) -> str:
    return html.escape(text or "", quote=True)


def safe_url(url: str) -> str:
    """`url` when it is an http(s) link, else `""`: front matter of an upload could hold `javascript:`.

    `safe_url("https://gov.uk/x")` -> `"https://gov.uk/x"`; `safe_url("javascript:alert(1)")` -> `""`.
    """
    url = (url or "").strip()
    return url if re.match(r"https?://[^\s]", url, re.IGNORECASE) else ""


def status_html(kind: str, text: str) -> str:
    """A status line: `kind` is "info", "ok" or "error" (announced at once to screen readers)."""
    role = "alert" if kind == "error" else "status"
    return f'<p class="rag-{kind}-note" role="{role}">{esc(text)}</p>'


def format_date(iso: str) -> str:
    """`format_date("2025-07-22")` -> `"22 July 2025"`; anything else is returned as it is."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", (iso or "").strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        return iso or ""
    return f"{int(m.group(3))} {MONTHS[int(m.group(2)) - 1]} {m.group(1)}"


def source_anchor(turn: int, n: int) -> str:
    """The id of a source card: `source_anchor(2, 1)` -> `"src-2-1"`."""
    return f"src-{turn}-{n}"


def link_markers(text: str, turn: int, titles: dict[int, str] | None = None) -> str:
    """Escape an answer and turn each [n] into a Markdown link to its source card.

    `link_markers("Yes [1].", 3)` -> `'Yes [[1]](#src-3-1 "Source 1").'`.
    """
    titles = titles or {}

    def one(n: int) -> str:
        label = f"Source {n}" + (f": {titles[n]}" if n in titles else "")
        label = label.replace('"', "'")
        return f'[[{n}]](#{source_anchor(turn, n)} "{esc(label)}")'

    def link(m: re.Match[str]) -> str:  # "[1, 3]" becomes two links
        return "".join(one(n) for n in marker_numbers(m.group(0)))

    return MARKER.sub(link, html.escape(text or "", quote=False))


def passage_html(body: str, start: int, end: int, context: int = 500) -> str:
    """The paragraph around `body[start:end]`, escaped, with that span in `<mark>`.

    Paragraphs are separated by blank lines; a long one is cut to `context` characters either side.
    `passage_html("A.\\n\\nB c d.", 5, 6)` -> `"B <mark>c</mark> d."`.
    """
    start, end = max(0, min(start, len(body))), max(0, min(end, len(body)))
    if end <= start:
        return esc(body[start : start + 200])
    ps = body.rfind("\n\n", 0, start)
    ps = 0 if ps < 0 else ps + 2
    pe = body.find("\n\n", end)
    pe = len(body) if pe < 0 else pe
    lead, tail = "", ""
    if start - ps > context:
        ps = body.find(" ", start - context, start) + 1 or start - context
        lead = "…"
    if pe - end > context:
        cut = body.rfind(" ", end, end + context)
        pe = cut if cut > end else end + context
        tail = "…"

    # Mark the span with placeholders first, so list bullets and headings can be tidied per line.
    def clean(t: str) -> str:
        return t.replace("\x00", "").replace("\x01", "")

    text = esc(f"{clean(body[ps:start])}\x00{clean(body[start:end])}\x01{clean(body[end:pe])}")
    lines = [_LIST_MARK.sub(r"\1• ", _HEADING_MARK.sub(r"\1", ln)) for ln in text.split("\n")]
    marked = "<br>".join(lines).replace("\x00", "<mark>").replace("\x01", "</mark>")
    return f"{lead}{marked}{tail}"


def citation_record(c: Citation, doc: Document | None, uploaded: bool = False) -> dict[str, Any]:
    """What a source card needs, computed once when the answer arrives (the document may go later)."""
    passage = passage_html(doc.body, c.start, c.end) if doc else f"<mark>{esc(c.quote)}</mark>"
    return {
        "n": c.n,
        "doc_id": c.doc_id,
        "title": c.title or (doc.title if doc else c.doc_id),
        "url": c.url,
        "uploaded": uploaded,
        "publisher": c.publisher or (doc.publisher if doc else ""),
        "date": c.date or (doc.date if doc else ""),
        "heading_path": [h for h in c.heading_path if h and h != c.title],
        "quote": c.quote,
        "passage_html": passage,
    }


def turn_record(
    n: int, question: str, answer: Answer, docs: dict[str, Document], uploaded: set[str] | None = None
) -> dict[str, Any]:
    """One finished exchange, as the chat keeps it in its state (`uploaded`: ids of user uploads)."""
    return {
        "n": n,
        "question": question,
        "standalone": answer.standalone_question or question,
        "kind": "refused" if answer.refused else "answer",
        "text": answer.answer,
        "citations": [
            citation_record(c, docs.get(c.doc_id), c.doc_id in (uploaded or set())) for c in answer.citations
        ],
    }


def searched_for(question: str, standalone: str) -> str:
    """The "Searched for: …" line, shown only when a follow-up was rewritten."""
    if not standalone or " ".join(standalone.lower().split()) == " ".join(question.lower().split()):
        return ""
    return f'<span class="rag-searched">Searched for: “{esc(standalone)}”</span>\n\n'


def drafting_markdown(question: str, standalone: str, sent: str, writing: bool = False) -> str:
    """The assistant bubble while the answer streams in: the checked sentences sent so far (the
    model's unchecked draft is never shown), then what is still under way."""
    head = searched_for(question, standalone)
    if not writing:
        return head + '<span class="rag-drafting">Searching the documents…</span>'
    status = '<span class="rag-drafting">Writing and checking the answer…</span>'
    return head + (html.escape(sent, quote=False) + "\n\n" + status if sent else status)


def answer_markdown(turn: dict[str, Any]) -> str:
    """The assistant bubble for a finished turn: linked answer, the not-found notice, or an error."""
    head = searched_for(turn["question"], turn.get("standalone", ""))
    if turn["kind"] == "refused":
        return head + NOT_FOUND_HTML
    if turn["kind"] == "error":
        return f'<div class="rag-error" role="alert"><strong>Sorry:</strong> {esc(turn["text"])}</div>'
    titles = {c["n"]: c["title"] for c in turn["citations"]}
    return head + link_markers(turn["text"], turn["n"], titles)


def chat_messages(turns: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The chatbot's messages for the finished turns."""
    out: list[dict[str, str]] = []
    for t in turns:
        out.append({"role": "user", "content": html.escape(t["question"], quote=False)})
        out.append({"role": "assistant", "content": answer_markdown(t)})
    return out


def _card(turn: int, c: dict[str, Any]) -> str:
    title = esc(c["title"])
    if safe_url(c["url"]):
        title = f'<a href="{esc(safe_url(c["url"]))}" target="_blank" rel="noopener noreferrer">{title}</a>'
    if c.get("uploaded"):
        title += ' <span class="rag-badge">uploaded</span>'
    meta = [esc(x) for x in (c["publisher"], format_date(c["date"])) if x]
    if c["heading_path"]:
        meta.append(esc(" › ".join(c["heading_path"])))
    return (
        f'<li class="rag-card" id="{source_anchor(turn, c["n"])}" tabindex="-1">'
        f'<div class="rag-card-head"><span class="rag-num">[{c["n"]}]</span> {title}</div>'
        f'<div class="rag-meta">{" · ".join(meta)}</div>'
        f'<blockquote class="rag-passage">{c["passage_html"]}</blockquote></li>'
    )


def sources_html(turns: list[dict[str, Any]]) -> str:
    """The sources panel: the latest answer's sources open, earlier answers' folded away."""
    cited = [t for t in turns if t.get("citations")]
    parts = ['<div class="rag-sources" role="region" aria-label="Sources"><h2 class="rag-h2">Sources</h2>']
    if not cited:
        parts.append(
            '<p class="rag-muted">The passages an answer cites appear here, with the quoted words highlighted. '
            "Select a [1] marker in an answer to jump to its source.</p>"
        )
    for i, t in enumerate(reversed(cited)):
        cards = "".join(_card(t["n"], c) for c in t["citations"])
        label = f"Answer {t['n']}: {esc(t['question'])}"
        if i == 0:
            parts.append(
                f'<section aria-label="{label}"><p class="rag-for">{label}</p><ol class="rag-cards">{cards}</ol></section>'
            )
        else:
            parts.append(
                f'<details class="rag-older"><summary>{label}</summary><ol class="rag-cards">{cards}</ol></details>'
            )
    parts.append("</div>")
    return "".join(parts)


def documents_table_html(infos: list[DocumentInfo]) -> str:
    """The document list as an accessible table."""
    rows = []
    for i in infos:
        title = esc(i.title)
        if safe_url(i.source_url):
            title = f'<a href="{esc(safe_url(i.source_url))}" target="_blank" rel="noopener noreferrer">{title}</a>'
        badge = ' <span class="rag-badge">uploaded</span>' if i.uploaded else ""
        rows.append(
            f"<tr><td>{title}{badge}<div class='rag-id'>{esc(i.doc_id)}</div></td><td>{esc(i.publisher)}</td>"
            f"<td>{esc(format_date(i.date))}</td><td class='rag-num-col'>{i.chunks}</td></tr>"
        )
    return (
        '<div class="rag-table-wrap"><table class="rag-doc-table"><caption>'
        f"{len(infos)} documents in the index</caption><thead><tr><th scope='col'>Title</th>"
        "<th scope='col'>Publisher</th><th scope='col'>Date</th><th scope='col'>Passages</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def document_markdown(doc: Document, info: DocumentInfo) -> str:
    """A document to read: its metadata, then its body (Markdown, rendered sanitised)."""
    meta = [x for x in (info.publisher, format_date(info.date), info.licence and f"Licence: {info.licence}") if x]
    link = f"\n\n[Original source]({safe_url(doc.source_url)})" if safe_url(doc.source_url) else ""
    badge = " (uploaded)" if info.uploaded else ""
    return f"## {doc.title}{badge}\n\n*{' · '.join(meta) or 'No metadata'} · {info.chunks} passages*{link}\n\n---\n\n{doc.body}"
