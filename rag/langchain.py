"""LangChain adapters, so other LangChain programs can embed this pipeline.

`PassageRetriever` is a `BaseRetriever` over our hybrid retriever; `as_runnable(pipeline)` is a
`Runnable` that maps a question (or `{"question", "history"}`) to the Answer JSON. The core
pipeline does not depend on LangChain; only this module imports it.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import ConfigDict

from rag.pipeline import RagPipeline
from rag.retrieval import HybridRetriever


class PassageRetriever(BaseRetriever):
    """Returns the top `k` passages as LangChain `Document`s with their source metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: HybridRetriever
    k: int = 5

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        hits = self.retriever.retrieve(query, self.k).hits
        return [
            LCDocument(
                page_content=h.chunk.text,
                metadata={
                    "doc_id": h.chunk.doc_id,
                    "chunk_id": h.chunk.chunk_id,
                    "title": h.chunk.title,
                    "source_url": h.chunk.source_url,
                    "start": h.chunk.start,
                    "end": h.chunk.end,
                    "score": h.score,
                },
            )
            for h in hits
        ]


def as_runnable(pipeline: RagPipeline) -> Runnable[Any, dict[str, Any]]:
    """A `Runnable` answering `"question"` or `{"question": ..., "history": [...]}` with Answer JSON."""

    def run(inp: Any) -> dict[str, Any]:
        if isinstance(inp, str):
            question, history = inp, []
        else:
            question, history = inp.get("question", ""), inp.get("history") or []
        return pipeline.ask(question, history).to_dict()

    return RunnableLambda(run, name="uk_ai_rag")
