"""Speak the browser page's own protocol in tests, as a browser (or a hostile script) would:
find an event in `/config`, join Gradio's queue with it, and read its messages until it ends.

Gradio's Python client only calls named events; the page's buttons are private ones, reachable
through `/gradio_api/queue/join` by their index, which is exactly what a probe of the page uses.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx


def event_index(config: dict[str, Any], elem_id: str, trigger: str) -> tuple[int, int]:
    """The index of the event fired by `trigger` ("click", "change", ...) on the component with
    `elem_id`, and that component's id."""
    ids = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    if not ids:
        raise LookupError(f"no component with elem_id {elem_id!r}")
    for dep in config["dependencies"]:
        if [ids[0], trigger] in [list(t) for t in dep["targets"]]:
            return dep["id"], ids[0]
    raise LookupError(f"no {trigger} event on {elem_id!r}")


def run_event(
    client: httpx.Client, elem_id: str, trigger: str, data: list[Any], timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Fire a page event with `data` as its inputs and return every queue message it produced.

    Raises:
        httpx.HTTPStatusError: `/config` or the queue refused the request (its status is the point).
    """
    config = client.get("/config")
    config.raise_for_status()
    fn_index, trigger_id = event_index(config.json(), elem_id, trigger)
    session = uuid.uuid4().hex[:10]
    joined = client.post(
        "/gradio_api/queue/join",
        json={
            "data": data,
            "event_data": None,
            "fn_index": fn_index,
            "trigger_id": trigger_id,
            "session_hash": session,
        },
    )
    joined.raise_for_status()
    messages = []
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}, timeout=timeout) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            messages.append(msg)
            if msg.get("msg") == "process_completed":
                break
    return messages


def final_output(messages: list[dict[str, Any]]) -> list[Any]:
    """An event's outputs as they stand when it completes (a streaming event sends diffs after its
    first output; they are applied in order). Outputs that are `gr.State` stay on the server (None)."""
    from gradio_client.utils import apply_diff

    state: list[Any] | None = None
    for m in messages:
        if m.get("msg") not in ("process_generating", "process_completed"):
            continue
        if not m.get("success", True):
            raise AssertionError(f"the event failed: {m.get('output')}")
        data = (m.get("output") or {}).get("data")
        if data is None:
            continue
        if state is None or m.get("msg") == "process_completed" and not _is_diff(data):
            state = data
        else:
            state = [apply_diff(old, diff) for old, diff in zip(state, data, strict=True)]
    if state is None or messages[-1].get("msg") != "process_completed":
        raise AssertionError(f"the event did not complete: {messages[-3:]}")
    return state


def _is_diff(data: list[Any]) -> bool:
    return all(isinstance(d, list) and all(isinstance(op, list) and len(op) == 3 for op in d) for d in data)


def message_text(message: dict[str, Any]) -> str:
    """A chat message's text, whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
