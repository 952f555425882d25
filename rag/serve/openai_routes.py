"""`POST /v1/chat/completions` in the OpenAI wire format, so the OpenAI SDK, LangChain's
`ChatOpenAI` and chat front ends can use the document QA as if it were a model.

The last user message is the question and earlier user/assistant turns are the history; the
reply's content is the checked answer and a top-level `sources` list carries its citations.
Streaming sends only checked text: each sentence once the model has finished it and the check has
kept it (`rag.pipeline.SentenceRelease`), so a client never shows a sentence that is later dropped. `max_tokens` and `temperature` are
accepted for compatibility but the server's settings decide them (requests share one model).
This module does not retrieve or generate; it translates to and from `RagPipeline.stream`.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from rag.errors import BadInputError, RagError
from rag.library import DocumentLibrary
from rag.pipeline import RagPipeline, StreamEvent
from rag.serve.error_responses import STRICT_BODY, WHOLE, client_message, documented, streamed
from rag.serve.prometheus import Metrics
from rag.serve.provenance import sources_json, uploaded_ids
from rag.serve.streaming import AnswerGate, AnswerStream, Frame
from rag.text import strip_markers
from rag.types import Answer

log = logging.getLogger(__name__)


class ChatMessage(BaseModel):
    model_config = ConfigDict(**STRICT_BODY, extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    # A string, or a list of content parts (`[{"type": "text", "text": "..."}]`) as newer clients send.
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(**STRICT_BODY, extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(**STRICT_BODY, extra="ignore")  # n, top_p, user, ... are accepted and ignored

    model: str | None = Field(None, max_length=200)
    # The last message must be the user's question (JSON Schema cannot say so); the example shows it.
    messages: list[ChatMessage] = Field(
        ..., min_length=1, max_length=200, examples=[[{"role": "user", "content": "What is an AI Growth Zone?"}]]
    )
    stream: bool = False
    max_tokens: Annotated[int, Field(ge=1), WHOLE] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1), WHOLE] | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    stream_options: StreamOptions | None = None


def message_text(m: ChatMessage) -> str:
    """The text of a message: `content` itself, or its text parts joined by newlines."""
    if isinstance(m.content, str):
        return m.content
    parts = m.content or []
    return "\n".join(str(p.get("text", "")) for p in parts if p.get("type") in (None, "text"))


def split_messages(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The question (the last message, which must be the user's) and the user/assistant history.

    Raises:
        BadInputError: the last message is not from the user.
    """
    if messages[-1].role != "user":
        raise BadInputError("The last message must be the user's question.")
    history = [
        {"role": m.role, "content": _strip_markers(message_text(m))}
        for m in messages[:-1]
        if m.role in ("user", "assistant") and message_text(m).strip()
    ]
    return message_text(messages[-1]), history


def _strip_markers(text: str) -> str:
    """Earlier answers carry [n] markers that mean nothing in a new question's passages."""
    return strip_markers(text)


def _usage(answer: Answer) -> dict[str, int]:
    # Prompt tokens are not counted by every backend; the completion count is the pieces generated.
    return {"prompt_tokens": 0, "completion_tokens": answer.tokens, "total_tokens": answer.tokens}


def completion(answer: Answer, cid: str, created: int, uploaded: set[str] | None = None) -> dict[str, Any]:
    """A `chat.completion` object carrying the checked answer and its `sources`."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": answer.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.answer, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(answer),
        "sources": sources_json(answer.citations, uploaded or set()),
        "refused": answer.refused,
        "partial": answer.partial,
    }


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def word_pieces(text: str) -> list[str]:
    """`word_pieces("A b [1].")` -> `["A ", "b ", "[1]."]`: what a streaming client expects to see."""
    return re.findall(r"\S+\s*|\s+", text)


def make_router(
    pipeline: RagPipeline, library: DocumentLibrary, metrics: Metrics, gate: AnswerGate | None = None
) -> APIRouter:
    """The `/v1` routes; answers go through `gate` (shared with `/api/ask`) when one is given."""
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

    @router.post(
        "/chat/completions",
        summary="Answer the last user message, OpenAI chat format",
        responses=streamed("The completion (JSON), or its chunks with `stream: true`")
        | documented(400, 401, 413, 422, 429, 502, 503, 504),
    )
    async def chat_completions(req: ChatCompletionRequest, request: Request) -> Any:
        question, history = split_messages(req.messages)
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        # Wait for the first event before answering, so bad input is a JSON 4xx, not a broken stream.
        stream = await AnswerStream.start(pipeline, question, history, gate=gate)
        if not req.stream:
            answer = await stream.answer(request)  # a client that hangs up stops the generation
            metrics.observe_answer(answer, "openai")
            return completion(answer, cid, created, uploaded_ids(library))
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return stream.sse(
            lambda events: chunk_frames(events, cid, created, pipeline.model_name, include_usage, metrics, library),
            error_frames,
        )

    return router


async def chunk_frames(
    events: AsyncIterator[StreamEvent],
    cid: str,
    created: int,
    model: str,
    include_usage: bool,
    metrics: Metrics,
    library: DocumentLibrary,
) -> AsyncIterator[Frame]:
    """`chat.completion.chunk`s: the role at once, each checked sentence as soon as it is ready (with
    the `sources` cited so far), what the final answer adds to them (a key passage; or the whole
    answer when it was quoted passages or a refusal), a final chunk with every source, the usage
    when asked for, then `[DONE]`. The contents joined are the final answer."""
    yield {"data": json.dumps(_chunk(cid, created, model, {"role": "assistant", "content": ""}))}
    uploaded = uploaded_ids(library)
    sent, sources = "", []
    async for ev in events:
        if ev.kind == "sentence":
            piece = f" {ev.data}" if sent else ev.data
            sent += piece
            sources += sources_json(list(ev.citations), uploaded)
            chunk = _chunk(cid, created, model, {"content": piece})
            chunk["sources"] = sources
            yield {"data": json.dumps(chunk)}
        elif ev.kind == "answer":
            answer = ev.data
            metrics.observe_answer(answer, "openai")
            if not answer.answer.startswith(sent):  # the pipeline never lets this happen (SentenceRelease)
                log.error("the final answer does not begin with the sentences streamed")
            rest = answer.answer[len(sent) :] if answer.answer.startswith(sent) else ""
            for piece in word_pieces(rest) if not sent else [rest] if rest else []:
                yield {"data": json.dumps(_chunk(cid, created, answer.model, {"content": piece}))}
            final = _chunk(cid, created, answer.model, {}, "stop")
            final["sources"] = sources_json(answer.citations, uploaded)
            final["refused"] = answer.refused
            final["partial"] = answer.partial
            t = answer.timings
            final["timings"] = {"ttft_s": t.ttft_s, "first_sentence_s": t.first_sentence_s, "total_s": t.total_s}
            yield {"data": json.dumps(final)}
            if include_usage:
                usage = {**_chunk(cid, created, answer.model, {}), "choices": [], "usage": _usage(answer)}
                yield {"data": json.dumps(usage)}
            yield {"data": "[DONE]"}


def error_frames(e: RagError) -> list[Frame]:
    """The error as OpenAI-style servers send it mid-stream, then `[DONE]`."""
    return [{"data": json.dumps({"error": {"code": e.code, "message": client_message(e)}})}, {"data": "[DONE]"}]
