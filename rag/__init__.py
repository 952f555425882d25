"""Cited question answering over the UK AI policy documents, offline.

`RagPipeline.from_settings()` builds the real pipeline; everything it needs is re-exported here.
Heavy libraries load lazily, so `import rag` stays fast.
"""

from rag.citations import CitationChecker
from rag.errors import (
    BadInputError,
    DocumentError,
    EmptyQuestionError,
    GenerationError,
    IndexMissingError,
    IndexStaleError,
    ModelMissingError,
    NotFoundError,
    RagError,
)
from rag.generation import Generator, LlamaCppGenerator, OpenAICompatGenerator, TransformersGenerator
from rag.pipeline import Finished, RagPipeline, Rewritten, StreamEvent, Token
from rag.prompts import REFUSAL
from rag.retrieval import HybridRetriever
from rag.settings import Settings
from rag.types import Answer, Chunk, Citation, Document, Hit

__all__ = [
    "REFUSAL",
    "Answer",
    "BadInputError",
    "CitationChecker",
    "Chunk",
    "Citation",
    "Document",
    "DocumentError",
    "EmptyQuestionError",
    "Finished",
    "GenerationError",
    "Generator",
    "Hit",
    "HybridRetriever",
    "IndexMissingError",
    "IndexStaleError",
    "LlamaCppGenerator",
    "ModelMissingError",
    "NotFoundError",
    "OpenAICompatGenerator",
    "RagError",
    "RagPipeline",
    "Rewritten",
    "Settings",
    "StreamEvent",
    "Token",
    "TransformersGenerator",
]
