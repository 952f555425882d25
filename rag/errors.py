"""Errors a user can act on. Each message says what went wrong and what to do next.

Anything that is not a `RagError` reaching the UI or API is a bug and gets logged.
"""


class RagError(Exception):
    """Base class: its message is safe and useful to show to the person using the tool."""

    code = "rag_error"
    status = 500


class BadInputError(RagError):
    code = "bad_request"
    status = 400


class EmptyQuestionError(BadInputError):
    code = "empty_question"

    def __init__(self, msg: str = "The question is empty: type a question about the documents.") -> None:
        super().__init__(msg)


class IndexMissingError(RagError):
    code = "index_missing"
    status = 503


class IndexStaleError(RagError):
    code = "index_stale"
    status = 503


class ModelMissingError(RagError):
    code = "model_missing"
    status = 503


class GenerationError(RagError):
    code = "generation_failed"
    status = 502


class DocumentError(BadInputError):
    code = "bad_document"


class NotFoundError(RagError):
    code = "not_found"
    status = 404


class UnauthorizedError(RagError):
    code = "unauthorized"
    status = 401


class ModelLoadingError(RagError):
    code = "loading"
    status = 503

    def __init__(self, msg: str = "The model is still loading. Try again in a minute.") -> None:
        super().__init__(msg)


class ForbiddenError(RagError):
    code = "forbidden"
    status = 403


class ServerBusyError(RagError):
    code = "busy"
    status = 503
    retry_after_s = 10  # about two answers' time (bench/RESULTS.md: p95 5.2 s)

    def __init__(
        self, msg: str = "The server is answering as many questions as it can. Try again in a few seconds."
    ) -> None:
        super().__init__(msg)


class RequestTimeoutError(RagError):
    code = "timeout"
    status = 504

    def __init__(
        self, msg: str = "The answer took longer than this server allows; try again, or ask a narrower question."
    ) -> None:
        super().__init__(msg)


class AnswerStoppedError(RagError):
    """The answer was stopped before it finished, because whoever asked for it stopped waiting."""

    code = "stopped"
    status = 499  # logged like nginx's "client closed request"; the one who asked has gone

    def __init__(self, msg: str = "The answer was stopped before it finished; ask again to get it.") -> None:
        super().__init__(msg)


class RateLimitedError(RagError):
    code = "rate_limited"
    status = 429

    def __init__(self, retry_after_s: int, message: str = "") -> None:
        super().__init__(message or f"Too many requests from this key or address; try again in {retry_after_s} s.")
        self.retry_after_s = retry_after_s


class VectorStoreError(RagError):
    """The vector store (a Milvus server) cannot be reached or used as configured."""

    code = "vector_store_unavailable"
    status = 503
