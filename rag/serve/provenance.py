"""Where a document came from, shown wherever it is cited: a document a user uploaded is marked
`"uploaded": true`, so an upload cannot pass for one of the published documents.

Adds the mark to the JSON the routes send; this module decides nothing about what is indexed.
"""

from __future__ import annotations

from typing import Any

from rag.library import DocumentLibrary
from rag.types import Answer, Citation


def uploaded_ids(library: DocumentLibrary) -> set[str]:
    """The ids of the indexed documents that users uploaded."""
    return {d.doc_id for d in library.retriever.documents.values() if library.is_uploaded(d)}


def sources_json(citations: list[Citation], uploaded: set[str]) -> list[dict[str, Any]]:
    """`Citation.to_dict()` for each citation, with `"uploaded"`."""
    return [c.to_dict() | {"uploaded": c.doc_id in uploaded} for c in citations]


def answer_json(answer: Answer, library: DocumentLibrary) -> dict[str, Any]:
    """The Answer JSON, each citation marked `"uploaded"`."""
    return answer.to_dict() | {"citations": sources_json(answer.citations, uploaded_ids(library))}
